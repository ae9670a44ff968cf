"""The ``rmcheck`` command line: run, validate, sweep, compare, report, serve, cache."""
from ..lazy import exports_of, face

_EXPORTS = exports_of(".app", "main")
__getattr__, __dir__ = face(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
