"""Options shared by the pytest plugin and the CLI, declared once."""
from __future__ import annotations

import difflib
import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .backends.base import SPEC_FORMS, ModelOptions
from .backends.pretrained import parse_max_memory
from .report.compare import DEFAULT_ALPHA
from .report.gate import FAIL_ON
from .scoring.cache import DEFAULT_CACHE_DIR, ScoreCache, run_cache
from .scoring.scheduler import DEFAULT_BATCH_SIZE, DEFAULT_BATCH_TOKENS
from .errors import RmcheckError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

ENV_MODEL = "RMCHECK_MODEL"
DEFAULT_MODEL = "demo"


@dataclass(frozen=True)
class Option:
    """One option: its pytest flag, its CLI flag and its argparse-style keywords."""

    dest: str
    pytest_flag: str
    cli_flag: str
    kwargs: dict[str, Any]


def _probability(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise ValueError(f"{text} is not a probability in (0, 1]")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"{text} is not a positive whole number")
    return value


OPTIONS = [
    Option("rm", "--rm", "--rm", dict(action="append", default=[], metavar="SPEC",
           help="reward model to test (repeatable; the first is the base of comparisons): " + SPEC_FORMS)),
    Option("rmcheck_json", "--rmcheck-json", "--json", dict(default=None, metavar="PATH",
           help="write the JSON run document to PATH")),
    Option("rmcheck_device", "--rmcheck-device", "--device", dict(default=None, metavar="DEVICE",
           help="torch device for hf: models (cpu, cuda, cuda:1, auto); default cpu")),
    Option("rmcheck_dtype", "--rmcheck-dtype", "--dtype", dict(default=None,
           choices=["float32", "bfloat16", "float16", "auto"], help="torch dtype for hf: models; default float32")),
    Option("rmcheck_max_length", "--rmcheck-max-length", "--max-length", dict(default=None, type=_positive_int,
           metavar="N", help="truncate (prompt + response) to N tokens")),
    Option("rmcheck_batch_size", "--rmcheck-batch-size", "--batch-size", dict(default=None, type=_positive_int,
           metavar="N", help=f"most pairs per forward pass (default {DEFAULT_BATCH_SIZE})")),
    Option("rmcheck_batch_tokens", "--rmcheck-batch-tokens", "--batch-tokens", dict(default=None, type=_positive_int,
           metavar="N", help="most padded tokens (pairs x longest pair) per forward pass, for models that count "
                             f"tokens (hf:, demo); default {DEFAULT_BATCH_TOKENS}")),
    Option("rmcheck_no_prefix_sharing", "--no-prefix-sharing", "--no-prefix-sharing", dict(
           action="store_true", default=False,
           help="score every pair in full forward passes, never from a shared prefix's KV cache (decoder hf: "
                "models share the prompt and the unchanged head of a response by default)")),
    Option("rmcheck_cache", "--rmcheck-cache", "--cache", dict(default=None, metavar="DIR",
           help=f"on-disk score cache directory (default {DEFAULT_CACHE_DIR} under the rootdir, for the CLI "
                "the current directory)")),
    Option("rmcheck_no_cache", "--rmcheck-no-cache", "--no-cache", dict(action="store_true", default=False,
           help="neither read nor write the on-disk score cache")),
    Option("rmcheck_attn_implementation", "--rmcheck-attn-implementation", "--attn-implementation", dict(
           default=None, metavar="NAME", help="attention implementation for hf:/dpo: models (eager, sdpa, "
                                              "flash_attention_2, ...); default transformers' choice")),
    Option("rmcheck_device_map", "--rmcheck-device-map", "--device-map", dict(
           default=None, choices=["auto", "balanced", "balanced_low_0", "sequential"],
           help="shard hf:/dpo: models over the GPUs through accelerate (from_pretrained's device_map)")),
    Option("rmcheck_max_memory", "--rmcheck-max-memory", "--max-memory", dict(
           default=None, type=parse_max_memory, metavar="DEV=AMOUNT,...",
           help="with --device-map: the most memory per device, e.g. 0=20GiB,1=20GiB,cpu=64GiB")),
    Option("rmcheck_padding_side", "--rmcheck-padding-side", "--padding-side", dict(
           default=None, choices=["left", "right"], help="pad hf: batches on this side (default: the tokenizer's)")),
    Option("rmcheck_trust_remote_code", "--rmcheck-trust-remote-code", "--trust-remote-code",
           dict(action="store_true", default=False, help="allow hf: models to run their own code (off by default)")),
    Option("rmcheck_shrink_budget", "--rmcheck-shrink-budget", "--shrink-budget", dict(default=None,
           type=_positive_int, metavar="N", help="candidate edit sets tried per failing case (default 100)")),
    Option("rmcheck_llm", "--rmcheck-llm", "--llm", dict(default=None, choices=["auto", "replay", "record", "live"],
           help="LLM calls (llm_rewrite, openai: judges): auto (default) replays the cassette and records what "
                "is missing, except under CI=true; replay, record or live")),
    Option("rmcheck_cassettes", "--rmcheck-cassettes", "--cassettes", dict(default=None, metavar="DIR",
           help="folder for openai: judge cassettes (default fixtures/cassettes)")),
    Option("rmcheck_baseline", "--rmcheck-baseline", "--baseline", dict(default=None, metavar="DIR|BASE.json",
           help="gate each test against its baseline: a folder whose suites have baselines beside them "
                "(__rmcheck__/, written by the update option), or a run document")),
    Option("rmcheck_update_baseline", "--rmcheck-update-baseline", "--update-baseline", dict(
           action="store_true", default=False,
           help="write each suite's baseline for each model beside the suite (SUITE_DIR/__rmcheck__/"
                "STEM.MODEL.json), to commit")),
    Option("rmcheck_max_regression", "--rmcheck-max-regression", "--max-regression", dict(
           action="append", default=[], metavar="[ATTRIBUTE=]DROP",
           help="largest tolerated pass-rate drop against the baseline, for every test (0.05) or the tests of "
                "one attribute (verbosity=0); repeatable; default 0")),
    Option("rmcheck_regression_alpha", "--rmcheck-regression-alpha", "--regression-alpha", dict(
           default=DEFAULT_ALPHA, type=_probability, metavar="P",
           help="count a drop as a regression only when the exact one-sided McNemar p-value over the cases both "
                f"runs judged is <= P (default {DEFAULT_ALPHA}; 1 lets the drop alone decide, as it does for a test "
                "with too few cases to reach P)")),
    Option("rmcheck_fail_on", "--rmcheck-fail-on", "--fail-on", dict(
           default=None, choices=list(FAIL_ON),
           help="what fails a test: absolute (below its min_pass_rate), regression (regressed against the "
                "baseline; a test failing in the baseline too is xfailed) or both; default both with a "
                "baseline, absolute without")),
]

