"""rmcheck: behavioural testing for LLM reward models."""
from .version import __version__
from .backends import ModelOptions, Pair, RewardModel, load_model, register_backend
from .contrastive import explain
from .errors import RmcheckError
from .expect import register_expectation
from .kinds import register_kind
from .perturb import Change, Dose, Hunk, OperatorContext, register_operator

__all__ = ["Change", "Dose", "Hunk", "ModelOptions", "OperatorContext", "Pair", "RewardModel", "RmcheckError",
           "__version__", "explain", "load_model", "register_backend", "register_expectation", "register_kind",
           "register_operator"]
