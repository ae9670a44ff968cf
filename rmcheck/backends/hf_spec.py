"""The ``hf:`` scheme: ``hf:ID_OR_PATH[@REVISION][?OPTIONS]``.

Without options it is a sequence-classification reward model (:mod:`rmcheck.backends.hf`); with
``?prm=shepherd|qwen[&...]`` a process reward model (:mod:`rmcheck.process.hf`). Options are ``&``-separated
``KEY=VALUE``, %-decoded (a ``+`` stays a plus, as ``good=+`` needs), each given once.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ..errors import BackendError
from ..process import hf as process
from . import hf
from .pretrained import parse_spec
from .base import ModelOptions


def build(rest: str, options: ModelOptions) -> Any:
    """The model ``hf:REST`` names, loaded."""
    path, query = split_options(rest)
    if not query:
        return hf.build(path, options)
    source, revision = parse_spec(path)
    return process.build(source, revision, process.parse(f"hf:{rest}", query), options, spec=f"hf:{rest.strip()}")


def check(rest: str, options: ModelOptions) -> None:
    """Before the run: the spec and its options parse, and a local path exists and holds config.json."""
    path, query = split_options(rest)
    if query:
        process.parse(f"hf:{rest}", query)
    hf.check(path, options)


def split_options(rest: str) -> tuple[str, dict[str, str]]:
    """``"DIR?prm=shepherd&good=+"`` -> ``("DIR", {"prm": "shepherd", "good": "+"})``. An existing path keeps any
    ``?`` it contains."""
    if "?" not in rest or Path(rest.strip()).expanduser().exists():
        return rest, {}
    path, _, query = rest.partition("?")
    options: dict[str, str] = {}
    for part in filter(None, query.split("&")):
        key, sep, value = part.partition("=")
        if not sep or key in options:
            raise BackendError(f"hf:{rest}: {part!r} is " + ("given twice" if sep else "not KEY=VALUE"), where="--rm",
                               fix="Write hf:ID_OR_PATH?prm=shepherd&step_tag=ки (each option once, as KEY=VALUE)")
        options[unquote(key)] = unquote(value)
    return path, options
