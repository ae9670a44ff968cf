"""Process (step-level) reward models: step-scoring models (:mod:`.model`), cases in steps (:mod:`.cases`), step
operators (:mod:`.operators`), step expectations (:mod:`.expect`) judged by ``kind: steps`` (:mod:`.kind`), and
ProcessBench's metric (:mod:`.processbench`; its reader, ``format: processbench``, is in
:mod:`rmcheck.suite.datasets`). Each module is imported on first use."""
from ..lazy import exports_of, face

_EXPORTS = {**exports_of(".model", "Solution", "StepScores", "step_scorer"),
            **exports_of(".cases", "join_steps", "split_steps")}
__getattr__, __dir__ = face(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
