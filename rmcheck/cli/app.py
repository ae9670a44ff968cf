"""``rmcheck``: run and validate suites without pytest."""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any, Sequence

from ..version import __version__
from ..backends.base import ModelOptions, load_model, objectives_of, spec_forms
from ..engine import RunReport, run_suites
from ..errors import RmcheckError, model_failure
from ..report.baselines import open_baseline
from ..report.compare import compare_runs, models_in, parse_thresholds
from .progress import Progress
from ..scoring.cache import DEFAULT_CACHE_DIR, clear_cache, describe_cache
from ..options import COMPARE_OPTIONS, OPTIONS, RUN_ONLY, add_options, check_pyproject, load_plugins, model_options
from ..report.text import failure_text, one_line
from ..results import TestResult, summary_line
from ..session import EXIT_NOTHING, Session, exit_code
from ..suite.loader import SUITE_GLOB, find_suites, load_suite
from . import explain as explain_command, sweep as sweep_command

DEFAULT_JSON = ".rmcheck/last-run.json"
DEFAULT_REPORT = ".rmcheck/report.html"
DEFAULT_HISTORY = ".rmcheck/history.png"


def builtin_suites() -> Path:
    """The built-in suite library: ``rmcheck/suites`` in an installed wheel (copied there from the
    repository's ``suites/`` by setup.py), else ``suites/`` beside the package (a checkout or editable install)."""
    package = Path(__file__).resolve().parent.parent
    packaged = package / "suites"
    return packaged if packaged.is_dir() else package.parent / "suites"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        load_plugins(Path.cwd())  # [tool.rmcheck] plugins: operators, kinds and backends every command may use
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

    run = commands.add_parser("run", help="run suites against reward models and print a summary",
                              description="Run suites against reward models. Model specs (--rm, else RMCHECK_MODEL, "
                                          f"else [tool.rmcheck] model in pyproject.toml, else demo): {spec_forms()}. "
                                          "Exit codes: 0 all passed, 1 a test failed, 2 a usage or suite error, "
                                          "3 a model could not be loaded or scored, 5 nothing was tested.")
    run.add_argument("paths", nargs="*", metavar="PATH", help="suite files or directories (default: the built-in suites)")
    add_options(run.add_argument, pytest_style=False)
    run.add_argument("-v", "--verbose", action="store_true", help="print each failing test's full explanation")
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
    serve.add_argument("--port", type=_port, default=8000, help="port to listen on (0 picks a free one); default 8000")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind; default 127.0.0.1 (this machine only)")
    add_options(serve.add_argument, pytest_style=False, skip=RUN_ONLY)
    serve.set_defaults(func=_serve)

    report = commands.add_parser("report", help="write one self-contained HTML page of sensitivity per attribute")
    report.add_argument("runs", nargs="+", metavar="RUN.json", help="JSON run documents (one or more models each)")
    report.add_argument("-o", "--output", default=DEFAULT_REPORT, metavar="PATH", help=f"default {DEFAULT_REPORT}")
    report.add_argument("--seed", type=int, default=0, help="seed of the bootstrap confidence intervals (default 0)")
    report.add_argument("--baseline", dest="rmcheck_baseline", default=None, metavar="DIR|BASE.json",
                        help="put the release gate on top: each run's models against this baseline (a folder of "
                             "baselines beside the suites, or a run document)")
    add_options(report.add_argument, pytest_style=False,
                skip=tuple(o.dest for o in OPTIONS if o.dest not in COMPARE_OPTIONS))
    report.set_defaults(func=_report)

    compare = commands.add_parser("compare", help="compare two models' runs; exit 1 on a regression")
    compare.add_argument("runs", nargs="+", metavar="RUN.json",
                         help="BASE.json CANDIDATE.json, or one run document holding both models")
    compare.add_argument("--models", nargs=2, metavar=("BASE", "CANDIDATE"), default=None,
                         help="the model specs to compare (needed when a document holds several)")
    add_options(compare.add_argument, pytest_style=False,
                skip=tuple(o.dest for o in OPTIONS if o.dest not in COMPARE_OPTIONS))
    compare.add_argument("--html", default=None, metavar="PATH",
                         help="also write the report page of both runs with the release gate on top")
    compare.set_defaults(func=_compare)

    history = commands.add_parser("history", help="print and plot each test's pass rate across runs")
    history.add_argument("runs", nargs="+", metavar="RUN.json|DIR",
                         help="run documents, or folders of them; ordered by when each was created")
    history.add_argument("--plot", default=DEFAULT_HISTORY, metavar="PATH",
                         help=f"where to draw the pass rates (PNG; the plots extra); default {DEFAULT_HISTORY}")
    history.set_defaults(func=_history)

    sweep_command.add_parser(commands)
    explain_command.add_parser(commands)
    return parser


