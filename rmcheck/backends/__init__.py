"""Reward-model backends: the protocol, the registry and the built-ins."""
from .base import BACKENDS, OVERALL, ModelOptions, Pair, Prompt, RewardModel, Scores, load_model, register_backend
from . import python_callable as _python_callable  # noqa: F401  (registers python:)
from . import hf as _hf  # noqa: F401  (registers hf:)
from .. import demo as _demo  # noqa: F401  (registers demo, an hf: model assembled on first use)
from . import openai_judge as _openai_judge  # noqa: F401  (registers openai:)
from . import http as _http  # noqa: F401  (registers http:// and https://)
from . import dpo as _dpo  # noqa: F401  (registers dpo:)

__all__ = ["BACKENDS", "OVERALL", "ModelOptions", "Pair", "Prompt", "RewardModel", "Scores",
           "load_model", "register_backend"]
