"""Options shared by the pytest plugin and the CLI, declared once."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .backends.base import ModelOptions
from .errors import RmcheckError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

ENV_MODEL = "RMCHECK_MODEL"


@dataclass(frozen=True)
class Option:
    """One option: its pytest flag, its CLI flag and its argparse-style keywords."""

    dest: str
    pytest_flag: str
    cli_flag: str
    kwargs: dict[str, Any]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"{text} is not a positive whole number")
    return value


OPTIONS = [
    Option("rm", "--rm", "--rm", dict(action="append", default=[], metavar="SPEC",
           help="reward model to test (repeatable): demo, hf:ID_OR_PATH[@REV], python:MODULE:CALLABLE, http://HOST:PORT")),
    Option("rmcheck_json", "--rmcheck-json", "--json", dict(default=None, metavar="PATH",
           help="write the JSON run document to PATH")),
    Option("rmcheck_device", "--rmcheck-device", "--device", dict(default=None, metavar="DEVICE",
           help="torch device for hf: models (cpu, cuda, cuda:1, auto); default cpu")),
    Option("rmcheck_dtype", "--rmcheck-dtype", "--dtype", dict(default=None,
           choices=["float32", "bfloat16", "float16", "auto"], help="torch dtype for hf: models; default float32")),
    Option("rmcheck_max_length", "--rmcheck-max-length", "--max-length", dict(default=None, type=_positive_int,
           metavar="N", help="truncate (prompt + response) to N tokens")),
    Option("rmcheck_batch_size", "--rmcheck-batch-size", "--batch-size", dict(default=None, type=_positive_int,
           metavar="N", help="pairs per forward pass (default 32)")),
    Option("rmcheck_trust_remote_code", "--rmcheck-trust-remote-code", "--trust-remote-code",
           dict(action="store_true", default=False, help="allow hf: models to run their own code (off by default)")),
    Option("rmcheck_shrink_budget", "--rmcheck-shrink-budget", "--shrink-budget", dict(default=None,
           type=_positive_int, metavar="N", help="candidate edit sets tried per failing case (default 100)")),
]


def add_options(add: Callable[..., Any], *, pytest_style: bool) -> None:
    """Declare every option through ``add`` (``group.addoption`` or ``parser.add_argument``)."""
    for option in OPTIONS:
        flag = option.pytest_flag if pytest_style else option.cli_flag
        add(flag, dest=option.dest, **option.kwargs)


def model_options(get: Callable[[str], Any]) -> ModelOptions:
    """Model settings from parsed options (``get(dest)``)."""
    return ModelOptions(
        device=get("rmcheck_device"), dtype=get("rmcheck_dtype"), max_length=get("rmcheck_max_length"),
        batch_size=get("rmcheck_batch_size"), trust_remote_code=bool(get("rmcheck_trust_remote_code")),
    )


def resolve_models(given: list[str], rootdir: Path) -> list[str]:
    """The model specs to test: ``--rm`` values, else pyproject's ``[tool.rmcheck] model``, else RMCHECK_MODEL."""
    if given:
        return list(dict.fromkeys(given))
    configured = pyproject_setting(rootdir, "model")
    if configured:
        return [configured] if isinstance(configured, str) else [str(m) for m in configured]
    if os.environ.get(ENV_MODEL, "").strip():
        return [os.environ[ENV_MODEL].strip()]
    return []


NO_MODEL = RmcheckError(
    "no reward model named", where="rmcheck",
    fix=f"Pass --rm SPEC, set [tool.rmcheck] model = \"SPEC\" in pyproject.toml, or set {ENV_MODEL}",
)


def pyproject_setting(rootdir: Path, key: str) -> Any:
    """``[tool.rmcheck] KEY`` from the nearest pyproject.toml at or above ``rootdir``."""
    for folder in (rootdir, *rootdir.parents):
        path = folder / "pyproject.toml"
        if path.is_file():
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                raise RmcheckError(f"invalid TOML: {exc}", where=str(path)) from None
            return data.get("tool", {}).get("rmcheck", {}).get(key)
    return None