#: Options of the release gate against a baseline (``rmcheck compare`` takes all but the baseline itself).
GATE_OPTIONS = ("rmcheck_baseline", "rmcheck_update_baseline", "rmcheck_max_regression", "rmcheck_regression_alpha",
                "rmcheck_fail_on")

#: The thresholds ``rmcheck compare`` takes.
COMPARE_OPTIONS = ("rmcheck_max_regression", "rmcheck_regression_alpha")

#: Options that are not model settings (``rmcheck serve`` takes all the others).
RUN_ONLY = ("rm", "rmcheck_json", "rmcheck_shrink_budget", "rmcheck_cache", "rmcheck_no_cache", *GATE_OPTIONS)


def add_options(add: Callable[..., Any], *, pytest_style: bool, skip: tuple[str, ...] = ()) -> None:
    """Declare every option (but those whose dest is in ``skip``) through ``add`` (``group.addoption`` or ``parser.add_argument``)."""
    for option in (o for o in OPTIONS if o.dest not in skip):
        flag = option.pytest_flag if pytest_style else option.cli_flag
        add(flag, dest=option.dest, **option.kwargs)


def pytest_flag(cli_flag: str) -> str:
    """The pytest spelling of a ``rmcheck run`` flag (``--json`` -> ``--rmcheck-json``), for error messages."""
    return next((o.pytest_flag for o in OPTIONS if o.cli_flag == cli_flag), cli_flag)


