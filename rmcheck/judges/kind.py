"""``expect: consistent``: the same underlying response wins in every presentation (the ``judge`` test kind).

A test names a presentation operator (:mod:`.presentation`) and needs no ``kind:``: a test whose ``expect`` is
``consistent`` is parsed here. Each case's responses are shown to the judge (any model: a scalar RM through
:class:`.interface.ScalarJudge`) in the original presentation and in the operator's; the case passes when one
response (or a tie) wins in all of them. The result reports the position-bias rate (the share of judged cases
whose verdict follows a position, not a response, across orders) and the flip rate under repeats (the share
whose repeated samples disagree); unparseable answers are counted and shown, never guessed. A failing case is
explained by the smallest presentation change that flips its verdict (ddmin over the change's hunks, every round
one batch), replayed, with both verdicts and the judge's raw answers.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ..errors import BackendError, RmcheckError, SuiteError
from ..expect import Expectation
from ..limits import OPERATOR_ARGUMENT
from ..results import CaseResult, TestResult
from ..counterfactual.minimise import Search, minimise
from ..kinds.registry import ParseContext, TestKind, kind_schema
from .interface import Judge, Query, Verdict, judge_of
from .presentation import PRESENTERS, Hunk, Presentation, apply, describe_hunks, hunks, original, repeat_count

if TYPE_CHECKING:
    from ..engine import Engine, Outcomes, Request
    from ..suite.loader import Case

KIND = "judge"
EXPECT = "consistent"
RULE = "the same response (or a tie) wins in every presentation"
TIE = -1  # the outcome of a tie at the top
SHOWN = 3
RAW_SHOWN = 160

#: m = (share of presentations whose winner is the first one's) - 1; the case is consistent when m >= 0.
consistent = Expectation(EXPECT, "pair", lambda m, t: m >= 0, RULE, judged_by=KIND)


@dataclass(frozen=True)
class JudgeTest:
    """A parsed ``expect: consistent`` test."""

    name: str
    line: int
    op: str
    args: tuple[tuple[str, Any], ...] = ()
    seed: str = "0"
    repeat: int = 1
    min_pass_rate: float = 1.0
    attribute: str = "consistency"
    description: str = ""
    expect: str = EXPECT
    kind: str = KIND
    objective: None = None  # judges compare overall verdicts

    def presentations(self, k: int, case_id: str) -> list[Presentation]:
        """The original presentation first, then the operator's, each sampled ``repeat`` times."""
        shown = [original(k), *PRESENTERS.get(self.op).variants(k, dict(self.args), f"{self.seed}\x1f{case_id}")]
        return list(dict.fromkeys(replace(p, sample=p.sample + s) for p in shown for s in range(self.repeat)))


SCHEMA = kind_schema(
    KIND,
    "expect: consistent: show each case's responses to the judge in other presentations (perturb: "
    "swap_order, relabel, shuffle or {op: repeat, n: N}; any of them with repeat: N) and require "
    "the same response to win in all of them. Tests with expect: consistent need no kind:.",
    {
        "perturb": {"$ref": "#/$defs/perturb"},
        "expect": {"const": EXPECT},
        "min_pass_rate": {"type": "number", "minimum": 0, "maximum": 1},
    },
    required=["name", "expect"],
    attribute="Free-form tag used in reports (default consistency).")


