"""What the release gate compares against: a run document, or baselines committed beside the suites.

``--baseline BASE.json`` gates each test against the same test in one run document. ``--baseline DIR``
gates it against the baseline that ``--update-baseline`` wrote beside its suite, one file per suite and
model: ``suites/identity.rmcheck.yaml`` run against ``demo`` has ``suites/__rmcheck__/identity.demo.json``.
A model is gated against its own baseline, else the suite's only one (the released model's). The file
is JSON with sorted keys and one line per case, so its diff reviews well in a pull request.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from ..errors import RmcheckError
from ..results import load_run_document
from ..suite.loader import SUITE_GLOB, load_suite
from .compare import (DEFAULT_ALPHA, Comparison, TestChange, Thresholds, change_of, compare_results, models_in,
                      pick_model)

FOLDER = "__rmcheck__"
FORMAT = 1
SUITE_SUFFIX = SUITE_GLOB.lstrip("*")  # .rmcheck.yaml
#: Per test, what a baseline keeps besides its cases; per case, its id, verdict, delta and (failing) minimal.
RESULT_KEYS = ("attribute", "expect", "min_pass_rate", "outcome", "pass_rate")
DELTA_DIGITS = 4  # significant digits kept of each delta: float noise between runs does not churn the file
TEXT_KEYS = ("prompt", "role", "original", "perturbed")  # what a compared case takes from the run's own case


def model_slug(spec: str) -> str:
    """A file-name part for a model spec: the spec itself when it is lower-case letters, digits, ``.``, ``_``
    and ``-`` (``demo``); else its runs of other characters as ``-``, with 8 hex digits of its sha256 so
    that distinct specs stay distinct (``hf:/path/x`` -> ``hf-path-x-1b2e6f0a``)."""
    if re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,79}", spec):
        return spec
    readable = re.sub(r"[^A-Za-z0-9._]+", "-", spec).strip("-.")[:60].rstrip("-.")
    return f"{readable}-{hashlib.sha256(spec.encode()).hexdigest()[:8]}".lstrip("-")


def baseline_path(suite_file: str | Path, spec: str) -> Path:
    """Where the baseline of one suite and model lives: ``SUITE_DIR/__rmcheck__/STEM.MODEL.json``."""
    suite = Path(suite_file)
    return suite.parent / FOLDER / f"{suite.name.removesuffix(SUITE_SUFFIX)}.{model_slug(spec)}.json"


def suite_path(suite_file: str | Path, root: str | Path | None = None) -> Path:
    """The suite a result's ``suite_file`` names: relative to ``root`` (the pytest rootdir), by default to the
    current directory (``rmcheck run``), unless absolute (see :func:`rmcheck.suite.naming.suite_file`)."""
    return Path(root or "") / suite_file


def shown(path: str | Path) -> str:
    """A path as a person would type it: relative to the current directory when it lies under it."""
    text = os.path.relpath(path) if Path(path).is_absolute() else str(path)
    return str(path) if text.startswith("..") else text


def sha256_of(path: str | Path) -> str:
    """The content digest a run document records of the baseline each test was compared against."""
    stat = Path(path).stat()
    return _sha256(str(path), (stat.st_mtime_ns, stat.st_size))


@lru_cache(maxsize=256)
def _sha256(path: str, stamp: tuple[int, int]) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _key(result: dict[str, Any]) -> str:
    return f"{result['suite']}::{result['test']}"


class Baseline:
    """Finds each test's baseline result and judges the change (:func:`judge`, through :class:`TestChange`)."""

    label = ""

    def __init__(self, thresholds: Thresholds, alpha: float | None = DEFAULT_ALPHA) -> None:
        self.thresholds, self.alpha = thresholds, alpha

    def find(self, result: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]] | None:
        """The baseline's result of the test of ``result`` (keys suite, suite_file, test, model) and its source
        ``{path, sha256, model}``; None when there is none to compare with."""
        raise NotImplementedError

    def require(self, result: dict[str, Any]) -> None:
        """Raise when the test of ``result`` must have a baseline and has none (the default: it need not)."""

    def source(self, result: dict[str, Any]) -> dict[str, str] | None:
        """``{path, sha256, model}`` of the baseline the test of ``result`` is compared against, for the run document."""
        found = self._found(result)
        return found[1] if found else None

    def check(self, result: dict[str, Any]) -> TestChange | None:
        """The change against the baseline's result of the same test, or None when the baseline lacks it."""
        found = self.find(result)
        return change_of(found[0], result, self.thresholds, self.alpha) if found else None

    def compare(self, results: list[dict[str, Any]]) -> Comparison:
        """One model's results against the baseline, over the tests this run ran (a subset is not a regression;
        a test whose baseline could not be found was reported as an error already)."""
        bases = [found for r in results if (found := self._found(r))]
        models = sorted({source["model"] for _, source in bases})
        return compare_results([base for base, _ in bases], results, f"{', '.join(models)} ({self.label})",
                               results[0]["model"] if results else "", self.thresholds, self.alpha)

    def _found(self, result: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]] | None:
        try:
            return self.find(result)
        except RmcheckError:
            return None

    def unused(self) -> list[Unused]:
        """Baselines no test can use any more (``syrupy`` lists unused snapshots the same way)."""
        return []


