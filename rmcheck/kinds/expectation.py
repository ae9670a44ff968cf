"""The default test kind, ``expectation``: perturb each case, judge the expectation, shrink every failure.

Plans are model-independent, so each test is planned once per run. Every pair a model needs is
scored in one deduplicated pass through :meth:`rmcheck.engine.Engine.score`; failing trials
(:class:`rmcheck.counterfactual.Trial`) are shrunk to minimal pairs by :func:`rmcheck.counterfactual.minimise`
(one scoring batch per round, each minimal pair replayed from the model before it is reported).
"""
from __future__ import annotations

import functools
import random
from dataclasses import replace
from itertools import zip_longest
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ..backends.base import OVERALL, Pair, Scores
from ..errors import OperatorError, RmcheckError, SuiteError
from ..expect import Threshold, Tolerance, get_expectation
from ..limits import OPERATOR_ARGUMENT
from ..perturb.base import (CONVERSATION, PROMPT, RESPONSES, Change, OperatorContext, check_arguments, default_target,
                            dose_of, dosed, edits_prompts, in_prompt, run_operator, turn_role)
from ..results import CaseResult, Counterfactual, Example, Side, TestResult
from ..counterfactual.ddmin import Subset
from ..counterfactual.minimise import Search, minimise
from ..counterfactual.trial import Trial
from ..suite.loader import Perturbation, TestSpec
from .registry import ParseContext, TestKind, get_kind, kind_schema

if TYPE_CHECKING:
    from ..engine import Engine, Outcomes, Request
    from ..suite.loader import Case, Suite

KIND = "expectation"
#: Keys of a ``perturb:`` mapping that are not the operator's arguments.
PERTURB_RESERVED = ("op", "seed", "target", "dose")
#: Why a case whose edits the model never reads is not applicable (never a pass with d = 0).
TRUNCATED = ("the model reads the same input with and without the edit (truncation cut it, or the tokenizer "
             "normalised it away: shorten the case or raise --max-length)")


def evaluate(engine: "Engine", spec: str, requests: Sequence["Request"]) -> "Outcomes":
    """The evaluator of the default kind: plan, score every pair once, judge, then explain the failures."""
    out: "Outcomes" = {}
    plans = {}
    for request in requests:  # a test that cannot be planned is its own error, not the whole run's
        try:
            plans[request.key] = planned(engine, request.suite, request.test)
        except RmcheckError as exc:
            out[request.key] = exc
    requests = [r for r in requests if r.key in plans]
    unseen = _cut_away(engine, spec, [t for trials, _ in plans.values() for t in trials])
    needed: list[Pair] = []
    for suite in {id(r.suite): r.suite for r in requests}.values():
        needed.extend(suite.pairs())
    for trials, _ in plans.values():
        for trial in trials:
            if id(trial) not in unseen:
                needed.extend(trial.pairs())
    scores = engine.score(spec, needed)
    judged: list[tuple[TestResult, Judge, list[Trial]]] = []
    for request in requests:
        try:
            judge = Judge(request.test, engine.threshold(request, scores))
        except RmcheckError as exc:
            out[request.key] = exc
            continue
        trials, not_applicable = plans[request.key]
        result = _new_result(request, spec, judge.threshold)
        failing: list[Trial] = []
        for doses in _by_label(trials):
            case, trial = _verdict(judge, doses, scores, unseen)
            result.cases.append(case)
            if case.verdict == "failed":
                failing.append(trial)
        result.cases.extend(not_applicable)
        judged.append((result, judge, failing))
        out[request.key] = result
    _explain(engine, spec, judged)
    return out



def _by_label(trials: Sequence[Trial]) -> list[list[Trial]]:
    """The trials of each case (one, or one per dose of a test with ``dose:``), in order."""
    found: dict[object, list[Trial]] = {}
    for trial in trials:
        found.setdefault(trial.label if trial.dose is not None else id(trial), []).append(trial)
    return list(found.values())


