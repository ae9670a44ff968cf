"""``kind: steps``: edit a solution's steps and check the step expectations on a process model's step scores.

A test with ``expect: step_lower | earlier_unchanged | solution_lower`` is of this kind (written with or without
``kind: steps``). Each case with ``steps`` is edited by the test's operator: a step operator, or a response operator
inside one step (``step: K``). Failing cases are shrunk to their minimal step edit (ddmin over the edit's hunks,
one scoring batch per round), which is replayed from the model before it is shown with the per-step scores.
"""
from __future__ import annotations

import functools
import random
import statistics
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from ..errors import OperatorError, RmcheckError, SuiteError
from ..expect import Expectation, Threshold, Tolerance, get_expectation
from ..kinds.registry import ParseContext, TestKind, kind_schema
from ..perturb.base import Change, Hunk, OperatorContext, check_arguments, edits_prompts, run_operator
from ..results import CaseResult, Counterfactual, Side, TestResult
from ..counterfactual.ddmin import Subset
from ..counterfactual.minimise import Search, minimise
from .cases import SEPARATOR, join_steps, split_steps
from .expect import AGGREGATES, DEFAULT_AGGREGATE, KIND, first_edited, margin
from .model import Solution, StepScorer, step_scorer, unscored
from .operators import STEP_OPERATORS, At, pick
from .table import explain

if TYPE_CHECKING:
    from ..engine import Engine, Outcomes, Request
    from ..suite.loader import Case, Suite

RESERVED = ("op", "seed", "step")


@dataclass(frozen=True)
class StepPerturbation:
    """The test's operator, its arguments and seed, and for a response operator the step it edits."""

    op: str
    args: tuple[tuple[str, Any], ...] = ()
    seed: str = "0"
    step: At | None = None

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in (*self.args, *((("step", self.step),) if self.step is not None
                                                                  else ())))
        return f"{self.op}({args})" if args else self.op


@dataclass(frozen=True)
class StepSpec:
    """A parsed step test."""

    name: str
    line: int
    expect: Expectation
    perturb: StepPerturbation
    tolerance: Tolerance
    min_pass_rate: float = 1.0
    aggregate: str = DEFAULT_AGGREGATE
    attribute: str = ""
    description: str = ""
    objective: None = None
    kind: str = KIND


SCHEMA = kind_schema(
    KIND,
    "A step test: edit each case's steps, then check a step expectation on a process model's scores.",
    {
        "perturb": {"$ref": "#/$defs/perturb"},
        "expect": {"description": "step_lower, earlier_unchanged or solution_lower.", "type": "string"},
        "tolerance": {"$ref": "#/$defs/tolerance"},
        "min_pass_rate": {"type": "number", "minimum": 0, "maximum": 1},
        "aggregate": {"description": "expect: solution_lower: how step scores make the solution's score (min, the "
                                     "default; last; product).", "enum": sorted(AGGREGATES)},
    },
    required=["name", "expect", "perturb"])


def parse(raw: Mapping[str, Any], context: ParseContext) -> StepSpec:
    expect = get_expectation(raw["expect"], where=context.where("expect"))
    if expect.judged_by != KIND:
        raise SuiteError(f"kind: {KIND} checks step expectations, not {expect.name}", where=context.where("expect"),
                         fix="Write expect: step_lower, earlier_unchanged or solution_lower")
    for key in ("objective", "dose"):
        if key in raw or isinstance(raw.get("perturb"), Mapping) and key in raw["perturb"]:
            here = (key,) if key in raw else ("perturb", key)
            raise SuiteError(f"{key}: is not available in a step test", where=context.where(*here), fix=f"Remove {key}:")
    if "aggregate" in raw and expect.name != "solution_lower":
        raise SuiteError(f"aggregate applies to expect: solution_lower, not {expect.name}",
                         where=context.where("aggregate"), fix="Remove aggregate:")
    if "perturb" not in raw:
        raise SuiteError(f"test {raw['name']!r} expects {expect.name} but has no perturb", where=context.where(),
                         fix="Add e.g. perturb: {op: corrupt_step, at: random}")
    return StepSpec(name=raw["name"], line=context.line, expect=expect,
                    perturb=_perturbation(raw["perturb"], context.under("perturb")),
                    tolerance=Tolerance.parse(raw.get("tolerance"), where=context.where("tolerance")),
                    min_pass_rate=float(raw.get("min_pass_rate", 1.0)),
                    aggregate=raw.get("aggregate", DEFAULT_AGGREGATE), attribute=raw.get("attribute", ""),
                    description=raw.get("description", ""))