class RunBaseline(Baseline):
    """A baseline run document (``--baseline BASE.json``); a test it lacks cannot regress."""

    def __init__(self, path: str | Path, thresholds: Thresholds, alpha: float | None = DEFAULT_ALPHA) -> None:
        super().__init__(thresholds, alpha)
        self.path = str(path)
        self.doc = load_run_document(path)
        self.label = Path(self.path).name
        self.sha256 = sha256_of(path)

    def find(self, result: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]] | None:
        found = models_in(self.doc)
        model = result["model"] if result["model"] in found else pick_model(self.doc, None, self.path)
        base = next((r for r in self.doc["results"] if r["model"] == model and _key(r) == _key(result)), None)
        return (base, {"path": shown(self.path), "sha256": self.sha256, "model": model}) if base else None


class SuiteBaselines(Baseline):
    """Baselines beside the suites (``--baseline DIR``). With ``required``, a gated test whose baseline is
    missing is an error that names the command writing it."""

    def __init__(self, folder: str | Path, thresholds: Thresholds, alpha: float | None = DEFAULT_ALPHA, *,
                 required: bool = True, root: str | Path | None = None) -> None:
        super().__init__(thresholds, alpha)
        self.folder, self.required, self.root = Path(folder), required, root
        self.label = f"baselines beside the suites under {shown(folder)}"

    def find(self, result: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]] | None:
        path = self._file(suite_path(result["suite_file"], self.root), result["model"])
        baseline = read_baseline(path) if path else None
        entry = baseline and baseline["tests"].get(result["test"])
        if not entry:
            return None
        texts = {c["id"]: c for c in result.get("cases", [])}  # a baseline keeps no texts: the run's are the same
        cases = [{**{k: v for k, v in texts.get(c["id"], {}).items() if k in TEXT_KEYS}, **c} for c in entry["cases"]]
        base = {"suite": baseline["suite"], "suite_file": str(result["suite_file"]), "test": result["test"],
                "model": baseline["model"], **entry["result"], "cases": cases}
        return base, {"path": shown(path), "sha256": sha256_of(path), "model": baseline["model"]}

    def require(self, result: dict[str, Any]) -> None:
        if self.required and self.find(result) is None:
            suite = suite_path(result["suite_file"], self.root)
            raise missing_baseline(result, suite, self._file(suite, result["model"]) or
                                   baseline_path(suite, result["model"]))

    def _file(self, suite: Path, spec: str) -> Path | None:
        """The model's own baseline of the suite, else the suite's only one; None when it has none."""
        own = baseline_path(suite, spec)
        if own.is_file():
            return own
        others = [p for p in suite_baselines(suite) if p != own]
        if len(others) > 1:
            models = ", ".join(read_baseline(p)["model"] for p in others)
            raise RmcheckError(f"baselines of {len(others)} models for {shown(suite)} ({models}) and none of "
                               f"{spec}", where=shown(own.parent),
                               fix="Keep the released model's baselines only, or gate one of these models")
        return others[0] if others else None

    def unused(self) -> list[Unused]:
        return unused_baselines([self.folder])


def open_baseline(path: str | Path | None, thresholds: Thresholds, alpha: float | None, *,
                  required: bool = True, root: str | Path | None = None) -> Baseline | None:
    """``--baseline PATH``: a folder of baselines beside suites, or a run document; None without one. ``root``
    is the folder the results' ``suite_file`` is relative to (the pytest rootdir; the current directory)."""
    if not path:
        return None
    if Path(path).is_dir():
        return SuiteBaselines(path, thresholds, alpha, required=required, root=root)
    return RunBaseline(path, thresholds, alpha)


def missing_baseline(result: dict[str, Any], suite: Path, path: Path) -> RmcheckError:
    command = f"rmcheck run {shlex.quote(shown(suite))} --rm {shlex.quote(result['model'])} --update-baseline"
    return RmcheckError(f"no baseline of {_key(result)} [{result['model']}]", where=shown(path),
                        fix=f"Write it with `{command}` (pytest: --rmcheck-update-baseline) and commit it")


# -- the file --------------------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _read(path: str, stamp: tuple[int, int]) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RmcheckError(f"cannot read baseline: {exc}", where=shown(path),
                           fix="Rewrite it with --update-baseline (rmcheck run) or --rmcheck-update-baseline") from None
    if not isinstance(doc, dict) or doc.get("rmcheck_baseline") != FORMAT or not isinstance(doc.get("tests"), dict):
        raise RmcheckError(f"not an rmcheck baseline of format {FORMAT}", where=shown(path),
                           fix="Rewrite it with --update-baseline (rmcheck run) or --rmcheck-update-baseline")
    return doc


def read_baseline(path: Path) -> dict[str, Any]:
    """A baseline file, read once per version of it."""
    stat = path.stat()
    return _read(str(path), (stat.st_mtime_ns, stat.st_size))


