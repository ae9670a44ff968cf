"""Scoring: the scheduler between tests and a model (dedup, batching, memo) and the on-disk score cache."""
from .cache import ScoreCache
from .scheduler import DEFAULT_BATCH_SIZE, DEFAULT_BATCH_TOKENS, BatchPolicy, Scorer, ScoringStats

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_BATCH_TOKENS", "BatchPolicy", "ScoreCache", "Scorer", "ScoringStats"]
