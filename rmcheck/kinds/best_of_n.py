"""``kind: best_of_n``: is the chosen response the best of one chosen and N rejected? (RewardBench 2)

Every case holds a prompt, one chosen and N rejected responses (``rejected:`` as a list, or
``format: rewardbench2`` files). A case earns credit 1/k when the chosen response is among the k
responses tied at the highest score, and 0 otherwise; accuracy is the mean credit. Ties at the
top are counted and reported, since a model that scores everything alike would otherwise look
like a coin flip. Cases with a ``subset`` are grouped: each subset's accuracy is reported, and
the overall figure is the mean over subsets, as RewardBench 2's leaderboard averages its subsets.
The Ties subset is scored as RewardBench 2 scores it, with its weighted metric (:mod:`.ties`).
The test passes when every subset (or the whole, without subsets) reaches ``min_accuracy``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ..backends.base import OVERALL, Pair
from ..errors import BackendError, RmcheckError
from ..judges.best_of_n import evaluate as judge_accuracy
from ..judges.interface import is_judge
from ..results import CaseResult, TestResult
from .registry import ParseContext, TestKind, kind_schema
from .ties import TiesScore, is_ties, summary, ties_score

if TYPE_CHECKING:
    from ..engine import Engine, Outcomes, Request
    from ..suite.loader import Case

KIND = "best_of_n"
DEFAULT_MIN_ACCURACY = 0.5
RULE = ("credit 1/k when chosen is among the k responses tied at the top score, else 0; "
        "the Ties subset by RewardBench 2's weighted Ties score")
ALL = "all"
SHOWN = 5


@dataclass(frozen=True)
class BestOfNSpec:
    """A parsed ``kind: best_of_n`` test."""

    name: str
    line: int
    min_accuracy: float = DEFAULT_MIN_ACCURACY
    attribute: str = "best-of-n"
    objective: str | None = None
    description: str = ""
    kind: str = KIND


@dataclass(frozen=True)
class Outcome:
    """One case judged: its credit, how many responses tie at the top, and the scores."""

    case: "Case"
    credit: float
    tied: int
    chosen: float
    best_rejected: float

    @property
    def margin(self) -> float:
        return self.chosen - self.best_rejected


SCHEMA = kind_schema(
    KIND,
    "RewardBench 2's best-of-N check: one chosen and N rejected responses per case; credit 1/k when "
    "the chosen response is among the k tied at the top score, else 0.",
    {
        "min_accuracy": {"description": "The least accuracy (mean credit) each subset must reach (default 0.5).",
                         "type": "number", "minimum": 0, "maximum": 1},
        "objective": {"description": "Assert on this named head of a multi-objective RM.", "type": "string"},
    },
    attribute="Free-form tag used in reports (default best-of-n).")


def parse(raw: Mapping[str, Any], context: ParseContext) -> BestOfNSpec:
    return BestOfNSpec(name=raw["name"], line=context.line,
                       min_accuracy=float(raw.get("min_accuracy", DEFAULT_MIN_ACCURACY)),
                       attribute=raw.get("attribute", "best-of-n"), objective=raw.get("objective"),
                       description=raw.get("description", ""))


def credit(chosen: float, rejected: Sequence[float]) -> tuple[float, int]:
    """RewardBench 2's credit of one case and the number of responses tied at the top score."""
    top = max(chosen, *rejected)
    tied = sum(score == top for score in (chosen, *rejected))
    return (1.0 / tied if chosen == top else 0.0), tied


def evaluate(engine: "Engine", spec: str, requests: Sequence["Request"]) -> "Outcomes":
    if is_judge(engine.model(spec)):  # a generative judge: accuracy averaged over orders
        return judge_accuracy(engine, spec, requests, ALL)
    needed = [Pair(case.prompt, text) for r in requests for case in r.suite.cases
              if case.has("chosen") and case.rejected_texts for _, text in case.responses]
    scores = engine.score(spec, needed)
    out: "Outcomes" = {}
    for request in requests:
        objective = request.test.objective or OVERALL
        if scores and objective not in next(iter(scores.values())):
            out[request.key] = BackendError(f"model {spec} has no objective {request.test.objective!r}",
                                            where=request.suite.where(request.test),
                                            fix="Name one of the model's objectives")
            continue
        try:
            out[request.key] = judge(request, spec, lambda case, text: scores[Pair(case.prompt, text)][objective])
        except RmcheckError as exc:
            out[request.key] = exc
    return out