def _verdict(judge: "Judge", doses: Sequence[Trial], scores: dict[Pair, Scores], unseen: set[int]
             ) -> tuple[CaseResult, Trial]:
    """A case's verdict and the trial it comes from: the smallest dose that fails, else the largest dose
    judged (the one trial without ``dose:``); a dose whose edits the model never reads is not judged."""
    judged = [(trial, judge.verdict(trial, scores)) for trial in doses if id(trial) not in unseen]
    if not judged:
        trial = doses[0]
        return CaseResult(trial.label, "not_applicable", source=trial.case.source, reason=TRUNCATED), trial
    trial, case = next(((t, c) for t, c in judged if c.verdict == "failed"), judged[-1])
    case.dose = trial.dose
    return case, trial


def _cut_away(engine: "Engine", spec: str, trials: Sequence[Trial]) -> set[int]:
    """Ids of the trials whose edits the model never reads: for every changed response, the model's
    input (after truncation) is the same with and without the edits. Judging them would be a false pass."""
    edited = [t for t in trials if t.changes]
    sides = {id(t): [(t.original(role), t.pair(role, full)) for role in t.roles]
             for t, full in ((t, t.texts()) for t in edited)}
    seen = engine.inputs(spec, (p for pairs in sides.values() for pair in pairs for p in pair)) if edited else None
    if seen is None:
        return set()
    return {t_id for t_id, pairs in sides.items() if all(seen[a] == seen[b] for a, b in pairs)}


def planned(engine: "Engine", suite: "Suite", test: "TestSpec") -> tuple[list[Trial], list[CaseResult]]:
    """The trials of a test and its not-applicable cases, planned once per run."""
    plans = engine.scratch(KIND)
    key = (str(suite.path), test.name)
    if key not in plans:
        plans[key] = plan(suite, test, engine.options.extra)
    return plans[key]


def _explain(engine: "Engine", spec: str, judged: list[tuple[TestResult, "Judge", list[Trial]]]) -> None:
    """Shrink every failing trial (one scoring batch per round for all), replay each minimal pair, and attach it.

    A replay re-scores only the pairs a shrink round scored, each once: the others (the original, an unchanged
    side, an edit set the shrinker could not reduce) were judged before shrinking, in batches of other pairs."""
    scorer = engine.scorer(spec)
    known = set(scorer.memo)
    work = [(case, judge, trial) for result, judge, failing in judged
            for case, trial in zip(_by_id(result, failing), failing)]
    found = minimise(
        [Search(len(t.edits), t.pairs, functools.partial(j.fails_with, t)) for _, j, t in work],
        lambda pairs, n: engine.score(spec, pairs, f"shrinking {n} failing cases"),
        lambda pairs: scorer.confirm(pairs, known, engine.progress_for(f"replaying minimal pairs of {spec}")),
        engine.shrink_budget)
    for i, (case, judge, trial) in enumerate(work):
        case.counterfactual = judge.counterfactual(trial, found[i].shown, found[i].status, scorer.memo)


def _by_id(result: TestResult, failing: list[Trial]) -> list[CaseResult]:
    """The case results of the failing trials, in their order."""
    by_label = {c.id: c for c in result.cases}
    return [by_label[trial.label] for trial in failing]


