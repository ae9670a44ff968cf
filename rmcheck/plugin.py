"""The pytest plugin: ``*.rmcheck.yaml`` files become one item per test and model.

A thin layer over :mod:`rmcheck.engine`: items hold only names; the first item
to run in a process evaluates every pending item of its suite and model group
in one batched pass, so originals are scored once and shared across tests.

pytest imports this module in every run of every project where rmcheck is installed, so it imports the
rest of rmcheck inside the hooks that need it (``tests/test_architecture.py`` bounds what it loads).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import pytest

from .errors import RmcheckError, model_failure

if TYPE_CHECKING:
    from .engine import Engine, Outcomes, Request
    from .report.gate import Judged
    from .session import Session
    from .results import TestResult
    from .suite.loader import Suite


class RmcheckFailure(AssertionError):
    """A test whose pass rate fell below its min_pass_rate (or regressed against the baseline); the message
    is the full explanation. An AssertionError, so reports such as Allure's count it as failed, not broken."""


@dataclass
class PluginState:
    session: Session
    results: Outcomes = field(default_factory=dict)
    suite_names: dict[str, Path] = field(default_factory=dict)  # each suite name's file: one name, one file

    @property
    def engine(self) -> Engine:
        return self.session.engine

    @property
    def specs(self) -> list[str]:
        return self.session.specs


STATE = pytest.StashKey[PluginState]()