def _perturbation(raw: Any, context: ParseContext) -> StepPerturbation:
    spec = {"op": raw} if isinstance(raw, str) else dict(raw)
    op, step = spec["op"], spec.get("step")
    args = {k: v for k, v in spec.items() if k not in (*RESERVED, "target")}
    where = context.where("op") if isinstance(raw, Mapping) else context.where()
    try:
        check_arguments(op, args, where=where)
    except RmcheckError as exc:
        raise SuiteError(exc.message, where=exc.where, fix=exc.fix) from None
    if spec.get("target", "response") not in ("response", "both") or edits_prompts(op):
        raise SuiteError(f"a step test edits the steps, so {op} cannot edit the {spec.get('target', 'prompt')}",
                         where=context.where("target" if "target" in spec else "op"), fix="Remove target:")
    if op in STEP_OPERATORS and step is not None:
        raise SuiteError(f"{op} is a step operator: it takes at:, not step:", where=context.where("step"),
                         fix=f"Write perturb: {{op: {op}, at: {step}}}")
    if step is not None and not (isinstance(step, int) and not isinstance(step, bool) and step >= 0
                                 or step in ("first", "last", "random")):
        raise SuiteError(f"step: {step!r} is not a step", where=context.where("step"),
                         fix="Write step: K (from 0), first, last or random")
    return StepPerturbation(op, tuple(sorted(args.items())), str(spec.get("seed", 0)), step)


@dataclass(frozen=True)
class StepTrial:
    """One case of a step test: its steps and the edit proposed for them."""

    case: "Case"
    label: str
    change: Change

    @functools.cached_property
    def edits(self) -> list[tuple[int, ...]]:
        """What the shrinker keeps or removes: each hunk, the hunks that share a tie as one edit."""
        units: dict[object, list[int]] = {}
        for i, hunk in enumerate(self.change.hunks):
            units.setdefault(hunk.tie or i, []).append(i)
        return [tuple(unit) for unit in units.values()]

    def solution(self, keep: Iterable[int] | None = None) -> Solution:
        """The case's solution with the edits in ``keep`` (all when None)."""
        chosen = range(len(self.edits)) if keep is None else keep
        return Solution(self.case.prompt, split_steps(self.change.apply(h for i in chosen for h in self.edits[i])))

    @property
    def original(self) -> Solution:
        return Solution(self.case.prompt, self.case.steps)


def plan(suite: "Suite", test: StepSpec, settings: Mapping[str, object]) -> tuple[list[StepTrial], list[CaseResult]]:
    """The trials of a step test over the suite's cases, and the cases it does not apply to."""
    trials: list[StepTrial] = []
    skipped: list[CaseResult] = []
    questions = tuple(dict.fromkeys(case.last_user_turn for case in suite.cases))
    for case in suite.cases:
        if not case.steps:
            skipped.append(CaseResult(case.id, "not_applicable", source=case.source,
                                      reason=f"{test.expect.name} needs a case with steps"))
            continue
        changes = _changes(suite, test, case, settings, questions)
        if not changes:
            skipped.append(CaseResult(case.id, "not_applicable", source=case.source,
                                      reason=f"{test.perturb} does not apply (nothing to change)"))
        trials += [StepTrial(case, case.id if len(changes) == 1 else f"{case.id}~{c.label or n}", c)
                   for n, c in enumerate(changes, start=1)]
    return trials, skipped


