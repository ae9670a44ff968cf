"""Reward-model backends: the protocol, the registry and the built-ins."""
from .base import (
    BACKENDS,
    OVERALL,
    ModelOptions,
    Pair,
    Prompt,
    RewardModel,
    Scores,
    load_model,
    register_backend,
)
from . import python_callable as _python_callable  # noqa: F401  (registers python:)
from . import hf as _hf  # noqa: F401  (registers hf:)

__all__ = ["BACKENDS", "OVERALL", "ModelOptions", "Pair", "Prompt", "RewardModel", "Scores",
           "load_model", "register_backend"]
