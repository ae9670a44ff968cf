"""``python:MODULE:CALLABLE`` — any Python function as a reward model."""
from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import BackendError
from ..registry import Registry
from .base import ModelOptions, Pair, RewardModel, Scores, normalise_scores

#: What a callable (or its module) sets to say what else its scores depend on (weights, data files, a
#: version): a string, or a function returning one. Without it, its scores are not cached on disk.
DECLARED = "rmcheck_fingerprint"
#: What a callable (or its module) sets to name the files its scores depend on: globs relative to the module's
#: folder, hashed by content into the fingerprint (helper modules, data files).
DECLARED_FILES = "rmcheck_fingerprint_files"
#: What a callable sets to say it is not a scalar RM: ``FN.rmcheck_interface = "process"`` (one score per step) or
#: ``"pairwise"`` (P(first of two responses is better)).
INTERFACE = "rmcheck_interface"
#: Builders of the other interfaces a callable may declare, each ``(spec, fn) -> model``.
INTERFACES: Registry[Callable[[str, Callable[..., Any]], RewardModel]] = Registry(
    "python: interface", None, {"process": "rmcheck.process.model:build_python",
                                "pairwise": "rmcheck.judges.python_pairwise:build_python"})


class FingerprintWarning(UserWarning):
    """A cached ``python:`` model's folder has modules its fingerprint does not cover: editing them serves old
    scores."""


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
        named = _declared_files(spec, fn)
        files = _source_files(fn) + (named or [])
        self._fingerprint = _fingerprint(spec, fn, declared, files)
        if self.cacheable and named is None:
            _warn_uncovered(spec, fn, files)

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
        except (Exception, SystemExit) as exc:  # a user's function failing (or exiting) is a user error
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
        except (Exception, SystemExit) as exc:  # the user's own function
            raise BackendError(f"{DECLARED} of {spec} raised {type(exc).__name__}: {exc}", where="--rm",
                               fix=f"Make {DECLARED} return a string (e.g. a hash of the weights it loads)") from None
    return None if value is None else str(value)


def _fingerprint(spec: str, fn: Callable[..., Any], declared: str | None, files: list[tuple[str, Path]]) -> str:
    """sha256 over the spec, the declared fingerprint, and the source files of the callable's package with
    the files it declares."""
    digest = hashlib.sha256(json.dumps([spec, declared]).encode())
    if not files:
        digest.update(repr(fn).encode())
    for name, path in files:
        digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _folder(fn: Callable[..., Any]) -> Path | None:
    """The folder of the callable's module (None for a builtin)."""
    try:
        return Path(inspect.getsourcefile(fn) or "").resolve().parent
    except TypeError:
        return None


def _declared_files(spec: str, fn: Callable[..., Any]) -> list[tuple[str, Path]] | None:
    """The files ``rmcheck_fingerprint_files`` names (globs relative to the module's folder), sorted; None when
    it is not set."""
    module = sys.modules.get(getattr(fn, "__module__", None) or "")
    globs = getattr(fn, DECLARED_FILES, getattr(module, DECLARED_FILES, None))
    folder = _folder(fn)
    if globs is None or folder is None:
        return None
    if isinstance(globs, str) or not all(isinstance(g, str) for g in globs):
        raise BackendError(f"{DECLARED_FILES} of {spec} is {globs!r}", where="--rm",
                           fix=f'Make it a list of globs relative to {folder}, e.g. ["*.py", "data/*.json"]')
    found = {p for pattern in globs for p in folder.glob(pattern) if p.is_file()}
    return sorted((f"{DECLARED_FILES}/{Path(os.path.relpath(p, folder)).as_posix()}", p) for p in found)


def _warn_uncovered(spec: str, fn: Callable[..., Any], files: list[tuple[str, Path]]) -> None:
    """Warn once (per model and run) when the module's folder has ``*.py`` siblings its fingerprint does not
    hash: a plain module's package is its folder, and an edited helper there would serve old scores."""
    folder = _folder(fn)
    if folder is None:
        return
    covered = {path.resolve() for _, path in files}
    uncovered = sorted(p.name for p in folder.glob("*.py") if p.resolve() not in covered)
    if uncovered:
        shown = ", ".join(uncovered[:5]) + (f" and {len(uncovered) - 5} more" if len(uncovered) > 5 else "")
        warnings.warn(FingerprintWarning(
            f"{spec}: its cached scores stay the same when {shown} in {folder} change. Name the files the model "
            f'reads in {DECLARED_FILES} = ["helper.py", "data/*.json"] (globs relative to that folder; [] for none) '
            "beside its rmcheck_fingerprint"),
            stacklevel=2)


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


def build(rest: str, options: ModelOptions) -> RewardModel:
    """Import ``MODULE:CALLABLE`` (the current directory is importable) and wrap it as the interface it declares
    (``rmcheck_interface``; a scalar RM without one)."""
    spec, fn = f"python:{rest}", resolve(rest)
    interface = getattr(fn, INTERFACE, None)
    if interface is None:
        return PythonRewardModel(spec, fn)
    wrap = INTERFACES.get(interface) if isinstance(interface, str) else None
    if wrap is None:
        raise BackendError(f"{spec} declares {INTERFACE} = {interface!r}, which rmcheck does not know", where="--rm",
                           fix=f"Set it to one of: {', '.join(INTERFACES.names())} (or leave it out for a scalar RM)")
    return wrap(spec, fn)


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
    except (Exception, SystemExit) as exc:  # the user's module failing as it imports (SyntaxError, sys.exit, ...)
        raise BackendError(f"importing {module_name!r} for {spec} raised {type(exc).__name__}: {exc}", where="--rm",
                           fix="Fix the module so that it imports") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise BackendError(f"{module_name} has no callable {attr!r}", where="--rm",
                           fix="Name a function taking (prompts, responses) and returning one score per pair")
    return fn