def model_options(get: Callable[[str], Any]) -> ModelOptions:
    """Model settings from parsed options (``get(dest)``)."""
    return ModelOptions(
        device=get("rmcheck_device"), dtype=get("rmcheck_dtype"), max_length=get("rmcheck_max_length"),
        batch_size=get("rmcheck_batch_size"), batch_tokens=get("rmcheck_batch_tokens"),
        trust_remote_code=bool(get("rmcheck_trust_remote_code")),
        prefix_sharing=not get("rmcheck_no_prefix_sharing"),
        attn_implementation=get("rmcheck_attn_implementation"), device_map=get("rmcheck_device_map"),
        max_memory=get("rmcheck_max_memory"), padding_side=get("rmcheck_padding_side"),
        extra={key: get(dest) for key, dest in (("llm", "rmcheck_llm"), ("cassettes", "rmcheck_cassettes")) if get(dest)},
    )


def score_cache(get: Callable[[str], Any], root: Path) -> ScoreCache | None:
    """The on-disk score cache the parsed options ask for (``get(dest)``), or None (``--no-cache``);
    a cache directory given with ``--no-cache`` is a usage error (one of the two was not meant)."""
    if get("rmcheck_no_cache") and get("rmcheck_cache"):
        raise RmcheckError(f"the cache is turned off, yet a cache directory ({get('rmcheck_cache')}) is given",
                           where="--no-cache", fix="Pass either --no-cache or --cache DIR "
                                                   "(--rmcheck-no-cache or --rmcheck-cache DIR under pytest)")
    return run_cache(get("rmcheck_cache"), root, disabled=bool(get("rmcheck_no_cache")))


def check_output(path: str | None, flag: str) -> None:
    """Before a run: a file it will write (``--json``) can be, i.e. no file stands where a folder of its
    path must be, and it is no folder itself."""
    if not path:
        return
    target = Path(path).absolute()
    if target.is_dir():
        raise RmcheckError(f"{path} is a folder", where=flag, fix="Give a file name, e.g. run.json")
    folder = next(f for f in target.parents if f.exists())
    if not folder.is_dir():
        raise RmcheckError(f"{path} cannot be written: {folder} is a file, not a folder", where=flag,
                           fix="Give a path whose folders are folders (they are created if missing)")


def resolve_models(given: list[str], rootdir: Path) -> list[str]:
    """The model specs to test, by the usual precedence: ``--rm`` values, else RMCHECK_MODEL, else
    pyproject's ``[tool.rmcheck] model``, else the embedded ``demo`` model."""
    if given:
        return list(dict.fromkeys(given))
    if os.environ.get(ENV_MODEL, "").strip():
        return [os.environ[ENV_MODEL].strip()]
    configured = pyproject_setting(rootdir, "model")
    if configured is None or configured in ("", []):
        return [DEFAULT_MODEL]
    if isinstance(configured, str):
        return [configured]
    if isinstance(configured, list) and all(isinstance(m, str) for m in configured):
        return list(dict.fromkeys(configured))
    path = _pyproject(rootdir)
    raise RmcheckError(f"model = {configured!r} in [tool.rmcheck] is not a model spec",
                       where=f"{path}:{_toml_line(path, 'model')}" if path else "pyproject.toml",
                       fix='Write model = "SPEC" or model = ["SPEC", ...], e.g. model = "hf:ORG/NAME"')


