"""The pytest plugin: ``*.rmcheck.yaml`` files become one item per test and model.

A thin layer over :mod:`rmcheck.engine`: items hold only names; the first item
to run in a process evaluates every pending item of its suite and model group
in one batched pass, so originals are scored once and shared across tests.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

from .report.ci import attach_failure, junit_properties
from .report.compare import Baseline, parse_thresholds
from .engine import DEFAULT_SHRINK_BUDGET, Engine, Outcomes, Request
from .errors import RmcheckError
from .options import add_options, model_options, resolve_models, score_cache
from .report.text import failure_text
from .report.rundoc import write_atomically
from .results import TestResult, run_document
from .scoring.scheduler import BatchPolicy, ScoringStats
from .suite.loader import Suite, load_suite


class RmcheckFailure(AssertionError):
    """A test whose pass rate fell below its min_pass_rate (or regressed against the baseline); the message
    is the full explanation. An AssertionError, so reports such as Allure's count it as failed, not broken."""


@dataclass
class PluginState:
    engine: Engine
    specs: list[str]
    json_path: str | None
    results: Outcomes = field(default_factory=dict)
    baseline: Baseline | None = None  # --rmcheck-baseline: each result is gated against it


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
    add_options(parser.getgroup("rmcheck", "reward-model behavioural tests").addoption, pytest_style=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "rmcheck: a reward-model behavioural test from a *.rmcheck.yaml suite")
    try:
        specs = resolve_models(config.getoption("rm"), config.rootpath)
    except RmcheckError as exc:
        raise pytest.UsageError(str(exc)) from None
    budget = config.getoption("rmcheck_shrink_budget") or DEFAULT_SHRINK_BUDGET
    engine = Engine(model_options(config.getoption), budget, cache=score_cache(config.getoption, config.rootpath))
    config.stash[STATE] = PluginState(engine, specs, config.getoption("rmcheck_json"), baseline=_baseline(config))
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


def pytest_report_header(config: pytest.Config) -> str | None:
    """The models, the batching and the score cache of the run."""
    state = config.stash.get(STATE, None)
    if state is None:
        return None
    engine = state.engine
    batching = BatchPolicy.of(engine.options.batch_size, engine.options.batch_tokens).describe(by_tokens=True)
    cache = engine.cache.directory if engine.cache else "off"
    return (f"rmcheck: {', '.join(state.specs)}; {batching} (models that do not count tokens: by pairs only); "
            f"score cache {cache}")


def _baseline(config: pytest.Config) -> Baseline | None:
    path = config.getoption("rmcheck_baseline")
    if not path:
        return None
    try:
        return Baseline(path, parse_thresholds(config.getoption("rmcheck_max_regression"), "--rmcheck-max-regression"),
                        config.getoption("rmcheck_regression_alpha"))
    except RmcheckError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.name.endswith(".rmcheck.yaml"):
        return SuiteFile.from_parent(parent, path=file_path)
    return None