def parse(raw: Mapping[str, Any], context: ParseContext) -> JudgeTest:
    """A consistency test: its presentation operator, arguments, seed and samples per presentation."""
    for key in ("tolerance", "objective"):
        if key in raw:
            raise SuiteError(f"expect: {EXPECT} compares verdicts, so {key}: does not apply", where=context.where(key),
                             fix=f"Remove {key}:")
    if raw.get("expect") != EXPECT:
        raise SuiteError(f"a kind: {KIND} test checks expect: {EXPECT}", where=context.where("expect"),
                         fix=f"Write expect: {EXPECT}")
    perturb = raw.get("perturb")
    if perturb is None:
        raise SuiteError(f"test {raw['name']!r} expects {EXPECT} but has no presentation operator",
                         where=context.where(), fix=f"Add perturb: one of {', '.join(PRESENTERS.names())}")
    at = context.under("perturb")
    spec = {"op": perturb} if isinstance(perturb, str) else dict(perturb)
    op = spec.pop("op")
    where_op = at.where("op") if isinstance(perturb, Mapping) else context.where("perturb")
    presenter = PRESENTERS.get(op)
    if presenter is None:
        raise SuiteError(f"expect: {EXPECT} changes how responses are presented, and {op!r} is no presentation "
                         "operator", where=where_op, fix=f"Use one of: {', '.join(PRESENTERS.names())}")
    seed, repeat = str(spec.pop("seed", 0)), spec.pop("repeat", 1)
    unknown = sorted(set(spec) - set(presenter.arguments))
    if unknown:
        takes = ", ".join([*presenter.arguments, "repeat", "seed"])
        raise SuiteError(f"{op} shows the same texts another way and takes no {unknown[0]!r}",
                         where=at.where(unknown[0]), fix=f"{op} takes: {takes}")
    problem = repeat_count(repeat) or presenter.check(spec)
    if problem:
        raise SuiteError(f"{op}: {problem}", where=at.where(problem.partition(":")[0]), fix="See docs/judges.md")
    for key in ("repeat", "n"):
        value = repeat if key == "repeat" else spec.get(key)
        if isinstance(value, int):
            OPERATOR_ARGUMENT.check(value, f"{op}'s {key}", where=at.where(key), error=SuiteError)
    return JudgeTest(name=raw["name"], line=context.line, op=op, args=tuple(sorted(spec.items())), seed=seed,
                     repeat=repeat, min_pass_rate=float(raw.get("min_pass_rate", 1.0)),
                     attribute=raw.get("attribute", "consistency"), description=raw.get("description", ""))


class Asker:
    """Asks a judge once per distinct query in a run (the memo is the engine's scratch), or afresh to replay."""

    def __init__(self, engine: "Engine", spec: str) -> None:
        self.judge: Judge = judge_of(engine, spec)
        self.memo: dict[Query, Verdict] = engine.scratch(KIND).setdefault(spec, {})

    def answer(self, queries: Sequence[Query]) -> dict[Query, Verdict]:
        new = [q for q in dict.fromkeys(queries) if q not in self.memo]
        self.memo.update(self.fresh(new))
        return self.memo

    def fresh(self, queries: Sequence[Query]) -> dict[Query, Verdict]:
        queries = list(dict.fromkeys(queries))
        verdicts = self.judge.judge(queries) if queries else []
        if len(verdicts) != len(queries):
            raise BackendError(f"model {self.judge.spec} gave {len(verdicts)} verdicts for {len(queries)} queries")
        return dict(zip(queries, verdicts))


@dataclass
class Trial:
    """One case of one test: its responses by role, and the presentations compared."""

    case: "Case"
    roles: tuple[str, ...]
    shown: list[Presentation]
    outcomes: dict[Presentation, int | None] = field(default_factory=dict)  # None: the answer did not parse

    def query(self, p: Presentation) -> Query:
        return Query(self.case.prompt, tuple(self.case.text(self.roles[i]) for i in p.order), p.labels, p.sample)

    def winner(self, outcome: int | None) -> str:
        return "no parse" if outcome is None else "a tie" if outcome == TIE else f"{self.roles[outcome]} wins"


def outcome(p: Presentation, verdict: Verdict) -> int | None:
    """The response (by its index in the case) that wins, :data:`TIE`, or None for an answer that did not parse."""
    if not verdict.parsed:
        return None
    best = verdict.best
    return TIE if best is None else p.order[best]


