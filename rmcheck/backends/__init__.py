"""Reward-model backends: the protocol and the registry (:mod:`.base`); each built-in backend is a module
named in :data:`.base.BACKENDS`, imported when a spec first names it."""
from ..lazy import exports_of, face

_EXPORTS = exports_of(".base", "BACKENDS", "OVERALL", "ModelOptions", "Pair", "Prompt", "RewardModel", "Scores",
                      "load_model", "register_backend")
__getattr__, __dir__ = face(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