class Judge:
    """Applies one test's expectation (and objective, and threshold) to trials."""

    def __init__(self, test: TestSpec, threshold: Threshold) -> None:
        self.test, self.threshold = test, threshold
        self.objective = test.objective or OVERALL

    def delta(self, trial: Trial, texts: dict[str, str], scores: Mapping[Pair, Scores]) -> float:
        value = lambda role: scores[trial.pair(role, texts)][self.objective]  # noqa: E731
        if self.test.expect.kind == "pair":
            return value("chosen") - value("rejected")
        (role,) = trial.roles
        return value(role) - scores[trial.original(role)][self.objective]

    def holds(self, delta: float) -> bool:
        return self.test.expect.holds(self.threshold.measure(delta), self.threshold.value)

    def fails_with(self, trial: Trial, keep: Subset, scores: Mapping[Pair, Scores]) -> bool:
        """Whether the edits in ``keep`` still break the expectation."""
        return not self.holds(self.delta(trial, trial.texts(keep), scores))

    def verdict(self, trial: Trial, scores: dict[Pair, Scores]) -> CaseResult:
        if self.test.expect.name == "preference_kept":
            before = self.delta(trial, trial.texts(()), scores)
            if not self.holds(before):
                return CaseResult(trial.label, "not_applicable", before, source=trial.case.source,
                                  reason="the model does not prefer chosen on the original pair (see prefers_chosen)")
        delta = self.delta(trial, trial.texts(), scores)
        return CaseResult(trial.label, "passed" if self.holds(delta) else "failed", delta, source=trial.case.source,
                          example=self.example(trial, scores))

    def example(self, trial: Trial, scores: Mapping[Pair, Scores]) -> Example:
        """The main compared response before and after the edits, and every response's scores."""
        full, none = trial.texts(), trial.texts(())
        value = lambda role, texts: scores[trial.pair(role, texts)][self.objective]  # noqa: E731
        changed = {role for role, _ in trial.changes}
        # An edited prompt is scored with the compared responses only (one trial per response of a pair case).
        perturbed = changed | (set(trial.roles) if any(map(in_prompt, changed)) else set())
        per_role = {role: {"original": scores[Pair(trial.case.prompt, text)][self.objective],
                           **({"perturbed": value(role, full)} if role in perturbed else {})}
                    for role, text in trial.case.responses}
        main = trial.target
        return Example(trial.case.prompt, main, none[main], full[main], per_role)

    def counterfactual(self, trial: Trial, keep: Subset, status: str, scores: dict[Pair, Scores]) -> Counterfactual:
        full, small, none = trial.texts(), trial.texts(keep), trial.texts(())
        # A prompt side is scored by the response compared under it (the first compared role).
        scored = lambda role: trial.roles[0] if in_prompt(role) else role  # noqa: E731
        score = lambda role, texts: scores[trial.pair(scored(role), texts)][self.objective]  # noqa: E731
        sides = [Side(role, none[role], full[role], small[role],
                      {"original": score(role, none), "perturbed": score(role, full), "minimal": score(role, small)})
                 for role in trial.sides]
        deltas = {"original": self.delta(trial, none, scores), "perturbed": self.delta(trial, full, scores),
                  "minimal": self.delta(trial, small, scores)}
        return Counterfactual(trial.case.prompt, sides, deltas, len(keep), len(trial.edits), status)  # type: ignore[arg-type]


def prompt_parts(case: "Case") -> list[tuple[str, str]]:
    """The texts an edit of the whole conversation edits in the prompt, by role: ``prompt`` for a prompt that
    is one question, ``prompt[i]`` for turn i of a conversation (the system message included)."""
    if isinstance(case.prompt, str):
        return [(PROMPT, case.prompt)]
    return [(turn_role(i), content) for i, (_, content) in enumerate(case.prompt)]


def _new_result(request: "Request", spec: str, threshold: Threshold) -> TestResult:
    test = request.test
    return TestResult(
        suite=request.suite.name, suite_file=request.suite.file, line=test.line, test=test.name, model=spec,
        attribute=test.attribute, expect=test.expect.name, rule=test.expect.rule, objective=test.objective,
        tolerance=str(test.tolerance), threshold=threshold.value, min_pass_rate=test.min_pass_rate,
        perturb=test.perturb.op if test.perturb else None,
    )


def plan(suite: "Suite", test: "TestSpec", settings: Mapping[str, object] | None = None
          ) -> tuple[list[Trial], list[CaseResult]]:
    """The trials of ``test`` over the cases of ``suite``, and the cases it does not apply to."""
    trials: list[Trial] = []
    skipped: list[CaseResult] = []
    pair_check = test.expect.kind == "pair"
    questions = tuple(dict.fromkeys(case.last_user_turn for case in suite.cases))
    for case in suite.cases:
        if pair_check and not case.is_pair:
            skipped.append(CaseResult(case.id, "not_applicable", source=case.source,
                                      reason=f"{test.expect.name} needs a case with chosen and rejected"))
            continue
        if pair_check:
            groups = [("chosen", "rejected")]
        else:
            target = test.perturb.target if test.perturb else "both"
            every = target in (*RESPONSES, PROMPT, CONVERSATION)
            groups = [(role,) for role, _ in case.responses if every or role in (target, "response")]
        for roles in groups:
            label = case.id if pair_check or not case.is_pair else f"{case.id}/{roles[0]}"
            trials.extend(_dosed(suite, test, case, roles, label, skipped, settings or {}, questions))
    return trials, skipped