def plan(test: JudgeTest, request: "Request", judge: Judge) -> tuple[list[Trial], list[CaseResult]]:
    trials, skipped = [], []
    presenter = PRESENTERS.get(test.op)
    for case in request.suite.cases:
        roles = tuple(role for role, _ in case.responses)
        k, why = len(roles), ""
        shown = test.presentations(k, case.id) if k >= 2 else []
        if k < 2:
            why = f"{EXPECT} needs two or more responses (chosen and rejected)"
        elif judge.size is not None and k != judge.size:
            why = f"{judge.spec} compares {judge.size} responses at a time and this case has {k}"
        elif presenter.changes_labels and not judge.reads_labels:
            why = f"{judge.spec} is shown no labels, so {test.op} cannot change what it sees"
        elif len(shown) < 2:
            why = f"{test.op} gives no other presentation of {k} responses (too few labels?)"
        if why:
            skipped.append(CaseResult(case.id, "not_applicable", source=case.source, reason=why))
        else:
            trials.append(Trial(case, roles, shown))
    return trials, skipped


def evaluate(engine: "Engine", spec: str, requests: Sequence["Request"]) -> "Outcomes":
    """Ask the judge every presentation of every test at once, judge, then shrink the failures in lockstep."""
    ask = Asker(engine, spec)
    plans = {r.key: plan(r.test, r, ask.judge) for r in requests}
    verdicts = ask.answer([t.query(p) for trials, _ in plans.values() for t in trials for p in t.shown])
    out: "Outcomes" = {}
    failing: list[tuple[TestResult, CaseResult, Trial]] = []
    for request in requests:
        trials, skipped = plans[request.key]
        result = _new_result(request, spec)
        for trial in trials:
            trial.outcomes = {p: outcome(p, verdicts[trial.query(p)]) for p in trial.shown}
            case = _verdict(trial)
            result.cases.append(case)
            if case.verdict == "failed":
                failing.append((result, case, trial))
        result.cases.extend(skipped)
        result.details = _rates(request.test, trials, [verdicts[t.query(p)] for t in trials for p in t.shown])
        out[request.key] = result
    flips: dict[int, tuple[Trial, Flip]] = {}
    try:
        flips = _explain(ask, failing, engine.shrink_budget)
    except RmcheckError as exc:  # a judge that fails while shrinking leaves the verdicts standing, unexplained
        for _, case, _ in failing:
            case.reason = f"not explained: {exc}"
    for result in out.values():
        assert isinstance(result, TestResult)
        result.explanation = explain(result, ask.judge, flips)
    return out


def _new_result(request: "Request", spec: str) -> TestResult:
    test = request.test
    return TestResult(suite=request.suite.name, suite_file=request.suite.file, line=test.line, test=test.name,
                      model=spec, attribute=test.attribute, expect=EXPECT, rule=RULE, objective=None, tolerance="0",
                      threshold=0.0, min_pass_rate=test.min_pass_rate, perturb=test.op)


def _parsed(trial: Trial) -> list[tuple[Presentation, int]]:
    return [(p, o) for p, o in trial.outcomes.items() if o is not None]


def _verdict(trial: Trial) -> CaseResult:
    parsed = _parsed(trial)
    if len(parsed) < 2:
        return CaseResult(trial.case.id, "not_applicable", source=trial.case.source,
                          reason=f"{len(trial.shown) - len(parsed)} of {len(trial.shown)} judge answers did not parse")
    reference = parsed[0][1]
    agree = sum(o == reference for _, o in parsed) / len(parsed)
    verdict = "passed" if consistent.holds(agree - 1.0, 0.0) else "failed"
    return CaseResult(trial.case.id, verdict, agree - 1.0, source=trial.case.source,
                      reason="" if verdict == "passed" else f"{trial.winner(reference)} as first shown, not always")