class RunDocumentHooks:
    """Hooks rmcheck adds to pytest, for a user's conftest.py or another plugin to implement."""

    @pytest.hookspec
    def pytest_rmcheck_run_document(self, document: dict[str, Any], config: pytest.Config) -> None:
        """Called once, on the controller, with the JSON run document just before it is written.

        Change ``document`` in place to add provenance (GPU, serving version, commit): prefer a
        top-level key of your own, or a key in each entry of ``document["models"]``.
        """


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(RunDocumentHooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    from .options import add_options

    add_options(parser.getgroup("rmcheck", "reward-model behavioural tests").addoption, pytest_style=True)


def pytest_configure(config: pytest.Config) -> None:
    from .options import pytest_flag
    from .session import Session

    config.addinivalue_line("markers", "rmcheck: a reward-model behavioural test from a *.rmcheck.yaml suite")
    try:  # a model that cannot be named, found or imported is a usage error, found before any test runs
        session = Session.open(config.getoption, config.rootpath, flag=pytest_flag)
    except RmcheckError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[STATE] = PluginState(session)
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(Reporter(config), "rmcheck-reporter")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``-n N`` (``--dist load``) keeps each suite and model on one worker, so no pair is scored by two.

    A scope scheduler keyed on the node id itself: xdist's ``loadgroup`` renames node ids, which
    pytest 9.2 no longer honours, so it would silently split groups.
    """
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SuiteScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return suite_scope(nodeid)

    return SuiteScheduling(config, log)


def suite_scope(nodeid: str) -> str:
    """``suites/x.rmcheck.yaml::test[MODEL]`` -> ``suites/x.rmcheck.yaml[MODEL]``; any other item is its own scope."""
    path, _, rest = nodeid.partition("::")
    if path.endswith(".rmcheck.yaml") and rest.endswith("]") and "[" in rest:
        return path + rest[rest.index("["):]
    return nodeid


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    """The models, the batching and the score cache of the run."""
    from .options import DEFAULT_MODEL, HOW_TO_NAME_A_MODEL, model_configured
    from .scoring.scheduler import BatchPolicy

    state = config.stash.get(STATE, None)
    if state is None:
        return None
    engine = state.engine
    batching = BatchPolicy.of(engine.options.batch_size, engine.options.batch_tokens).describe(by_tokens=True)
    cache = engine.cache.directory if engine.cache else "off"
    header = [f"rmcheck: {', '.join(state.specs)}; {batching} (models that do not count tokens: by pairs only); "
              f"score cache {cache}"]
    if not model_configured(config.getoption("rm"), config.rootpath):
        header.append(f"rmcheck: no model configured, so the embedded {DEFAULT_MODEL} reward model is tested; "
                      f"name yours with {HOW_TO_NAME_A_MODEL}")
    return header


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.name.endswith(".rmcheck.yaml"):
        return SuiteFile.from_parent(parent, path=file_path)
    return None


class SuiteFile(pytest.File):
    """A suite file; its items are (test, model) pairs."""

    suite: Suite

    def collect(self) -> Iterator[pytest.Item]:
        from .suite.loader import load_suite
        from .suite.naming import claim_name

        try:
            self.suite = load_suite(self.path, self.config.rootpath)
            claim_name(self.config.stash[STATE].suite_names, self.suite)
        except RmcheckError as exc:
            raise self.CollectError(str(exc)) from None
        for spec in self.config.stash[STATE].specs:
            for test in self.suite.tests:
                item = RmcheckItem.from_parent(self, name=f"{test.name}[{spec}]",
                                               test_name=test.name, spec=spec)
                item.add_marker(pytest.mark.rmcheck)
                item.add_marker(pytest.mark.xdist_group(f"{self.nodeid}:{spec}"))  # rootdir-relative: same on every machine
                yield item


class RmcheckItem(pytest.Item):
    """One test of a suite against one model."""

    def __init__(self, *, test_name: str, spec: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.test_name = test_name
        self.spec = spec
        self.rmcheck_result: TestResult | None = None
        self.rmcheck_judged: Judged | None = None  # the result under the release gate: its status and baseline

    @property
    def suite(self) -> Suite:
        return self.parent.suite  # type: ignore[union-attr]

    @property
    def key(self) -> tuple[str, str, str]:
        return (str(self.suite.path), self.test_name, self.spec)

    def request(self) -> Request:
        from .engine import Request

        test = next(t for t in self.suite.tests if t.name == self.test_name)
        return Request(self.suite, test, self.spec)

    def setup(self) -> None:
        """Run this item's suite and model group (once); a test that cannot run is an error, not a failure."""
        state = self.config.stash[STATE]
        state.session.require_baseline({"suite": self.suite.name, "suite_file": self.suite.file,
                                        "test": self.test_name, "model": self.spec})
        if self.key not in state.results:
            state.results.update(state.engine.evaluate(_pending(self, state)))
        outcome = state.results[self.key]
        if model_failure(outcome):  # JUnit keeps the reason with each test; the terminal shows it once
            self.user_properties.append(("rmcheck_error", str(outcome)))
        if isinstance(outcome, RmcheckError):
            raise outcome

    def runtest(self) -> None:
        from .report.ci import attach_failure, junit_properties
        from .report.text import failure_text
        from .results import TestResult

        state = self.config.stash[STATE]
        outcome = state.results[self.key]
        assert isinstance(outcome, TestResult)
        self.rmcheck_result = outcome
        if self.config.pluginmanager.has_plugin("allure_listener"):
            _attach_artifacts(outcome)  # a sweep's CSV and plots, passed or failed
        judged = self.rmcheck_judged = state.session.judge(outcome)
        status, change = judged.result["status"], judged.change
        self.user_properties.extend(junit_properties(judged.result, change))
        if (outcome.outcome == "failed" or judged.regressed) and self.config.pluginmanager.has_plugin("allure_listener"):
            attach_failure(judged.result, change)  # only when allure-pytest records results (--alluredir)
        if status == "skipped":
            pytest.skip(_skip_reason(outcome))
        if status == "xfailed":
            pytest.xfail(f"{judged.reason}: pass rate {outcome.pass_rate:.2f} < min_pass_rate "
                         f"{outcome.min_pass_rate:.2f}")
        if status == "passed":
            return
        regression = change.explain(judged.result["baseline"]["path"], self.spec) if judged.regressed else ""
        if outcome.outcome == "failed" and state.session.fail_on != "regression":
            raise RmcheckFailure(failure_text(outcome) + (f"\n\n{regression}" if regression else ""))
        raise RmcheckFailure(regression)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, (RmcheckFailure, RmcheckError)):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        test = next(t for t in self.suite.tests if t.name == self.test_name)
        return self.path, test.line - 1, f"{self.suite.name}::{self.test_name} [{self.spec}]"