def _dosed(suite: "Suite", test: "TestSpec", case: "Case", roles: tuple[str, ...], label: str,
           skipped: list[CaseResult], settings: Mapping[str, object], questions: Sequence[str]) -> list[Trial]:
    """The trials of a case at every dose of ``dose:`` (as written without it); not applicable only when
    the operator applies at no dose."""
    if test.perturb is None or not test.perturb.dose:
        return _trials(suite, test, case, roles, label, skipped, settings, questions)
    found: list[Trial] = []
    missed: list[CaseResult] = []
    for dose in test.perturb.dose:
        at = replace(test, perturb=test.perturb.at(dose))
        found += [replace(t, dose=dose) for t in _trials(suite, at, case, roles, label, missed, settings, questions)]
    skipped.extend([] if found else missed[:1])
    return found


def _trials(suite: "Suite", test: "TestSpec", case: "Case", roles: tuple[str, ...], label: str,
            skipped: list[CaseResult], settings: Mapping[str, object], questions: Sequence[str]) -> list[Trial]:
    perturb = test.perturb
    if perturb is None:
        return [Trial(case, label, roles)]
    if perturb.target == PROMPT:
        targets = [(PROMPT, case.last_user_turn)]
    else:  # responses first: the first changed role is the main side of a counterfactual
        edited = (*RESPONSES, CONVERSATION)
        targets = [(r, case.text(r)) for r in roles if len(roles) == 1 or perturb.target in (*edited, r)]
        if perturb.target == CONVERSATION:
            targets += prompt_parts(case)
    per_role: list[list[tuple[str, Change]]] = []
    for role, text in targets:
        ctx = OperatorContext(rng=random.Random(f"{perturb.op}\x1f{perturb.seed}\x1f{text}"),
                              prompt=case.last_user_turn, lexicons=suite.lexicons, suite_path=suite.path,
                              settings=settings, target=PROMPT if in_prompt(role) else "response",
                              response=case.text(roles[0]), prompts=questions)
        try:
            changes = run_operator(perturb.op, text, ctx, dict(perturb.args))
        except RmcheckError as exc:
            raise type(exc)(exc.message, where=exc.where or suite.where(test), fix=exc.fix) from None
        except Exception as exc:  # a (user's) operator that crashes on these arguments or this text
            raise OperatorError(f"operator {perturb.op!r} failed on case {case.id!r}: {type(exc).__name__}: {exc}",
                                where=suite.where(test), fix="Check the operator's arguments") from None
        per_role.append([(role, c) for c in changes])
    variants = [tuple(x for x in combo if x is not None) for combo in zip_longest(*per_role)]
    if not variants:
        skipped.append(CaseResult(label, "not_applicable", source=case.source,
                                  reason=f"{perturb.op} does not apply (nothing to change)"))
        return []
    return [Trial(case, label if len(variants) == 1 else f"{label}~{_variant(changes, n)}", roles, changes)
            for n, changes in enumerate(variants, start=1)]


def _variant(changes: tuple[tuple[str, Change], ...], number: int) -> str:
    labels = [c.label for _, c in changes if c.label]
    return "+".join(labels) if labels else str(number)


SCHEMA = kind_schema(
    KIND,
    "An expectation test (the default kind): perturb each case, then check how the score changed.",
    {
        "perturb": {"$ref": "#/$defs/perturb"},
        "expect": {"description": "higher, lower, not_lower, not_higher, invariant, prefers_chosen, preference_kept, "
                                  "or a registered expectation.",
                   "type": "string"},
        "tolerance": {"$ref": "#/$defs/tolerance"},
        "min_pass_rate": {"type": "number", "minimum": 0, "maximum": 1},
        "objective": {"description": "Assert on this named head of a multi-objective RM.", "type": "string"},
        "aggregate": {"description": "expect: solution_lower: how step scores make the solution's score (min, the "
                                     "default; last; product).", "enum": ["min", "last", "product"]},
    },
    required=["name", "expect"], kind_first=False)