def judge(request: "Request", spec: str, value: Callable[["Case", str], float]) -> TestResult:
    test, suite = request.test, request.suite
    result = TestResult(suite=suite.name, suite_file=suite.file, line=test.line, test=test.name, model=spec,
                        attribute=test.attribute, expect=KIND, rule=RULE, objective=test.objective, tolerance="0",
                        threshold=0.0, min_pass_rate=1.0)
    judged: list[Outcome] = []
    for case in suite.cases:
        if not (case.has("chosen") and case.rejected_texts):
            result.cases.append(CaseResult(case.id, "not_applicable", source=case.source,
                                           reason=f"{KIND} needs a chosen and at least one rejected response"))
            continue
        chosen = value(case, case.text("chosen"))
        rejected = [value(case, text) for text in case.rejected_texts]
        got, tied = credit(chosen, rejected)
        judged.append(Outcome(case, got, tied, chosen, max(rejected)))
    groups: dict[str, list[Outcome]] = {}
    for outcome in judged:
        groups.setdefault(outcome.case.subset or ALL, []).append(outcome)
    ties = {name: ties_score([(o.case.id, o.case.source, o.chosen, o.best_rejected) for o in group],
                             where=suite.where(test))
            for name, group in groups.items() if is_ties(name)}
    accuracy = {name: ties[name].score if name in ties else sum(o.credit for o in group) / len(group)
                for name, group in sorted(groups.items())}
    rows = [CaseResult(name, "passed" if accuracy[name] >= test.min_accuracy else "failed",
                       accuracy[name] - test.min_accuracy, source=suite.where(test),
                       reason=_reason(group, ties.get(name)))
            for name, group in sorted(groups.items())]
    result.cases[:0] = rows
    overall = sum(accuracy.values()) / len(accuracy) if accuracy else None
    result.details = {
        "cases": len(judged), "accuracy": overall, "subsets": accuracy, "min_accuracy": test.min_accuracy,
        "ties": sum(o.tied > 1 for o in judged), "chosen_tied": sum(o.tied > 1 and o.credit > 0 for o in judged),
        "n_rejected": sorted({len(o.case.rejected_texts) for o in judged}),
        **({"ties_score": {name: score.to_json() for name, score in ties.items()}} if ties else {}),
        "worst": [{"case": o.case.id, "chosen": o.chosen, "best_rejected": o.best_rejected, "tied": o.tied}
                  for o in sorted(judged, key=lambda o: o.margin)[:SHOWN]],
    }
    result.explanation = explain(result, sorted(judged, key=lambda o: o.margin)[:SHOWN])
    return result


def _reason(group: Sequence[Outcome], ties: TiesScore | None) -> str:
    tied = f"{sum(o.tied > 1 for o in group)} with ties at the top"
    if ties is not None:
        return f"{summary(ties)}; {len(group)} cases ({tied})"
    return f"accuracy {sum(o.credit for o in group) / len(group):.3f} over {len(group)} cases ({tied})"


def explain(result: TestResult, worst: Sequence[Outcome]) -> str:
    """Accuracy per subset and overall, ties, and the cases the chosen response lost by most."""
    d = result.details
    lines = [f"{result.suite}::{result.test} against {result.model} {result.outcome}  "
             f"({result.suite_file}:{result.line})",
             f"  {KIND}: {RULE}; {d['cases']} cases, {'/'.join(map(str, d['n_rejected']))} rejected each",
             f"  accuracy {_rate(d['accuracy'])} (mean over subsets; min {d['min_accuracy']:g}); "
             f"{d['ties']} cases tie at the top ({d['chosen_tied']} with chosen among them)"]
    reasons = {c.id: c.reason for c in result.cases}  # a Ties subset's names the parts of its score
    lines += [f"    {name}: {reasons[name] if name in d.get('ties_score', {}) else _rate(acc)}"
              for name, acc in d["subsets"].items() if name != ALL]
    for outcome in worst:
        if outcome.credit >= 1:
            break
        lines += ["", f"  case {outcome.case.id}  ({outcome.case.source}): chosen {outcome.chosen:.4g}, "
                      f"best rejected {outcome.best_rejected:.4g}"
                      + (f", {outcome.tied} tied at the top" if outcome.tied > 1 else "")]
    return "\n".join(lines)


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


TEST_KIND = TestKind(KIND, parse, evaluate, SCHEMA)