class SuiteFile(pytest.File):
    """A suite file; its items are (test, model) pairs."""

    suite: Suite

    def collect(self) -> Iterator[pytest.Item]:
        try:
            self.suite = load_suite(self.path)
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

    @property
    def suite(self) -> Suite:
        return self.parent.suite  # type: ignore[union-attr]

    @property
    def key(self) -> tuple[str, str, str]:
        return (str(self.suite.path), self.test_name, self.spec)

    def request(self) -> Request:
        test = next(t for t in self.suite.tests if t.name == self.test_name)
        return Request(self.suite, test, self.spec)

    def runtest(self) -> None:
        state = self.config.stash[STATE]
        if self.key not in state.results:
            state.results.update(state.engine.evaluate(_pending(self, state)))
        outcome = state.results[self.key]
        if isinstance(outcome, RmcheckError):
            raise outcome
        self.rmcheck_result = outcome
        if self.config.pluginmanager.has_plugin("allure_listener"):
            _attach_artifacts(outcome)  # a sweep's CSV and plots, passed or failed
        result = outcome.to_json()
        change = state.baseline.check(result) if state.baseline else None
        regressed = change is not None and change.regression
        self.user_properties.extend(junit_properties(result, change))
        if (outcome.outcome == "failed" or regressed) and self.config.pluginmanager.has_plugin("allure_listener"):
            attach_failure(result, change)  # only when allure-pytest records results (--alluredir)
        if outcome.outcome == "not_applicable":
            pytest.skip(f"rmcheck: no case applicable ({outcome.counts['not_applicable']} not applicable)")
        regression = change.explain(state.baseline.path, self.spec) if change and regressed else ""
        if outcome.outcome == "failed":
            raise RmcheckFailure(failure_text(outcome) + (f"\n\n{regression}" if regression else ""))
        if regression:
            raise RmcheckFailure(regression)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, (RmcheckFailure, RmcheckError)):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        test = next(t for t in self.suite.tests if t.name == self.test_name)
        return self.path, test.line - 1, f"{self.suite.name}::{self.test_name} [{self.spec}]"


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
    if call.when == "call" and isinstance(item, RmcheckItem) and item.rmcheck_result is not None:
        model = item.config.stash[STATE].engine.model(item.spec)
        scorer = item.config.stash[STATE].engine.used_scorer(item.spec)
        report.rmcheck = {"result": item.rmcheck_result.to_json(),
                          "model": {"spec": model.spec, "fingerprint": model.fingerprint,
                                    "description": model.describe()},
                          "scoring": scorer and {"worker": os.environ.get("PYTEST_XDIST_WORKER", ""),
                                                 "describe": scorer.describe(), "stats": asdict(scorer.stats)}}


class Reporter:
    """Collects each test's JSON from the reports (which cross from xdist workers), writes the run document once."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results: list[dict[str, Any]] = []
        self.models: dict[str, dict[str, str]] = {}
        self.scoring: dict[tuple[str, str], dict[str, Any]] = {}  # the latest (cumulative) per worker and model

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        payload = getattr(report, "rmcheck", None)
        if payload is not None:
            self.results.append(payload["result"])
            self.models.setdefault(payload["model"]["spec"], payload["model"])
            if payload.get("scoring"):
                self.scoring[(payload["scoring"]["worker"], payload["model"]["spec"])] = payload["scoring"]

    def scoring_lines(self) -> Iterator[str]:
        """Per model: the batching and caching in effect, and the scoring counts summed over xdist workers."""
        for spec in self.models:
            mine = [s for (_, model), s in self.scoring.items() if model == spec]
            if mine:
                total = sum((ScoringStats(**s["stats"]) for s in mine), ScoringStats())
                yield f"scoring [{spec}]: {mine[0]['describe']}; {total.summary()}"

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        path = self.config.stash[STATE].json_path
        if path and self.results:
            document = run_document(self.results, list(self.models.values()))
            self.config.hook.pytest_rmcheck_run_document(document=document, config=self.config)
            write_atomically(path, json.dumps(document, indent=2))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.results:
            return
        tr = terminalreporter
        tr.section("rmcheck")
        for model in self.models.values():
            tr.write_line(f"model {model['description']}")
        for line in self.scoring_lines():
            tr.write_line(line)
        for r in self.results:
            rate = "n/a" if r["pass_rate"] is None else f"{r['pass_rate']:.2f}"
            tr.write_line(f"{r['outcome']:>14}  pass rate {rate:>4}  {r['suite']}::{r['test']} [{r['model']}]")
        path = self.config.stash[STATE].json_path
        if path:
            tr.write_line(f"rmcheck: JSON run document written to {path}")
        baseline = self.config.stash[STATE].baseline
        for spec in self.models if baseline else ():
            for line in baseline.compare([r for r in self.results if r["model"] == spec]).summary_lines():
                tr.write_line(f"rmcheck baseline: {line}")
