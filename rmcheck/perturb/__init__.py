"""Perturbation operators: the registry and the built-ins."""
from .base import (OPERATORS, Change, Hunk, OperatorContext, check_arguments, get_operator, register_operator,
                   run_operator)
from . import builtin as _builtin  # noqa: F401  (registers the built-in operators)
from . import llm_rewrite as _llm_rewrite  # noqa: F401  (registers llm_rewrite)

__all__ = [
    "OPERATORS",
    "Change",
    "Hunk",
    "OperatorContext",
    "check_arguments",
    "get_operator",
    "register_operator",
    "run_operator",
]
