"""The pytest plugin: ``*.rmcheck.yaml`` files become one item per test and model.

A thin layer over :mod:`rmcheck.engine`: items hold only names; the first item
to run in a process evaluates every pending item of its suite and model group
in one batched pass, so originals are scored once and shared across tests.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

from .engine import DEFAULT_SHRINK_BUDGET, Engine, Outcomes, Request
from .errors import RmcheckError
from .options import NO_MODEL, add_options, model_options, resolve_models
from .report import failure_text
from .results import TestResult, run_document
from .suite import Suite, load_suite


class RmcheckFailure(Exception):
    """A test whose pass rate fell below its min_pass_rate; the message is the full explanation."""


@dataclass
class PluginState:
    engine: Engine
    specs: list[str]
    json_path: str | None
    results: Outcomes = field(default_factory=dict)


STATE = pytest.StashKey[PluginState]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser.getgroup("rmcheck", "reward-model behavioural tests").addoption, pytest_style=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "rmcheck: a reward-model behavioural test from a *.rmcheck.yaml suite")
    try:
        specs = resolve_models(config.getoption("rm"), config.rootpath)
    except RmcheckError as exc:
        raise pytest.UsageError(str(exc)) from None
    budget = config.getoption("rmcheck_shrink_budget") or DEFAULT_SHRINK_BUDGET
    engine = Engine(model_options(config.getoption), budget)
    config.stash[STATE] = PluginState(engine, specs, config.getoption("rmcheck_json"))
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(Reporter(config), "rmcheck-reporter")
    if getattr(config.option, "dist", "no") == "load":
        config.option.dist = "loadgroup"  # keep a suite and model on one worker: no pair scored twice


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
        specs = self.config.stash[STATE].specs or [""]
        for spec in specs:
            for test in self.suite.tests:
                item = RmcheckItem.from_parent(self, name=f"{test.name}[{spec or 'no-model'}]",
                                               test_name=test.name, spec=spec)
                item.add_marker(pytest.mark.rmcheck)
                item.add_marker(pytest.mark.xdist_group(f"rmcheck:{self.path}:{spec}"))
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
        if not self.spec:
            raise NO_MODEL
        state = self.config.stash[STATE]
        if self.key not in state.results:
            state.results.update(state.engine.evaluate(_pending(self, state)))
        outcome = state.results[self.key]
        if isinstance(outcome, RmcheckError):
            raise outcome
        self.rmcheck_result = outcome
        if outcome.outcome == "not_applicable":
            pytest.skip(f"rmcheck: no case applicable ({outcome.counts['not_applicable']} not applicable)")
        if outcome.outcome == "failed":
            raise RmcheckFailure(failure_text(outcome))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, (RmcheckFailure, RmcheckError)):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        test = next(t for t in self.suite.tests if t.name == self.test_name)
        return self.path, test.line - 1, f"{self.suite.name}::{self.test_name} [{self.spec}]"


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
        report.rmcheck = {"result": item.rmcheck_result.to_json(),
                          "model": {"spec": model.spec, "fingerprint": model.fingerprint,
                                    "description": model.describe()}}


class Reporter:
    """Collects each test's JSON from the reports (which cross from xdist workers), writes the run document once."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results: list[dict[str, Any]] = []
        self.models: dict[str, dict[str, str]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        payload = getattr(report, "rmcheck", None)
        if payload is not None:
            self.results.append(payload["result"])
            self.models.setdefault(payload["model"]["spec"], payload["model"])

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        path = self.config.stash[STATE].json_path
        if path and self.results:
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(run_document(self.results, list(self.models.values())), indent=2),
                              encoding="utf-8")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.results:
            return
        tr = terminalreporter
        tr.section("rmcheck")
        for model in self.models.values():
            tr.write_line(f"model {model['description']}")
        for r in self.results:
            rate = "n/a" if r["pass_rate"] is None else f"{r['pass_rate']:.2f}"
            tr.write_line(f"{r['outcome']:>14}  pass rate {rate:>4}  {r['suite']}::{r['test']} [{r['model']}]")
        path = self.config.stash[STATE].json_path
        if path:
            tr.write_line(f"rmcheck: JSON run document written to {path}")
