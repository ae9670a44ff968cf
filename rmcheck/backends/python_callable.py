"""``python:MODULE:CALLABLE`` — any Python function as a reward model."""
from __future__ import annotations

import hashlib
import importlib
import inspect
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import BackendError
from .base import ModelOptions, Pair, Scores, normalise_scores, register_backend


class PythonRewardModel:
    """Calls ``fn(prompts, responses)``; it returns one float, or one dict of named scores, per pair.

    Conversation prompts reach the function flattened to ``Role: content`` text.
    A dict answer names objectives; its overall score is the ``score`` key when
    present, else the mean of the values.
    """

    def __init__(self, spec: str, fn: Callable[..., Any]) -> None:
        self.spec = spec
        self.fn = fn
        self.objectives: tuple[str, ...] = ()
        self._fingerprint = _fingerprint(spec, fn)

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def describe(self) -> str:
        source = inspect.getsourcefile(self.fn) or "?"
        return f"{self.spec} (python callable from {source})"

    def score(self, pairs: Sequence[Pair]) -> list[Scores]:
        prompts = [p.prompt_text for p in pairs]
        responses = [p.response for p in pairs]
        try:
            raw = self.fn(prompts, responses)
        except Exception as exc:  # a user's function failing is a user error with a clear message
            raise BackendError(f"{type(exc).__name__} in {self.spec}: {exc}",
                               fix="Fix the reward function (it is called with lists of prompts and responses)") from exc
        scores = normalise_scores(raw, len(pairs), self.spec)
        self.objectives = tuple(sorted({k for s in scores for k in s} - {"score"})) or self.objectives
        return scores


def _fingerprint(spec: str, fn: Callable[..., Any]) -> str:
    digest = hashlib.sha256(spec.encode())
    try:
        digest.update(Path(inspect.getsourcefile(fn) or "").read_bytes())
    except (OSError, TypeError):
        digest.update(repr(fn).encode())
    return digest.hexdigest()


@register_backend("python")
def build(rest: str, options: ModelOptions) -> PythonRewardModel:
    """Import ``MODULE:CALLABLE`` (the current directory is importable) and wrap it."""
    module_name, sep, attr = rest.rpartition(":")
    spec = f"python:{rest}"
    if not sep or not module_name or not attr:
        raise BackendError(f"model spec {spec!r} is incomplete", where="--rm",
                           fix="Write python:MODULE:CALLABLE, e.g. python:my_rm:score")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendError(f"cannot import {module_name!r} for {spec}: {exc}", where="--rm",
                           fix="Run from the directory that holds the module, or install it") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise BackendError(f"{module_name} has no callable {attr!r}", where="--rm",
                           fix="Name a function taking (prompts, responses) and returning one score per pair")
    return PythonRewardModel(spec, fn)
