"""``kind: best_of_n`` under a judge: RewardBench 2's accuracy, averaged over the orders the responses are shown in.

A judge's verdict depends on where each response is shown, so every case is judged in several orders and the
accuracy is the mean over orders, as JudgeBench reports it. A listwise judge of k responses sees each case in k
rotations, the chosen response once at every position; its credit in an order is 1/t when the chosen response is
among the t tied at the top, else 0. A pairwise judge compares the chosen response with each rejected one, chosen
first and chosen second; its credit in an order is 1/t when chosen loses to none (t - 1 ties), else 0. An answer
that does not parse earns nothing and is counted. Subsets are averaged as for scalar models (the Ties subset by
credit: its weighted metric needs scalar scores).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from ..results import CaseResult, TestResult
from .interface import Query, Verdict
from .kind import Asker
from .presentation import default_labels

if TYPE_CHECKING:
    from ..engine import Engine, Outcomes, Request
    from ..suite.loader import Case

RULE = "accuracy averaged over orders: credit 1/t when chosen is among the t tied at the top, else 0"


def orders(k: int, size: int | None) -> list[list[tuple[int, ...]]]:
    """Per order, the queries' response orders (response 0 is chosen): k rotations for a listwise judge, else
    chosen against each rejected, first and then second."""
    if size is None or size > 2:
        return [[tuple((start + i) % k for i in range(k))] for start in range(k)]
    return [[(0, r) for r in range(1, k)], [(r, 0) for r in range(1, k)]]


def credit(shown: Sequence[tuple[int, ...]], verdicts: Sequence[Verdict]) -> float | None:
    """The chosen response's credit in one order (None when an answer did not parse)."""
    if not all(v.parsed for v in verdicts):
        return None
    tied = 1
    for order, verdict in zip(shown, verdicts):
        probs = verdict.probs or ()
        mine, top = probs[order.index(0)], max(probs)
        if mine < top:
            return 0.0
        tied += sum(p == top for i, p in enumerate(probs) if order[i] != 0)
    return 1.0 / tied


def evaluate(engine: "Engine", spec: str, requests: Sequence["Request"], whole: str) -> "Outcomes":
    """Results of ``kind: best_of_n`` tests under the judge ``spec``; ``whole`` names the cases without a subset."""
    ask = Asker(engine, spec)
    size = ask.judge.size
    plans = {r.key: [(case, orders(len(case.responses), size)) for case in r.suite.cases
                     if case.has("chosen") and case.rejected_texts and size in (None, 2, len(case.responses))]
             for r in requests}
    queries = lambda case, shown: [Query(case.prompt, tuple(dict(case.responses)[role] for role in  # noqa: E731
                                                             (case.responses[i][0] for i in order)),
                                         default_labels(len(order))) for order in shown]
    verdicts = ask.answer([q for plan in plans.values() for case, per in plan for shown in per
                           for q in queries(case, shown)])
    out: "Outcomes" = {}
    for request in requests:
        credits: dict[str, list[list[float]]] = {}
        unparsed = 0
        for case, per in plans[request.key]:
            got = [credit(shown, [verdicts[q] for q in queries(case, shown)]) for shown in per]
            unparsed += sum(c is None for c in got)
            credits.setdefault(case.subset or whole, []).append([c or 0.0 for c in got])
        out[request.key] = _result(request, spec, credits, unparsed, len(plans[request.key]), size)
    return out


def _result(request: "Request", spec: str, credits: dict[str, list[list[float]]], unparsed: int, judged: int,
            size: int | None) -> TestResult:
    test, suite = request.test, request.suite
    result = TestResult(suite=suite.name, suite_file=suite.file, line=test.line, test=test.name, model=spec,
                        attribute=test.attribute, expect=test.kind, rule=RULE, objective=None, tolerance="0",
                        threshold=0.0, min_pass_rate=1.0)
    by_order = {name: [sum(col) / len(col) for col in zip(*rows)] for name, rows in sorted(credits.items())}
    accuracy = {name: sum(per) / len(per) for name, per in by_order.items()}
    for name, value in accuracy.items():
        result.cases.append(CaseResult(name, "passed" if value >= test.min_accuracy else "failed",
                                       value - test.min_accuracy, source=suite.where(test),
                                       reason=f"accuracy {value:.3f} over {len(credits[name])} cases, by order "
                                              + ", ".join(f"{a:.3f}" for a in by_order[name])))
    skipped = len(suite.cases) - judged
    if skipped:
        result.cases.append(CaseResult("other cases", "not_applicable", source=suite.where(test),
                                       reason=f"{skipped} cases are not one chosen and N rejected responses a "
                                              f"{size}-response judge can compare"))
    overall = sum(accuracy.values()) / len(accuracy) if accuracy else None
    result.details = {"cases": judged, "accuracy": overall, "subsets": accuracy, "by_order": by_order,
                      "min_accuracy": test.min_accuracy, "unparsed": unparsed, "judge": True}
    result.explanation = "\n".join([
        f"{result.suite}::{result.test} against {spec} {result.outcome}  ({result.suite_file}:{result.line})",
        f"  {test.kind} under a judge: {RULE}; {judged} cases, {unparsed} answers that did not parse (no credit)",
        f"  accuracy {'n/a' if overall is None else f'{overall:.3f}'} (mean over subsets; min {test.min_accuracy:g})",
        *(f"    {c.id}: {c.reason}" for c in result.cases)])
    return result
