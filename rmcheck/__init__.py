"""rmcheck: behavioural testing for LLM reward models.

The names below are imported on first use (see :mod:`rmcheck.lazy`), so ``import rmcheck`` is cheap.
"""
from .lazy import exports_of, face
from .version import __version__

_EXPORTS = {
    **exports_of(".backends.base", "ModelOptions", "Pair", "RewardModel", "load_model", "register_backend"),
    **exports_of(".contrastive.api", "explain"),
    **exports_of(".errors", "RmcheckError"),
    **exports_of(".expect", "register_expectation"),
    **exports_of(".kinds.registry", "ParseContext", "TestKind", "register_kind"),
    **exports_of(".perturb.base", "Change", "Dose", "Hunk", "OperatorContext", "register_operator"),
}
__getattr__, __dir__ = face(__name__, _EXPORTS)
__all__ = sorted([*_EXPORTS, "__version__"])
