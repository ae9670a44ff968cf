"""Test kinds: the registry (:mod:`.registry`), and the built-in kinds it names.

A kind parses its ``tests:`` entries, owns their sub-schema, and evaluates them through the public
:class:`rmcheck.engine.Engine` API only, so a kind written outside the package (registered with
:func:`register_kind` or the ``rmcheck.kinds`` entry-point group) has everything the built-in ones have.
"""
from ..lazy import exports_of, face

_EXPORTS = exports_of(".registry", "KINDS", "ParseContext", "TestKind", "get_kind", "kind_of", "register_kind")
__getattr__, __dir__ = face(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
