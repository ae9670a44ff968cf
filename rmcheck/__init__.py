"""rmcheck: behavioural testing for LLM reward models."""
__version__ = "0.1.0"

from .backends import ModelOptions, Pair, RewardModel, load_model, register_backend  # noqa: E402
from .errors import RmcheckError  # noqa: E402
from .expect import register_expectation  # noqa: E402
from .perturb import Change, Hunk, OperatorContext, register_operator  # noqa: E402

__all__ = ["Change", "Hunk", "ModelOptions", "OperatorContext", "Pair", "RewardModel", "RmcheckError",
           "__version__", "load_model", "register_backend", "register_expectation", "register_operator"]