def _changes(suite: "Suite", test: StepSpec, case: "Case", settings: Mapping[str, object],
             questions: Sequence[str]) -> list[Change]:
    perturb, text = test.perturb, join_steps(case.steps)
    ctx = OperatorContext(rng=random.Random(f"{perturb.op}\x1f{perturb.seed}\x1f{text}"), prompt=case.last_user_turn,
                          lexicons=suite.lexicons, suite_path=suite.path, settings=settings, response=text,
                          prompts=questions)
    try:
        if perturb.step is None:
            return run_operator(perturb.op, text, ctx, dict(perturb.args))
        k = pick(perturb.op, perturb.step, len(case.steps), lambda i: True, ctx)
        if k is None:
            return []
        offset = sum(len(s) + len(SEPARATOR) for s in case.steps[:k])
        return [Change(text, tuple(Hunk(offset + h.start, offset + h.end, _one_step(h.replacement), h.tie)
                                   for h in c.hunks), f"step {k}")
                for c in run_operator(perturb.op, case.steps[k], ctx, dict(perturb.args))]
    except RmcheckError as exc:
        raise type(exc)(exc.message, where=exc.where or suite.where(test), fix=exc.fix) from None
    except Exception as exc:  # a (user's) operator that crashes on these arguments or this text
        raise OperatorError(f"operator {perturb.op!r} failed on case {case.id!r}: {type(exc).__name__}: {exc}",
                            where=suite.where(test), fix="Check the operator's arguments") from None


def _one_step(text: str) -> str:
    """An edit inside a step never splits it: its blank lines become line breaks."""
    while SEPARATOR in text:
        text = text.replace(SEPARATOR, "\n")
    return text


class Judge:
    """One step test's expectation, aggregate and threshold, applied to step scores."""

    def __init__(self, test: StepSpec, threshold: Threshold) -> None:
        self.test, self.threshold = test, threshold

    def margin(self, trial: StepTrial, edited: Solution, scores: Mapping[Solution, Sequence[float]]
               ) -> tuple[float | None, str]:
        first = first_edited(trial.case.steps, edited.steps)
        return margin(self.test.expect.name, scores[trial.original], scores[edited], first, self.test.aggregate)

    def holds(self, value: float) -> bool:
        return self.test.expect.holds(self.threshold.measure(value), self.threshold.value)

    def fails(self, trial: StepTrial, edited: Solution, scores: Mapping[Solution, Sequence[float]]) -> bool:
        value, _ = self.margin(trial, edited, scores)
        return value is not None and not self.holds(value)

    def aggregate(self, steps: Sequence[float]) -> float:
        return AGGREGATES[self.test.aggregate](steps)


def evaluate(engine: "Engine", spec: str, requests: Sequence["Request"]) -> "Outcomes":
    out: "Outcomes" = {}
    plans = engine.scratch("steps-plans")
    for request in requests:
        key = (str(request.suite.path), request.test.name)
        try:
            plans.setdefault(key, plan(request.suite, request.test, engine.options.extra))
        except RmcheckError as exc:
            out[request.key] = exc
    scorer = step_scorer(engine, spec)
    if scorer is None:
        return {**out, **{r.key: unscored(r, spec, _new_result(r, spec, Threshold(0.0))) for r in requests
                          if r.key not in out}}
    originals = [Solution(c.prompt, c.steps) for r in requests for c in r.suite.cases if c.steps]
    trials = {r.key: plans[(str(r.suite.path), r.test.name)] for r in requests if r.key not in out}
    scores = scorer.score([*originals, *(t.solution() for found, _ in trials.values() for t in found)])
    failing: list[tuple[CaseResult, Judge, StepTrial]] = []
    results: dict[tuple[str, str, str], tuple[TestResult, Judge]] = {}
    for request in requests:
        if request.key in out:
            continue
        try:
            judge = Judge(request.test, _threshold(request, scores))
        except RmcheckError as exc:
            out[request.key] = exc
            continue
        found, skipped = trials[request.key]
        result = _new_result(request, spec, judge.threshold)
        for trial in found:
            value, reason = judge.margin(trial, trial.solution(), scores)
            if value is None:
                result.cases.append(CaseResult(trial.label, "not_applicable", source=trial.case.source, reason=reason))
                continue
            case = CaseResult(trial.label, "passed" if judge.holds(value) else "failed", value, source=trial.case.source)
            result.cases.append(case)
            if case.verdict == "failed":
                failing.append((case, judge, trial))
        result.cases.extend(skipped)
        results[request.key] = (result, judge)
        out[request.key] = result
    shown = _shrink(scorer, failing, engine.shrink_budget)
    for key, (result, judge) in results.items():
        result.explanation = explain(result, [s for s in shown if s.case in result.cases])
        result.details = {"aggregate": judge.test.aggregate,
                          "failures": [s.to_json() for s in shown if s.case in result.cases]}
    return out


