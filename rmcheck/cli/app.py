"""``rmcheck``: run and validate suites without pytest."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from ..version import __version__
from ..backends.base import ModelOptions, load_model, objectives_of
from ..engine import DEFAULT_SHRINK_BUDGET, run_suites
from ..errors import RmcheckError
from ..report.rundoc import write_atomically
from ..report.compare import Baseline, compare_runs, parse_thresholds
from ..scoring.cache import DEFAULT_CACHE_DIR, clear_cache, describe_cache
from ..options import GATE_OPTIONS, OPTIONS, RUN_ONLY, add_options, model_options, resolve_models, score_cache
from ..report.text import one_line
from ..results import TestResult, run_document
from ..suite.loader import find_suites, load_suite
from . import explain as explain_command, sweep as sweep_command

DEFAULT_JSON = ".rmcheck/last-run.json"
DEFAULT_REPORT = ".rmcheck/report.html"


def builtin_suites() -> Path:
    """The built-in suite library: ``rmcheck/suites`` in an installed wheel (copied there from the
    repository's ``suites/`` by setup.py), else ``suites/`` beside the package (a checkout or editable install)."""
    packaged = Path(__file__).resolve().parent / "suites"
    return packaged if packaged.is_dir() else packaged.parent.parent / "suites"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except RmcheckError as exc:
        print(f"rmcheck: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file or folder the command was told to read or write
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"rmcheck: error: {where}{exc.strerror or exc}. Check the path and its permissions", file=sys.stderr)
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
    run.add_argument("--list-objectives", action="store_true",
                     help="print each model's objectives (heads usable as 'objective: NAME') and exit")
    run.set_defaults(func=_run)

    cache = commands.add_parser("cache", help="show (info) or delete (clear) the on-disk score cache")
    cache.add_argument("action", choices=["info", "clear"])
    cache.add_argument("--cache", dest="rmcheck_cache", default=None, metavar="DIR",
                       help=f"the cache directory (default {DEFAULT_CACHE_DIR} in the current directory)")
    cache.set_defaults(func=_cache)

    validate = commands.add_parser("validate", help="check suite files against the format; exit 1 on any error")
    validate.add_argument("paths", nargs="+", metavar="PATH")
    validate.set_defaults(func=_validate)

    serve = commands.add_parser("serve", help="serve a reward model over vLLM's pooling API (for --rm http://HOST:PORT)")
    serve.add_argument("--rm", required=True, metavar="SPEC", help="the reward model to serve (any spec --rm takes)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (0 picks a free one); default 8000")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind; default 127.0.0.1 (this machine only)")
    add_options(serve.add_argument, pytest_style=False, skip=RUN_ONLY)
    serve.set_defaults(func=_serve)

    report = commands.add_parser("report", help="write one self-contained HTML page of sensitivity per attribute")
    report.add_argument("runs", nargs="+", metavar="RUN.json", help="JSON run documents (one or more models each)")
    report.add_argument("-o", "--output", default=DEFAULT_REPORT, metavar="PATH", help=f"default {DEFAULT_REPORT}")
    report.add_argument("--seed", type=int, default=0, help="seed of the bootstrap confidence intervals (default 0)")
    report.set_defaults(func=_report)

    compare = commands.add_parser("compare", help="compare two models' runs; exit 1 on a regression")
    compare.add_argument("runs", nargs="+", metavar="RUN.json",
                         help="BASE.json CANDIDATE.json, or one run document holding both models")
    compare.add_argument("--models", nargs=2, metavar=("BASE", "CANDIDATE"), default=None,
                         help="the model specs to compare (needed when a document holds several)")
    add_options(compare.add_argument, pytest_style=False,
                skip=tuple(o.dest for o in OPTIONS if o.dest not in GATE_OPTIONS[1:]))
    compare.set_defaults(func=_compare)

    sweep_command.add_parser(commands)
    explain_command.add_parser(commands)
    return parser


def _report(args: argparse.Namespace) -> int:
    from ..report.html import write_report

    print(f"sensitivity report: {write_report(args.runs, args.output, seed=args.seed)}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    if len(args.runs) > 2:
        raise RmcheckError(f"{len(args.runs)} run documents given", where="rmcheck compare",
                           fix="Pass BASE.json CANDIDATE.json, or one RUN.json with --models BASE CANDIDATE")
    comparison = compare_runs(args.runs, args.models, parse_thresholds(args.rmcheck_max_regression),
                              args.rmcheck_regression_alpha)
    print(comparison.text())
    return 1 if comparison.failed else 0


def _serve(args: argparse.Namespace) -> int:
    from .serve import serve

    serve(args.rm, model_options(lambda dest: getattr(args, dest)), host=args.host, port=args.port)
    return 0


def _cache(args: argparse.Namespace) -> int:
    directory = Path(args.rmcheck_cache or DEFAULT_CACHE_DIR)
    if args.action == "clear":
        count = clear_cache(directory)
        print(f"score cache {directory}: deleted" + (f" {count} scores" if count is not None else " (unreadable)"))
    else:
        print(describe_cache(directory))
    return 0


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
    if args.list_objectives:
        return _list_objectives(specs, model_options(lambda dest: getattr(args, dest)))
    paths = args.paths or [builtin_suites()]
    get = lambda dest: getattr(args, dest)  # noqa: E731
    report = run_suites(paths, specs, model_options(get), shrink_budget=args.rmcheck_shrink_budget or
                        DEFAULT_SHRINK_BUDGET, progress=_progress, cache=score_cache(get, Path.cwd()))
    print(file=sys.stderr)
    for spec in specs:
        try:
            print(f"model: {report.engine.model(spec).describe()}")
        except RmcheckError:
            continue
        scorer = report.engine.used_scorer(spec)
        if scorer is not None:
            print(f"  scoring: {scorer.describe()}; {scorer.stats.summary()}")
    _print_table(report.results)
    for request, error in report.errors:
        print(f"error: {request.suite.name}::{request.test.name} [{request.spec}]: {error}")
    target = Path(args.rmcheck_json or DEFAULT_JSON)
    models = []
    for spec in specs:
        try:
            model = report.engine.model(spec)
        except RmcheckError:
            continue
        models.append({"spec": spec, "fingerprint": model.fingerprint, "description": model.describe()})
    write_atomically(target, json.dumps(run_document([r.to_json() for r in report.results], models), indent=2))
    failed = sum(r.outcome == "failed" for r in report.results)
    print(f"\n{len(report.results) - failed} passed, {failed} failed, {len(report.errors)} errors; "
          f"JSON run document: {target}")
    regressed = _gate(args, [r.to_json() for r in report.results], specs) if args.rmcheck_baseline else False
    return 1 if failed or report.errors or regressed else 0


def _gate(args: argparse.Namespace, results: list[dict], specs: list[str]) -> bool:
    """Compare each model's results with the baseline (``--baseline``); True on a regression."""
    baseline = Baseline(args.rmcheck_baseline, parse_thresholds(args.rmcheck_max_regression),
                        args.rmcheck_regression_alpha)
    regressed = False
    for spec in specs:
        comparison = baseline.compare([r for r in results if r["model"] == spec])
        print(f"\nagainst the baseline {args.rmcheck_baseline}:\n{comparison.text()}")
        regressed |= comparison.failed
    return regressed


def _list_objectives(specs: list[str], options: ModelOptions) -> int:
    for spec in specs:
        model = load_model(spec, options)
        heads = objectives_of(model)
        print(model.describe())
        print(f"  score  (overall{'; the default' if heads else ''})")
        for name in heads:
            print(f"  {name}")
    return 0


def _progress(what: str, done: int, total: int) -> None:
    """One overwritten stderr line: ``loading demo ...`` (total 0: a step of unknown size), then pair counts."""
    line = f"{what}: {done}/{total} pairs" if total else f"{what} ..."
    print(f"\r{line:<60}", end="", file=sys.stderr, flush=True)


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

