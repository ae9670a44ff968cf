"""Perturbation operators: the registry and the built-ins."""
from .base import (OPERATORS, PROMPT, Change, Dose, Hunk, OperatorContext, check_arguments, dose_of, dosed,
                   edits_prompts, get_operator, register_operator, run_operator)
from . import builtin as _builtin  # noqa: F401  (registers the built-in operators)
from . import llm_rewrite as _llm_rewrite  # noqa: F401  (registers llm_rewrite)
from . import answers as _answers  # noqa: F401  (registers master_key, answer_format)
from . import code as _code  # noqa: F401  (registers code_transform)
from . import prompt_side as _prompt_side  # noqa: F401  (registers drop_prompt, swap_prompt)

__all__ = [
    "OPERATORS",
    "PROMPT",
    "Change",
    "Dose",
    "Hunk",
    "OperatorContext",
    "check_arguments",
    "dose_of",
    "dosed",
    "edits_prompts",
    "get_operator",
    "register_operator",
    "run_operator",
]