def _port(text: str) -> int:
    """A TCP port number, 0 to 65535 (0 picks a free one)."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535; 0 picks a free one)")
    return int(text)


def _report(args: argparse.Namespace) -> int:
    from ..report.html import load_document, write_report

    gates = []
    baseline = open_baseline(args.rmcheck_baseline, parse_thresholds(args.rmcheck_max_regression),
                             args.rmcheck_regression_alpha, required=False)
    for path in args.runs if baseline else ():
        doc = load_document(path)
        for spec in models_in(doc) if "rmcheck_explain" not in doc else ():
            gates.append(baseline.compare([r for r in doc["results"] if r["model"] == spec]))
    for gate in gates:
        print(gate.summary_lines()[-1] + f": {gate.candidate} against {gate.base}")
    print(f"sensitivity report: {write_report(args.runs, args.output, seed=args.seed, gates=gates)}")
    return 0


def _history(args: argparse.Namespace) -> int:
    from ..report.history import history, history_png

    found = history(args.runs)
    print(found.text())
    try:
        print(f"\nplot: {history_png(found, args.plot)}")
    except RmcheckError as exc:  # matplotlib missing: the table is the history, the plot an extra
        print(f"\nno plot: {exc}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    if len(args.runs) > 2:
        raise RmcheckError(f"{len(args.runs)} run documents given", where="rmcheck compare",
                           fix="Pass BASE.json CANDIDATE.json, or one RUN.json with --models BASE CANDIDATE")
    comparison = compare_runs(args.runs, args.models, parse_thresholds(args.rmcheck_max_regression),
                              args.rmcheck_regression_alpha)
    print(comparison.text())
    if args.html:
        from ..report.html import write_report

        print(f"report: {write_report(list(dict.fromkeys(args.runs)), args.html, gates=[comparison])}")
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
    try:
        check_pyproject(Path.cwd())
    except RmcheckError as exc:
        bad += 1
        print(exc)
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
    progress = Progress()
    session = Session.open(lambda dest: getattr(args, dest), Path.cwd(), progress=progress)
    if args.list_objectives:
        return _list_objectives(session.specs, session.options)
    paths = args.paths or [builtin_suites()]
    try:
        report = run_suites(paths, session.specs, engine=session.engine)
    finally:
        progress.close()
    if not report.requests:
        print(f"rmcheck: tested nothing: no {SUITE_GLOB} suite under {', '.join(map(str, paths))}")
        return EXIT_NOTHING
    models = _describe_models(report, session)
    results, unbased = _judge(report.results, session)
    errors = [{"suite": r.suite.name, "suite_file": r.suite.file, "line": r.test.line, "test": r.test.name,
               "model": r.spec, "error": str(e)} for r, e in report.errors] + unbased
    document = session.document(results, models, errors)
    by_key = {(r.suite_file, r.line, r.model): r for r in report.results}
    ordered = [by_key[(r["suite_file"], r["line"], r["model"])] for r in document["results"]]
    if ordered:
        _print_table(ordered, [r["status"] for r in document["results"]])
    if args.verbose:
        for result, doc in zip(ordered, document["results"]):
            if doc["status"] == "failed" and result.outcome == "failed":
                print(f"\n{failure_text(result)}")
    model_errors = {r.spec: e for r, e in report.errors if model_failure(e)}
    for spec, error in model_errors.items():
        print(f"error: model {spec} could not be loaded or scored: {error}")
    for request, error in report.errors:
        if not model_failure(error):
            print(f"error: {request.suite.name}::{request.test.name} [{request.spec}]: {error}")
    for error in unbased:
        print(f"error: {error['error']}")
    session.write_document(document, args.rmcheck_json or DEFAULT_JSON)
    for text in session.gate_lines(results):
        print(f"\n{text}")
    unused = session.unused_baselines()
    if unused:
        print(f"\n{len(unused)} unused baseline(s), of suites or tests that no longer exist (--update-baseline "
              f"deletes them):", *(f"  {stale}" for stale in unused), sep="\n")
    updated = session.write_baselines(results, models)
    if updated:
        print("", *(f"baseline: {line}" for line in updated), sep="\n")
    counts = document["summary"]
    print(f"\n{summary_line(counts)}; JSON run document: {args.rmcheck_json or DEFAULT_JSON}")
    code = exit_code(counts, usage_errors=bool(unbased) or any(not model_failure(e) for _, e in report.errors),
                     model_errors=bool(model_errors))
    if code == EXIT_NOTHING:
        print("rmcheck: tested nothing: no test had an applicable case")
    return code


def _describe_models(report: RunReport, session: Session) -> list[dict[str, Any]]:
    """Print each loaded model and how its pairs were scored; return their run-document entries."""
    models = []
    for spec in session.specs:
        try:
            model = report.engine.model(spec)
        except RmcheckError:
            continue
        print(f"model: {model.describe()}")
        scorer = report.engine.used_scorer(spec)
        if scorer is not None:
            print(f"  scoring: {scorer.describe()}; {scorer.stats.summary()}")
        models.append(session.model_entry(spec))
    return models


def _judge(found: list[TestResult], session: Session) -> tuple[list[dict], list[dict]]:
    """Each result's JSON with its status under ``--fail-on`` and the baseline it was compared against; and, as
    errors, the gated tests whose baseline is missing (``--baseline DIR``)."""
    results, unbased = [], []
    for result in found:
        doc = result.to_json()
        try:
            session.require_baseline(doc)
        except RmcheckError as exc:
            unbased.append({key: doc[key] for key in ("suite", "suite_file", "line", "test", "model")} |
                           {"error": str(exc)})
            continue
        results.append(session.judge(result).result)
    return results, unbased


def _list_objectives(specs: list[str], options: ModelOptions) -> int:
    for spec in specs:
        model = load_model(spec, options)
        heads = objectives_of(model)
        print(model.describe())
        print(f"  score  (overall{'; the default' if heads else ''})")
        for name in heads:
            print(f"  {name}")
    return 0


#: Below this many columns beside the row, a test's minimal pair goes on a line of its own under the row.
MIN_INLINE_PAIR = 30


def _print_table(results: list[TestResult], statuses: list[str]) -> None:
    """One row per test, with its worst case's minimal pair beside it where the terminal is wide enough, else
    indented on the line below (a narrow terminal must still show the pair, not only a case id). The diff is
    shortened to fit, never its ``d=`` value."""
    rows = [("suite", "test", "model", "pass rate")]
    marks = {"passed": "ok", "failed": "FAIL", "skipped": "skip", "xfailed": "xfail"}
    for r, status in zip(results, statuses):
        rate = "n/a" if r.pass_rate is None else f"{r.pass_rate:.2f}"
        rows.append((r.suite, r.test, r.model, f"{rate} {marks[status]}"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    columns = shutil.get_terminal_size().columns
    room = columns - sum(widths) - 2 * 4
    inline = room >= MIN_INLINE_PAIR
    line = lambda row: "  ".join(cell.ljust(w) for cell, w in zip(row, widths))  # noqa: E731
    print(line(rows[0]) + ("  worst case (minimal pair)" if inline else "  (worst case's minimal pair below)"))
    for row, r in zip(rows[1:], results):
        worst = r.worst()
        if inline:
            print((line(row) + "  " + (one_line(worst, room) if worst else "")).rstrip())
            continue
        print(line(row).rstrip())
        if worst:
            print("    " + one_line(worst, max(columns - 4, 40)))
