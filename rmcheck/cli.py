"""``rmcheck``: run and validate suites without pytest."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from . import __version__
from .engine import DEFAULT_SHRINK_BUDGET, run_suites
from .errors import RmcheckError
from .options import NO_MODEL, add_options, model_options, resolve_models
from .report import one_line
from .results import TestResult, run_document
from .suite import find_suites, load_suite

DEFAULT_JSON = ".rmcheck/last-run.json"


def builtin_suites() -> Path:
    """The built-in suite library (``suites/`` beside the package in a checkout or editable install)."""
    return Path(__file__).resolve().parent.parent / "suites"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except RmcheckError as exc:
        print(f"rmcheck: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rmcheck: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rmcheck", description="Behavioural testing for LLM reward models.")
    parser.add_argument("--version", action="version", version=f"rmcheck {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run suites against reward models and print a summary")
    run.add_argument("paths", nargs="*", metavar="PATH", help="suite files or directories (default: the built-in suites)")
    add_options(run.add_argument, pytest_style=False)
    run.set_defaults(func=_run)

    validate = commands.add_parser("validate", help="check suite files against the format; exit 1 on any error")
    validate.add_argument("paths", nargs="+", metavar="PATH")
    validate.set_defaults(func=_validate)
    return parser


def _validate(args: argparse.Namespace) -> int:
    bad = 0
    for path in find_suites(args.paths):
        try:
            suite = load_suite(path)
        except RmcheckError as exc:
            bad += 1
            print(exc)
            continue
        print(f"{path}: ok ({len(suite.cases)} cases, {len(suite.tests)} tests)")
    return 1 if bad else 0


def _run(args: argparse.Namespace) -> int:
    specs = resolve_models(args.rm, Path.cwd())
    if not specs:
        raise NO_MODEL
    paths = args.paths or [builtin_suites()]
    report = run_suites(paths, specs, model_options(lambda dest: getattr(args, dest)),
                        shrink_budget=args.rmcheck_shrink_budget or DEFAULT_SHRINK_BUDGET, progress=_progress)
    print(file=sys.stderr)
    for spec in specs:
        try:
            print(f"model: {report.engine.model(spec).describe()}")
        except RmcheckError:
            pass
    _print_table(report.results)
    for request, error in report.errors:
        print(f"error: {request.suite.name}::{request.test.name} [{request.spec}]: {error}")
    target = Path(args.rmcheck_json or DEFAULT_JSON)
    target.parent.mkdir(parents=True, exist_ok=True)
    models = []
    for spec in specs:
        try:
            model = report.engine.model(spec)
        except RmcheckError:
            continue
        models.append({"spec": spec, "fingerprint": model.fingerprint, "description": model.describe()})
    target.write_text(json.dumps(run_document([r.to_json() for r in report.results], models), indent=2), encoding="utf-8")
    failed = sum(r.outcome == "failed" for r in report.results)
    print(f"\n{len(report.results) - failed} passed, {failed} failed, {len(report.errors)} errors; "
          f"JSON run document: {target}")
    return 1 if failed or report.errors else 0


def _progress(what: str, done: int, total: int) -> None:
    print(f"\r{what}: {done}/{total} pairs", end="", file=sys.stderr, flush=True)


def _print_table(results: list[TestResult]) -> None:
    rows = [("suite", "test", "model", "pass rate", "worst case (minimal pair)")]
    for r in results:
        rate = "n/a" if r.pass_rate is None else f"{r.pass_rate:.2f}"
        worst = r.worst()
        mark = {"passed": "ok", "failed": "FAIL", "not_applicable": "n/a"}[r.outcome]
        rows.append((r.suite, r.test, r.model, f"{rate} {mark}", one_line(worst) if worst else ""))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + "  " + row[4])


if __name__ == "__main__":
    sys.exit(main())
