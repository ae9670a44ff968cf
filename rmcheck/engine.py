"""The engine: the one public API that test kinds use, and the runner that dispatches tests to kinds.

A test kind (built in or a user's) receives an :class:`Engine` and the :class:`Request` objects of one
model, and uses only this API: the loaded model (what it can do beyond scoring, a tokenizer say, is a
capability of :mod:`rmcheck.backends.capabilities`), scoring with progress and the score cache, and the
resolution of a test's tolerance into a threshold. Nothing here imports pytest; the plugin and the CLI are
both thin layers over it.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .backends.base import OVERALL, ModelOptions, Pair, RewardModel, Scores, load_model, split_spec
from .backends.quiet import LOADED_BY_TRANSFORMERS, quiet_transformers
from .errors import BackendError, RmcheckError
from .expect import Threshold
from .kinds.registry import kind_of
from .results import TestResult
from .scoring.cache import ScoreCache
from .scoring.scheduler import ProgressCallback, Scorer
from .suite.loader import Suite, find_suites, load_suite
from .suite.naming import claim_name

DEFAULT_SHRINK_BUDGET = 100

#: Results by request key (suite file, test name, model spec); an error where a request could not run.
Outcomes = dict[tuple[str, str, str], "TestResult | RmcheckError"]


@dataclass
class Request:
    """One test of one suite against one model spec."""

    suite: Suite
    test: Any  # the spec object its kind parsed (a TestSpec for the default kind)
    spec: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (str(self.suite.path), self.test.name, self.spec)


@dataclass
class Engine:
    """Loads each model once, and scores what many requests need in shared, deduplicated batches."""

    options: ModelOptions = field(default_factory=ModelOptions)
    shrink_budget: int = DEFAULT_SHRINK_BUDGET
    progress: Callable[[str, int, int], None] | None = None
    cache: ScoreCache | None = None  # the on-disk score cache, shared by every cacheable model
    _models: dict[str, RewardModel | RmcheckError] = field(default_factory=dict)
    _scorers: dict[str, Scorer] = field(default_factory=dict)
    _scratch: dict[str, dict[Any, Any]] = field(default_factory=dict)

    # -- the API for test kinds ----------------------------------------------------------

    def model(self, spec: str) -> RewardModel:
        """The loaded model for ``spec`` (loaded on first use; a load error is remembered and re-raised)."""
        if spec not in self._models:
            if self.progress is not None:
                self.progress(f"loading {spec}", 0, 0)
            try:
                with quiet_transformers(importing=split_spec(spec)[0] in LOADED_BY_TRANSFORMERS):
                    self._models[spec] = load_model(spec, self.options)
            except RmcheckError as exc:
                self._models[spec] = exc
        found = self._models[spec]
        if isinstance(found, RmcheckError):
            raise found
        return found

    def scorer(self, spec: str) -> Scorer:
        """The scheduler of ``spec``: deduplicated, cached, length-sorted batches, and a memo of this run."""
        if spec not in self._scorers:
            self._scorers[spec] = Scorer(self.model(spec), batch_size=self.options.batch_size,
                                         batch_tokens=self.options.batch_tokens, cache=self.cache,
                                         prefix_sharing=self.options.prefix_sharing)
        return self._scorers[spec]

    def score(self, spec: str, pairs: Iterable[Pair], what: str = "") -> dict[Pair, Scores]:
        """Scores of ``pairs`` under ``spec``, each distinct pair scored at most once per run."""
        with quiet_transformers():
            return self.scorer(spec).score(pairs, self.progress_for(what or f"scoring {spec}"))

    def progress_for(self, what: str) -> ProgressCallback | None:
        """A ``(done, total)`` callback that reports ``what`` to the run's progress display, if any."""
        if self.progress is None:
            return None
        report = self.progress
        return lambda done, total: report(what, done, total)

    def inputs(self, spec: str, pairs: Iterable[Pair]) -> dict[Pair, Any] | None:
        """What ``spec`` actually reads for each pair (after truncation; with the score cache, a digest of it), or
        None for a model that reads every pair whole: a kind compares these to tell an edit the model never sees
        (not applicable)."""
        with quiet_transformers():
            return self.scorer(spec).inputs(list(dict.fromkeys(pairs)))

    def threshold(self, request: Request, scores: dict[Pair, Scores]) -> Threshold:
        """The test's tolerance in raw score units (an ``sd`` tolerance uses the suite's original responses)."""
        test = request.test
        objective = test.objective or OVERALL
        sample = next(iter(scores.values()), {})
        if test.objective and objective not in sample:
            heads = ", ".join(sorted(k for k in sample if k != OVERALL)) or "none (a single score)"
            raise BackendError(f"model {request.spec} has no objective {test.objective!r}",
                               where=request.suite.where(test), fix=f"Its objectives are: {heads}")
        sd = 0.0
        if test.tolerance.unit == "sd":
            values = [scores[p][objective] for p in request.suite.pairs()]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            if not sd > 0 and test.tolerance.value:
                raise RmcheckError(
                    f"tolerance {test.tolerance} is undefined for model {request.spec}: its scores of the suite's "
                    f"{len(values)} original response(s) do not vary (sd = 0)", where=request.suite.where(test),
                    fix="Give the tolerance in score units (e.g. 'tolerance: 0.05') or in bt, or add cases whose "
                        "responses the model scores differently")
        return test.tolerance.resolve(sd)

    def scratch(self, kind: str) -> dict[Any, Any]:
        """A dict a kind may keep across calls in one run (plans, sweeps), keyed as it likes."""
        return self._scratch.setdefault(kind, {})

    def used_scorer(self, spec: str) -> Scorer | None:
        """The scorer of ``spec`` if anything has used it (its ``describe()`` and ``stats`` say how pairs were scored)."""
        return self._scorers.get(spec)

    # -- the runner ----------------------------------------------------------------------

    def evaluate(self, requests: Sequence[Request]) -> Outcomes:
        """Results for every request, each kind once per model; a request that cannot run maps to its error."""
        out: Outcomes = {}
        for spec in dict.fromkeys(r.spec for r in requests):
            for kind in {id(k): k for k in (kind_of(r.test) for r in requests)}.values():
                mine = [r for r in requests if r.spec == spec and kind_of(r.test) is kind]
                try:
                    with quiet_transformers():
                        out.update(kind.evaluate(self, spec, mine))
                except BackendError as exc:  # the model could not be loaded or scored: every test of it is an error
                    exc = at_case(exc, mine)
                    exc.failed_model = exc.failed_model or spec
                    out.update((r.key, exc) for r in mine)
                except RmcheckError as exc:
                    out.update((r.key, exc) for r in mine)
        return out