#: Where a user names the model, for the note that none was named.
HOW_TO_NAME_A_MODEL = (f"--rm SPEC, the environment variable {ENV_MODEL}=SPEC, or model = \"SPEC\" under "
                       "[tool.rmcheck] in pyproject.toml")


def model_configured(given: list[str], rootdir: Path) -> bool:
    """Whether a model was named at all (``--rm``, the environment or pyproject.toml); else the run tests ``demo``."""
    return bool(given or os.environ.get(ENV_MODEL, "").strip() or pyproject_setting(rootdir, "model"))


#: The keys of ``[tool.rmcheck]`` in pyproject.toml (``model = SPEC``; ``plugins = [MODULE, ...]``;
#: ``[tool.rmcheck.llm]`` and ``[tool.rmcheck.judge]`` tables for LLM calls). A module that reads another key
#: adds it here.
PYPROJECT_KEYS = ["model", "plugins", "llm", "judge"]


def load_plugins(rootdir: Path) -> list[str]:
    """Import the modules ``[tool.rmcheck] plugins`` names, with pyproject.toml's folder importable: they register
    operators, test kinds, backends and expectations as they import (the CLI and pytest call this before reading
    any suite). A module that does not import is one error at its line."""
    path = _pyproject(rootdir)
    names = pyproject_setting(rootdir, "plugins") if path else None
    if names is None:
        return []
    where = f"{path}:{_toml_line(path, 'plugins')}"
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        raise RmcheckError(f"plugins = {names!r} in [tool.rmcheck] is not a list of module names", where=where,
                           fix='Write plugins = ["my_plugins"] (modules importable from the folder of pyproject.toml)')
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    for name in names:
        try:
            importlib.import_module(name.strip())
        except (Exception, SystemExit) as exc:  # the user's module failing as it imports: one line, no traceback
            raise RmcheckError(f"plugin module {name!r} could not be imported: {type(exc).__name__}: {exc}",
                               where=where, fix="Fix the module, or make it importable from the folder of "
                                                "pyproject.toml (or install it)") from None
    return names


def check_pyproject(rootdir: Path) -> None:
    """Raise one error, at ``pyproject.toml:LINE``, for an unknown key of ``[tool.rmcheck]``."""
    path = _pyproject(rootdir)
    table = pyproject_setting(rootdir, None) if path else None
    if not isinstance(table, dict):
        return
    for key in table:
        if key not in PYPROJECT_KEYS:
            close = difflib.get_close_matches(str(key), PYPROJECT_KEYS, n=1)
            hint = f"Did you mean {close[0]!r}? " if close else ""
            raise RmcheckError(f"unknown key {key!r} in [tool.rmcheck]", where=f"{path}:{_toml_line(path, key)}",
                               fix=f"{hint}Its keys are: {', '.join(PYPROJECT_KEYS)}")


def _toml_line(path: Path, key: str) -> int:
    """The line of ``key`` in ``[tool.rmcheck]`` (or of its ``[tool.rmcheck.KEY]`` table), else of the table."""
    table, found = "", 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.strip()
        if text.startswith("["):
            table = text.strip("[] ")
            if table == f"tool.rmcheck.{key}":
                return number
            found = found or (number if table == "tool.rmcheck" else 0)
        elif table == "tool.rmcheck" and text.split("=")[0].strip().strip('"') == key:
            return number
    return found or 1


def _pyproject(rootdir: Path) -> Path | None:
    return next((f / "pyproject.toml" for f in (rootdir, *rootdir.parents) if (f / "pyproject.toml").is_file()), None)


def pyproject_setting(rootdir: Path, key: str | None) -> Any:
    """``[tool.rmcheck] KEY`` (None: the whole table) from the nearest pyproject.toml at or above ``rootdir``."""
    path = _pyproject(rootdir)
    if path is None:
        return None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise RmcheckError(f"invalid TOML: {exc}", where=str(path)) from None
    table = data.get("tool", {}).get("rmcheck", {})
    return table if key is None else table.get(key)