def _rates(test: JudgeTest, trials: Sequence[Trial], verdicts: Sequence[Verdict]) -> dict[str, Any]:
    """Position-bias rate, flip rate under repeats, and unparseable answers, over the judged cases."""
    judged = [t for t in trials if len(_parsed(t)) >= 2]
    followed: dict[str, int] = {}
    for trial in judged:
        position = _followed(trial)
        if position is not None:
            followed[str(position + 1)] = followed.get(str(position + 1), 0) + 1
    flipped = sum(_flipped(t) for t in judged)
    unparsed = [v.raw or "" for v in verdicts if not v.parsed]
    changes_order = PRESENTERS.get(test.op).changes_order
    return {
        "cases": len(judged),
        "position_bias": sum(followed.values()) / len(judged) if judged and changes_order else None,
        "position_followed": dict(sorted(followed.items())),
        "flip_rate": flipped / len(judged) if judged and (test.repeat > 1 or test.op == "repeat") else None,
        "answers": len(verdicts), "unparsed": len(unparsed), "unparsed_answers": [_short(a) for a in unparsed[:SHOWN]],
    }


def _followed(trial: Trial) -> int | None:
    """The position whose response wins in every order (sample 0), when that is not always the same response."""
    firsts = [(p, o) for p, o in _parsed(trial) if p.sample == 0]
    if len({p.order for p, _ in firsts}) < 2 or any(o == TIE for _, o in firsts) or len({o for _, o in firsts}) < 2:
        return None
    positions = {p.position(o) for p, o in firsts}
    return positions.pop() if len(positions) == 1 else None


def _flipped(trial: Trial) -> bool:
    """True when repeated samples of one presentation disagree."""
    seen: dict[tuple[Any, ...], set[int]] = {}
    for p, o in _parsed(trial):
        seen.setdefault((p.order, p.labels), set()).add(o)
    return any(len(outcomes) > 1 for outcomes in seen.values())


@dataclass
class Flip:
    """A failing case's smallest presentation change that flips its verdict, replayed."""

    start: Presentation
    changes: list[Hunk]
    kept: tuple[int, ...]
    status: str = "minimal"
    replayed: tuple[Verdict, Verdict] | None = None

    @property
    def end(self) -> Presentation:
        return self.at(self.kept)

    def at(self, keep: tuple[int, ...]) -> Presentation:
        """The presentation with the changes in ``keep``."""
        return apply(self.start, [self.changes[i] for i in keep])


def _explain(ask: Asker, failing: list[tuple[TestResult, CaseResult, Trial]], budget: int
             ) -> dict[int, tuple[Trial, Flip]]:
    """Shrink each failing case's flip (all cases in lockstep, one batch per round) and replay it; the flips by
    ``id`` of their case result."""
    flips: list[Flip] = []
    for _, _, trial in failing:
        (start, reference), *rest = _parsed(trial)
        end = next(p for p, o in rest if o != reference)
        changes = hunks(start, end)
        flips.append(Flip(start, changes, tuple(range(len(changes)))))

    def shown(i: int, keep: tuple[int, ...]) -> list[Query]:
        trial, flip = failing[i][2], flips[i]
        return [trial.query(flip.start), trial.query(apply(flip.start, [flip.changes[j] for j in keep]))]

    def flipped(i: int, keep: tuple[int, ...], verdicts: Mapping[Query, Verdict]) -> bool:
        before, after = (outcome(p, verdicts[q]) for p, q in zip((flips[i].start, flips[i].at(keep)), shown(i, keep)))
        return before is not None and after is not None and before != after

    found = minimise([Search(len(f.changes), partial(shown, i), partial(flipped, i)) for i, f in enumerate(flips)],
                     lambda queries, _: ask.answer(queries), ask.fresh, budget)
    for i, flip in enumerate(flips):
        result, case, trial = failing[i]
        flip.kept, flip.status = found[i].keep, found[i].status
        first, changed = shown(i, flip.kept)
        flip.replayed = (found[i].scores[first], found[i].scores[changed])
        before, after = (outcome(p, v) for p, v in zip((flip.start, flip.end), flip.replayed))
        words = describe_hunks([flip.changes[j] for j in flip.kept], trial.roles, flip.start)
        case.reason = f"{words} flips it: {trial.winner(before)} -> {trial.winner(after)}" + (
            " (did not flip again on replay)" if flip.status == "flaky" else "")
        result.details.setdefault("minimal", []).append(_flip_json(case, trial, flip, words))
    return {id(failing[i][1]): (failing[i][2], flip) for i, flip in enumerate(flips)}