def _threshold(request: "Request", scores: Mapping[Solution, Sequence[float]]) -> Threshold:
    """The tolerance in score units; ``sd`` is the standard deviation of the step scores of the suite's solutions."""
    test = request.test
    sd = 0.0
    if test.tolerance.unit == "sd":
        values = [v for c in request.suite.cases if c.steps for v in scores[Solution(c.prompt, c.steps)]]
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        if not sd > 0 and test.tolerance.value:
            raise RmcheckError(f"tolerance {test.tolerance} is undefined for model {request.spec}: its scores of the "
                               "suite's steps do not vary (sd = 0)", where=request.suite.where(test),
                               fix="Give the tolerance in score units (e.g. 'tolerance: 0.05')")
    return test.tolerance.resolve(sd)


@dataclass
class Shown:
    """A failing case explained: its minimal step edit, replayed, with the step scores before and after."""

    case: CaseResult
    before: Solution
    after: Solution
    scores_before: tuple[float, ...]
    scores_after: tuple[float, ...]
    first: int

    def to_json(self) -> dict[str, Any]:
        return {"case": self.case.id, "first_edited": self.first, "steps_before": list(self.before.steps),
                "steps_after": list(self.after.steps), "scores_before": list(self.scores_before),
                "scores_after": list(self.scores_after)}


def _shrink(scorer: StepScorer, failing: list[tuple[CaseResult, Judge, StepTrial]], budget: int) -> list[Shown]:
    """Shrink every failing trial's edit (all in lockstep, one scoring batch per round), then replay each minimal
    edit and its original from the model; one that no longer fails is shown in full, as flaky."""
    found = minimise([Search(len(t.edits), partial(_solutions, t), partial(_fails, j, t)) for _, j, t in failing],
                     lambda solutions, _: scorer.score(solutions), lambda solutions: scorer.score(solutions, fresh=True),
                     budget)
    shown = []
    for i, (case, judge_, trial) in enumerate(failing):
        keep, status = found[i].shown, found[i].status
        edited = trial.solution(keep)
        scores = scorer.memo if status in ("flaky", "as_written") else found[i].scores  # what confirmed it
        before, after = scores[trial.original], scores[edited]
        full = trial.solution()
        case.counterfactual = Counterfactual(
            trial.case.prompt, [Side("steps", join_steps(trial.case.steps), full.response, edited.response,
                                     {"original": judge_.aggregate(before), "perturbed": judge_.aggregate(scorer.memo[full]),
                                      "minimal": judge_.aggregate(after)})],
            {"perturbed": case.delta or 0.0, "minimal": judge_.margin(trial, edited, scores)[0] or 0.0},
            len(keep), len(trial.edits), status)
        shown.append(Shown(case, trial.original, edited, tuple(before), tuple(after),
                           first_edited(trial.case.steps, edited.steps)))
    return shown


def _solutions(trial: StepTrial, keep: Subset) -> list[Solution]:
    """What judging the edits in ``keep`` scores: the original solution and the edited one."""
    return [trial.original, trial.solution(keep)]


def _fails(judge: Judge, trial: StepTrial, keep: Subset, scores: Mapping[Solution, Sequence[float]]) -> bool:
    return judge.fails(trial, trial.solution(keep), scores)


def _new_result(request: "Request", spec: str, threshold: Threshold) -> TestResult:
    test = request.test
    rule = test.expect.rule.replace("agg", test.aggregate) if test.expect.name == "solution_lower" else test.expect.rule
    return TestResult(suite=request.suite.name, suite_file=request.suite.file, line=test.line, test=test.name,
                      model=spec, attribute=test.attribute, expect=test.expect.name, rule=rule, objective=None,
                      tolerance=str(test.tolerance), threshold=threshold.value, min_pass_rate=test.min_pass_rate,
                      perturb=test.perturb.op)


TEST_KIND = TestKind(KIND, parse, evaluate, SCHEMA)
