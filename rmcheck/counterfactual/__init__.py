"""The counterfactual core: trials, delta debugging, and one minimal-counterfactual search with replay.

- :mod:`.trial`: :class:`Trial`, a case with the edits proposed for it (expectation tests, ``explain``, doses);
- :mod:`.ddmin`: delta debugging over edits;
- :mod:`.minimise`: :func:`minimise`, every failing edit set shrunk in lockstep, then replayed.
"""
from ..lazy import exports_of, face

_EXPORTS = {**exports_of(".ddmin", "Subset", "ddmin", "drive"),
            **exports_of(".minimise", "Found", "Search", "Status", "minimise"),
            **exports_of(".trial", "Trial")}
__getattr__, __dir__ = face(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