def at_case(exc: BackendError, requests: Sequence[Request]) -> BackendError:
    """An error about one pair (``exc.pair``, e.g. a response over the max length) named after its case:
    the case holding that response, else the case whose prompt it was perturbed under."""
    pair = getattr(exc, "pair", None)
    if pair is None:
        return exc
    cases = [case for r in requests for case in r.suite.cases if case.prompt == pair.prompt]
    case = next((c for c in cases if pair.response in dict(c.responses).values()), cases[0] if cases else None)
    if case is None:
        return exc
    how = "" if pair.response in dict(case.responses).values() else " (a perturbed response)"
    return BackendError(f"case {case.id!r}{how}: {exc.message}", where=case.source, fix=exc.fix)


def run_suites(paths: Sequence[str | Path], specs: Sequence[str], options: ModelOptions | None = None,
               *, shrink_budget: int = DEFAULT_SHRINK_BUDGET,
               progress: Callable[[str, int, int], None] | None = None,
               cache: ScoreCache | None = None, engine: Engine | None = None) -> "RunReport":
    """Load the suites under ``paths``, run every test against every model, and return the results (through
    ``engine`` where given, e.g. a :class:`~rmcheck.session.Session`'s, else one made of the other arguments)."""
    suites = [load_suite(p) for p in find_suites(list(paths))]
    names: dict[str, Path] = {}
    for suite in suites:
        claim_name(names, suite)
    engine = engine or Engine(options or ModelOptions(), shrink_budget, progress, cache)
    requests = [Request(suite, test, spec) for spec in specs for suite in suites for test in suite.tests]
    outcomes = engine.evaluate(requests)
    return RunReport(engine, requests, [outcomes[r.key] for r in requests])


@dataclass
class RunReport:
    engine: Engine
    requests: list[Request]
    outcomes: list[TestResult | RmcheckError]

    @property
    def results(self) -> list[TestResult]:
        return [o for o in self.outcomes if isinstance(o, TestResult)]

    @property
    def errors(self) -> list[tuple[Request, RmcheckError]]:
        return [(r, o) for r, o in zip(self.requests, self.outcomes) if isinstance(o, RmcheckError)]