def _skip_reason(result: TestResult) -> str:
    if not result.cases:
        return "rmcheck: tested nothing: the test has no cases (is its case file empty?)"
    return f"rmcheck: no case applicable ({result.counts['not_applicable']} not applicable)"


def _attach_artifacts(result: TestResult) -> None:
    """Attach the files a test wrote (``details["artifacts"]``, e.g. a sweep's CSV and plots) to the running
    Allure test (allure-pytest recording results)."""
    import allure

    for path in (Path(p) for p in result.details.get("artifacts", ())):
        kind = getattr(allure.attachment_type, path.suffix.lstrip(".").upper(), None)
        allure.attach.file(str(path), name=path.name, attachment_type=kind)


def _pending(item: RmcheckItem, state: PluginState) -> list[Request]:
    """Every not-yet-run item of the same suite and model: batched together, originals scored once."""
    items = [i for i in item.session.items if isinstance(i, RmcheckItem)] or [item]
    group = [i for i in items if i.path == item.path and i.spec == item.spec and i.key not in state.results]
    return [i.request() for i in (group if item in group else [item, *group])]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if not isinstance(item, RmcheckItem):
        return
    error = call.excinfo.value if call.excinfo is not None else None
    if call.when == "setup" and isinstance(error, RmcheckError):
        report.longrepr = _error_line(item, error)  # one line, never a traceback
        report.rmcheck_error = {"suite": item.suite.name, "suite_file": item.suite.file,
                                "line": item.request().test.line, "test": item.test_name, "model": item.spec,
                                "error": str(error), "model_error": bool(model_failure(error))}
    if report.skipped and isinstance(report.longrepr, tuple):  # at the suite's line, not inside this plugin
        report.longrepr = (str(item.path), item.request().test.line, report.longrepr[2])
    if call.when == "call" and item.rmcheck_judged is not None:
        from .plain import plain

        scorer = item.config.stash[STATE].engine.used_scorer(item.spec)
        report.rmcheck = plain({  # it crosses from xdist workers, whose channel takes plain values only
            "result": item.rmcheck_judged.result,
            "model": item.config.stash[STATE].session.model_entry(item.spec),
            "scoring": scorer and {"worker": os.environ.get("PYTEST_XDIST_WORKER", ""),
                                   "describe": scorer.describe(), "stats": asdict(scorer.stats)}})


def _error_line(item: RmcheckItem, error: RmcheckError) -> str:
    if model_failure(error):
        return (f"rmcheck: model {item.spec} could not be loaded or scored, so this test could not run "
                f"(the reason is printed once, in the rmcheck summary)")
    return f"rmcheck: {error}"


