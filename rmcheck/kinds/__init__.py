"""Test kinds: the registry, and the built-in kinds it starts with.

A kind parses its ``tests:`` entries and evaluates them through the public
:class:`rmcheck.engine.Engine` API only, so a kind written outside the package
(registered with :func:`register_kind` or the ``rmcheck.kinds`` entry-point group)
has everything the built-in ones have.
"""
from .registry import KINDS, TestKind, get_kind, kind_of, register_kind
from . import expectation as _expectation  # noqa: F401  (registers expectation, the default kind)
from . import best_of_n as _best_of_n  # noqa: F401  (registers best_of_n)
from . import style_substance as _style_substance  # noqa: F401  (registers style_substance)
from . import vocab_sweep as _vocab_sweep  # noqa: F401  (registers vocab_sweep)

__all__ = ["KINDS", "TestKind", "get_kind", "kind_of", "register_kind"]