def suite_baselines(suite_file: Path) -> list[Path]:
    """The baselines of one suite, for every model that has one."""
    folder = suite_file.parent / FOLDER
    stem = suite_file.name.removesuffix(SUITE_SUFFIX)
    return sorted(p for p in folder.glob(f"{stem}.*.json") if read_baseline(p).get("suite_file") == suite_file.name)


def baseline_text(results: Sequence[dict[str, Any]], model: dict[str, Any]) -> str:
    """One suite's baseline for one model: JSON with sorted keys, one line per case."""
    first = results[0]
    head = {"fingerprint": model.get("fingerprint", ""), "model": model["spec"], "rmcheck_baseline": FORMAT,
            "suite": first["suite"], "suite_file": Path(first["suite_file"]).name}
    dump = lambda value: json.dumps(value, sort_keys=True, ensure_ascii=False)  # noqa: E731
    lines = ["{", *(f"  {dump(k)}: {dump(v)}," for k, v in head.items()), '  "tests": {']
    tests = sorted(results, key=lambda r: r["test"])
    for n, result in enumerate(tests, start=1):
        cases = [dump(_case(c)) for c in result["cases"]]
        lines += [f"    {dump(result['test'])}: {{", '      "cases": [',
                  *(f"        {c}{',' if i < len(cases) else ''}" for i, c in enumerate(cases, start=1)),
                  "      ],", f'      "result": {dump({k: result.get(k) for k in RESULT_KEYS})}',
                  "    }" + ("," if n < len(tests) else "")]
    return "\n".join([*lines, "  }", "}", ""])


def _case(case: dict[str, Any]) -> dict[str, Any]:
    delta = case.get("delta")
    kept = {"id": case["id"], "verdict": case["verdict"],
            "delta": float(f"{delta:.{DELTA_DIGITS}g}") if isinstance(delta, float) else delta}
    if case["verdict"] == "failed" and "minimal" in case:
        kept["minimal"] = case["minimal"]
    return kept


def _entries(path: Path) -> dict[str, dict[str, Any]]:
    return read_baseline(path)["tests"] if path.is_file() else {}


def update_baselines(results: Sequence[dict[str, Any]], models: Sequence[dict[str, Any]],
                     root: str | Path | None = None) -> list[str]:
    """Write the baseline of each suite and model that ran (``--update-baseline``); what was written and deleted.
    ``root`` is the folder the results' ``suite_file`` is relative to (the pytest rootdir; the current directory).

    A test that did not run this time (``-k``) keeps its entry; a test no longer in its suite loses it, and a
    baseline whose suite is gone is deleted, in the folders written to.
    """
    by_spec = {m["spec"]: m for m in models}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for result in results:
        groups.setdefault((result["suite_file"], result["model"]), []).append(result)
    lines = []
    for (suite_file, spec), ran in groups.items():
        path = baseline_path(suite_path(suite_file, root), spec)
        names = {t.name for t in load_suite(suite_path(suite_file, root)).tests}
        kept = {name: entry for name, entry in _entries(path).items() if name in names}
        for result in ran:
            kept.pop(result["test"], None)
        old = [{"suite": ran[0]["suite"], "suite_file": suite_file, "test": name, **entry["result"],
                "cases": entry["cases"]} for name, entry in kept.items()]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(baseline_text([*ran, *old], by_spec.get(spec, {"spec": spec})), encoding="utf-8")
        lines.append(f"wrote {shown(path)} ({len(ran) + len(old)} tests)")
    for stale in unused_baselines({baseline_path(suite_path(s, root), m).parent for s, m in groups}):
        if stale.test is None:  # its suite is gone
            stale.path.unlink()
        lines.append(f"{'deleted' if stale.test is None else 'unused'} {stale}")  # unused: a model that did not run
    return lines


@dataclass(frozen=True)
class Unused:
    """A baseline file whose suite is gone (``test`` None), or one test's entry that its suite no longer has."""

    path: Path
    suite: Path
    test: str | None = None

    def __str__(self) -> str:
        if self.test is None:
            return f"{shown(self.path)} (no suite {shown(self.suite)})"
        return f"{shown(self.path)}::{self.test} (no such test in {shown(self.suite)})"


def unused_baselines(roots: Iterable[Path]) -> list[Unused]:
    """The baselines under ``roots`` that no test can use: files whose suite is gone, entries whose test is."""
    found = []
    for path in sorted({p for root in roots for p in _baseline_files(Path(root))}):
        baseline = read_baseline(path)
        suite = path.parent.parent / str(baseline.get("suite_file"))
        if not suite.is_file():
            found.append(Unused(path, suite))
            continue
        try:
            names = {t.name for t in load_suite(suite).tests}
        except RmcheckError:
            continue  # an invalid suite is reported where it is collected
        found += [Unused(path, suite, name) for name in baseline["tests"] if name not in names]
    return found


def _baseline_files(root: Path) -> Iterator[Path]:
    folders = [root] if root.name == FOLDER else [root / FOLDER, *root.rglob(FOLDER)]
    for folder in folders:
        yield from (p for p in folder.glob("*.json") if p.is_file())
