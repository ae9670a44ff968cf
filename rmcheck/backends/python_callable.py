"""``python:MODULE:CALLABLE`` — any Python function as a reward model."""
from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import BackendError
from .base import ModelOptions, Pair, Scores, normalise_scores, register_backend, register_spec_check

#: What a callable (or its module) sets to say what else its scores depend on (weights, data files, a
#: version): a string, or a function returning one. Without it, its scores are not cached on disk.
DECLARED = "rmcheck_fingerprint"


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
        declared = _declared(spec, fn)
        #: Only a callable that declares what its scores depend on has them cached on disk.
        self.cacheable = declared is not None
        self._fingerprint = _fingerprint(spec, fn, declared)

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
        scores = normalise_scores(raw, len(pairs), self.spec, pairs)
        self.objectives = tuple(sorted({k for s in scores for k in s} - {"score"})) or self.objectives
        return scores


def _declared(spec: str, fn: Callable[..., Any]) -> str | None:
    """``rmcheck_fingerprint`` of the callable, else of its module: a string, or a function returning one."""
    module = sys.modules.get(getattr(fn, "__module__", None) or "")
    value = getattr(fn, DECLARED, getattr(module, DECLARED, None))
    if callable(value):
        try:
            value = value()
        except Exception as exc:  # the user's own function
            raise BackendError(f"{DECLARED} of {spec} raised {type(exc).__name__}: {exc}", where="--rm",
                               fix=f"Make {DECLARED} return a string (e.g. a hash of the weights it loads)") from None
    return None if value is None else str(value)


def _fingerprint(spec: str, fn: Callable[..., Any], declared: str | None) -> str:
    """sha256 over the spec, the declared fingerprint and the source files of the callable's package."""
    digest = hashlib.sha256(json.dumps([spec, declared]).encode())
    files = _source_files(fn)
    if not files:
        digest.update(repr(fn).encode())
    for name, path in files:
        digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _source_files(fn: Callable[..., Any]) -> list[tuple[str, Path]]:
    """Every ``.py`` file of the callable's top-level package (named relative to it, so the fingerprint
    does not depend on where the checkout is), or its own file when it is a plain module."""
    try:
        own = Path(inspect.getsourcefile(fn) or "")
    except TypeError:  # a builtin or a C extension
        return []
    top = sys.modules.get((getattr(fn, "__module__", None) or "").partition(".")[0])
    folders = [Path(folder) for folder in getattr(top, "__path__", ())]
    if not folders:
        return [(own.name, own)] if own.is_file() else []
    return sorted({(p.relative_to(folder).as_posix(), p) for folder in folders for p in folder.rglob("*.py")})


@register_backend("python")
def build(rest: str, options: ModelOptions) -> PythonRewardModel:
    """Import ``MODULE:CALLABLE`` (the current directory is importable) and wrap it."""
    return PythonRewardModel(f"python:{rest}", resolve(rest))


@register_spec_check("python")
def check(rest: str, options: ModelOptions) -> None:
    """Before the run: the module imports and has the callable."""
    resolve(rest)


def resolve(rest: str) -> Callable[..., Any]:
    """The callable ``MODULE:CALLABLE`` names, or one BackendError."""
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
    except Exception as exc:  # the user's module failing as it imports (SyntaxError, NameError, ...)
        raise BackendError(f"importing {module_name!r} for {spec} raised {type(exc).__name__}: {exc}", where="--rm",
                           fix="Fix the module so that it imports") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise BackendError(f"{module_name} has no callable {attr!r}", where="--rm",
                           fix="Name a function taking (prompts, responses) and returning one score per pair")
    return fn