class Reporter:
    """Collects each test's JSON from the reports (which cross from xdist workers), writes the run document once."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.models: dict[str, dict[str, str]] = {}
        self.scoring: dict[tuple[str, str], dict[str, Any]] = {}  # the latest (cumulative) per worker and model
        self.others_passed = 0  # tests that are not rmcheck items and passed
        self.updated: list[str] = []  # --rmcheck-update-baseline: the baselines written and deleted

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        payload = getattr(report, "rmcheck", None)
        if payload is not None:
            self.results.append(payload["result"])
            self.models.setdefault(payload["model"]["spec"], payload["model"])
            if payload.get("scoring"):
                self.scoring[(payload["scoring"]["worker"], payload["model"]["spec"])] = payload["scoring"]
        elif getattr(report, "rmcheck_error", None) is not None:
            self.errors.append(report.rmcheck_error)
        elif report.when == "call" and report.passed:
            self.others_passed += 1

    def ordered_models(self) -> list[dict[str, str]]:
        """The models in the order given (``--rm``, then the configuration), whatever order workers reported."""
        specs = self.config.stash[STATE].specs
        return sorted(self.models.values(), key=lambda m: specs.index(m["spec"]) if m["spec"] in specs else len(specs))

    def scoring_lines(self) -> Iterator[str]:
        """Per model: the batching and caching in effect, and the scoring counts summed over xdist workers."""
        from .scoring.scheduler import ScoringStats

        for spec in (m["spec"] for m in self.ordered_models()):
            mine = [s for (_, model), s in self.scoring.items() if model == spec]
            if mine:
                total = sum((ScoringStats(**s["stats"]) for s in mine), ScoringStats())
                yield f"scoring [{spec}]: {mine[0]['describe']}; {total.summary()}"

    def parts(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        """The run document's results, models (in the order given) and errors."""
        specs = self.config.stash[STATE].specs
        errors = [{k: v for k, v in e.items() if k != "model_error"} for e in self.errors]
        models = self.ordered_models() + [{"spec": s} for s in specs if s not in self.models and
                                          any(e["model"] == s for e in errors)]
        return self.results, models, errors

    def document(self) -> dict[str, Any]:
        """The run document as shown in the summary (without what run-document hooks add)."""
        from .results import run_document

        return run_document(*self.parts())

    def tested_nothing(self) -> bool:
        """rmcheck items ran, and none of them judged a case (every one skipped), nor did any other test pass."""
        from .results import status_of

        ran = self.results or self.errors
        return bool(ran) and not self.errors and not self.others_passed and all(
            status_of(r) == "skipped" for r in self.results)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        state = self.config.stash[STATE].session
        try:
            self.updated = state.write_baselines(self.results, self.ordered_models())  # the controller only
            if state.json_path and (self.results or self.errors):
                conftest_hooks = lambda doc: self.config.hook.pytest_rmcheck_run_document(  # noqa: E731
                    document=doc, config=self.config)
                state.write_document(state.document(*self.parts(), hooks=[conftest_hooks]), state.json_path)
        except RmcheckError as exc:  # a full disk or a failing hook, say: said once, and the run does not pass
            self.config.pluginmanager.get_plugin("terminalreporter").write_line(f"rmcheck: error: {exc}", red=True)
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.USAGE_ERROR
        if session.exitstatus == pytest.ExitCode.OK and self.tested_nothing():
            session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.results and not self.errors:
            return
        from .results import status_of, summary_line

        tr = terminalreporter
        tr.section("rmcheck")
        for model in self.ordered_models():
            tr.write_line(f"model {model['description']}")
        for line in self.scoring_lines():
            tr.write_line(line)
        reasons = {e["model"]: e["error"] for e in self.errors if e["model_error"]}
        for spec, reason in reasons.items():
            tr.write_line(f"model {spec} could not be loaded or scored: {reason}", red=True)
        doc = self.document()
        for r in doc["results"]:
            rate = "n/a" if r["pass_rate"] is None else f"{r['pass_rate']:.2f}"
            tr.write_line(f"{status_of(r):>8}  pass rate {rate:>4}  {r['suite']}::{r['test']} [{r['model']}]")
        for e in doc.get("errors", []):
            tr.write_line(f"{'error':>8}  {'':14}  {e['suite']}::{e['test']} [{e['model']}]")
        counts = doc["summary"]
        tr.write_line(f"rmcheck: {summary_line(counts)}")
        if self.tested_nothing():
            tr.write_line("rmcheck: tested nothing: no case of any test was applicable (exit code 5)", red=True)
        path = self.config.stash[STATE].session.json_path
        if path:
            tr.write_line(f"rmcheck: JSON run document written to {path}")
        baseline = self.config.stash[STATE].session.baseline
        for spec in (m["spec"] for m in self.ordered_models()) if baseline else ():
            for line in baseline.compare([r for r in self.results if r["model"] == spec]).summary_lines():
                tr.write_line(f"rmcheck baseline: {line}")
        for line in self.updated:
            tr.write_line(f"rmcheck baseline: {line}")
        unused = baseline.unused() if baseline else []
        if unused:
            tr.write_line(f"rmcheck baseline: {len(unused)} unused baseline(s), of suites or tests that no longer "
                          f"exist (--rmcheck-update-baseline deletes them):", yellow=True)
            for stale in unused:
                tr.write_line(f"  {stale}", yellow=True)