def parse(raw: Mapping[str, Any], context: ParseContext) -> TestSpec:
    """A ``kind: expectation`` test (the default): perturb, expect, tolerance."""
    expect = get_expectation(raw["expect"], where=context.where("expect"))
    if expect.judged_by:  # a step expectation: its kind parses the test, and judges it
        return get_kind(expect.judged_by, where=context.where("expect")).parse(raw, context)
    if "aggregate" in raw:
        raise SuiteError(f"aggregate applies to expect: solution_lower, not {expect.name}",
                         where=context.where("aggregate"), fix="Remove aggregate:")
    perturb = _perturbation(raw.get("perturb"), context.under("perturb"))
    if perturb is None and expect.needs_perturbation:
        raise SuiteError(f"test {raw['name']!r} expects {expect.name} but has no perturb", where=context.where(),
                         fix="Add 'perturb: OPERATOR' (or use expect: prefers_chosen for a plain pair check)")
    if perturb is not None and not expect.needs_perturbation:
        raise SuiteError(f"expect: {expect.name} compares the pair as written and takes no perturb",
                         where=context.where("perturb"), fix="Remove perturb, or use expect: preference_kept")
    return TestSpec(
        name=raw["name"],
        expect=expect,
        perturb=perturb,
        tolerance=Tolerance.parse(raw.get("tolerance"), where=context.where("tolerance")),
        min_pass_rate=float(raw.get("min_pass_rate", 1.0)),
        attribute=raw.get("attribute", ""),
        objective=raw.get("objective"),
        line=context.line,
        description=raw.get("description", ""),
    )


def _perturbation(raw: Any, context: ParseContext) -> Perturbation | None:
    if raw is None:
        return None
    spec = {"op": raw} if isinstance(raw, str) else dict(raw)
    args = {k: v for k, v in spec.items() if k not in PERTURB_RESERVED}
    for key, value in args.items():
        if isinstance(value, int) and not isinstance(value, bool):
            OPERATOR_ARGUMENT.check(abs(value), f"operator argument {key}", where=context.where(key),
                                    error=SuiteError)
    try:
        check_arguments(spec["op"], args, where=context.where("op") if isinstance(raw, dict) else context.where())
    except RmcheckError as exc:
        raise SuiteError(exc.message, where=exc.where, fix=exc.fix) from None
    doses = _doses(spec, args, context)
    target = spec.get("target", default_target(spec["op"]))
    if edits_prompts(spec["op"]) and target != PROMPT:
        raise SuiteError(f"operator {spec['op']!r} edits the prompt, not {target!r}", where=context.where("target"),
                         fix="Remove target: (it is always prompt for this operator)")
    return Perturbation(spec["op"], tuple(sorted(args.items())), str(spec.get("seed", 0)), target, doses)


def _doses(spec: Mapping[str, Any], args: Mapping[str, Any], context: ParseContext) -> tuple[int, ...]:
    """``dose: [...]`` of an operator with a strength, ascending; an error at its line for one without."""
    if "dose" not in spec:
        return ()
    op, dose = spec["op"], dose_of(spec["op"])
    if dose is None:
        raise SuiteError(f"operator {op!r} has no strength to dose", where=context.where("dose"),
                         fix=f"Remove dose:, or dose an operator with a strength: {', '.join(dosed())}")
    if dose.argument in args:
        raise SuiteError(f"dose: sets {op}'s {dose.argument}, so {dose.argument}: cannot be given too",
                         where=context.where(dose.argument),
                         fix=f"Remove {dose.argument}: (dose N sets it to {dose.value(1)} x N)")
    for value in spec["dose"]:
        OPERATOR_ARGUMENT.check(value, "a dose", where=context.where("dose"), error=SuiteError)
    return tuple(sorted(spec["dose"]))


TEST_KIND = TestKind(KIND, parse, evaluate, SCHEMA)
