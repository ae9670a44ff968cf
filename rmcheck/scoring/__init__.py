"""Scoring: the scheduler between tests and a model (dedup, batching, memo) and the on-disk score cache."""
from ..lazy import exports_of, face

_EXPORTS = {**exports_of(".cache", "ScoreCache"),
            **exports_of(".scheduler", "DEFAULT_BATCH_SIZE", "DEFAULT_BATCH_TOKENS", "BatchPolicy", "Scorer",
                         "ScoringStats")}
__getattr__, __dir__ = face(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