def _flip_json(case: CaseResult, trial: Trial, flip: Flip, words: str) -> dict[str, Any]:
    assert flip.replayed is not None
    side = lambda p, v: {"shown": p.describe(trial.roles), "verdict": trial.winner(outcome(p, v)),  # noqa: E731
                         "probs": list(v.probs) if v.probs else None, **({"raw": v.raw} if v.raw is not None else {})}
    return {"case": case.id, "change": words, "changes_kept": len(flip.kept), "changes_total": len(flip.changes),
            "status": flip.status, "original": side(flip.start, flip.replayed[0]),
            "changed": side(flip.end, flip.replayed[1])}


STATUS = {"minimal": "1-minimal: undoing any one remaining change keeps the verdict",
          "budget": "shrink budget ran out; a smaller change may exist",
          "flaky": "the change did not flip the verdict again on replay (a stochastic judge?)"}


def explain(result: TestResult, judge: Judge, flips: Mapping[int, tuple[Trial, Flip]]) -> str:
    """The test's rates, then its worst cases: the minimal presentation change, both verdicts, raw answers."""
    d = result.details
    counts = result.counts
    rate = "n/a" if result.pass_rate is None else f"{result.pass_rate:.2f}"
    lines = [f"{result.suite}::{result.test} against {result.model} {result.outcome}  "
             f"({result.suite_file}:{result.line})",
             f"  expect {EXPECT} under {result.perturb}: {RULE}; judge {judge.describe()}",
             f"  {counts['failed']} of {counts['passed'] + counts['failed']} cases inconsistent (pass rate {rate}, "
             f"min_pass_rate {result.min_pass_rate:.2f}); {counts['not_applicable']} not applicable",
             f"  position-bias rate {_rate(d['position_bias'])}"
             + (f" (verdict follows position {', '.join(f'{k}: {v}' for k, v in d['position_followed'].items())})"
                if d["position_followed"] else "")
             + f"; flip rate under repeats {_rate(d['flip_rate'])}; {d['unparsed']} of {d['answers']} answers "
               "did not parse"]
    lines += [f"    unparsed: {answer!r}" for answer in d["unparsed_answers"]]
    for case in result.failures[:SHOWN]:
        if id(case) not in flips:
            lines += ["", f"  case {case.id}  ({case.source}): {case.reason}"]
            continue
        trial, flip = flips[id(case)]
        lines += ["", f"  case {case.id}  ({case.source})",
                  f"    smallest change that flips the verdict: "
                  f"{describe_hunks([flip.changes[j] for j in flip.kept], trial.roles, flip.start)} "
                  f"({len(flip.kept)} of {len(flip.changes)} changes; {STATUS[flip.status]})"]
        for name, p, v in zip(("original", "changed"), (flip.start, flip.end), flip.replayed or ()):
            lines.append(f"    {name:8} {p.describe(trial.roles)}  ->  {trial.winner(outcome(p, v))}"
                         + (f"  (P {', '.join(f'{x:.3g}' for x in v.probs)})" if v.probs else ""))
            if v.raw is not None:
                lines.append(f"             judge answered: {_short(v.raw)!r}")
    if len(result.failures) > SHOWN:
        lines.append(f"\n  ... and {len(result.failures) - SHOWN} more inconsistent cases (all are in the JSON document)")
    return "\n".join(lines)


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= RAW_SHOWN else text[:RAW_SHOWN] + "..."


TEST_KIND = TestKind(KIND, parse, evaluate, SCHEMA)
