"""Perturbation operators: the registry (:mod:`.base`); each built-in operator is named in
:data:`.base.OPERATORS` and imported when a suite first uses it."""
from ..lazy import exports_of, face

_EXPORTS = exports_of(".base", "OPERATORS", "PROMPT", "Change", "Dose", "Hunk", "OperatorContext", "check_arguments",
                      "dose_of", "dosed", "edits_prompts", "get_operator", "register_operator", "run_operator")
__getattr__, __dir__ = face(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
