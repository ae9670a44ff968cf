"""``kind: processbench``: ProcessBench's metric (Zheng et al., 2024; github.com/QwenLM/ProcessBench).

A process model predicts the first wrong step of a solution: the first step whose score is below ``threshold``
(-1 when none is). A prediction matches when it equals the case's ``label``. Per subset, as the official
evaluation computes it: accuracy on the erroneous solutions (label != -1) and on the correct ones (label -1), in
percent, and F1 = 2 * acc_error * acc_correct / (acc_error + acc_correct). An accuracy over no solutions, and the
F1 of two zero accuracies, are undefined (the official script prints nan; rmcheck reports null). The overall
figure is the mean F1 over subsets, as the paper averages them.

``threshold: best`` sweeps every threshold that changes a prediction and keeps the one with the highest mean F1
(undefined counts 0; the lowest threshold among ties): chosen on the same cases, so the figure is optimistic, and
the result says so.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ..errors import RmcheckError
from ..results import CaseResult, TestResult
from ..kinds.registry import ParseContext, TestKind, kind_schema
from .model import Solution, step_scorer, unscored

if TYPE_CHECKING:
    from ..engine import Engine, Outcomes, Request

KIND = "processbench"
BEST = "best"
DEFAULT_THRESHOLD = 0.5
DEFAULT_MIN_F1 = 50.0
ALL = "all"
RULE = "predicted first wrong step (first score < threshold, else -1) == label; F1 of the accuracies on erroneous " \
       "and correct solutions"


@dataclass(frozen=True)
class ProcessBenchSpec:
    name: str
    line: int
    threshold: float | str = DEFAULT_THRESHOLD
    min_f1: float = DEFAULT_MIN_F1
    attribute: str = "process-errors"
    description: str = ""
    objective: None = None
    kind: str = KIND


@dataclass(frozen=True)
class SubsetScore:
    """One subset's ProcessBench figures (percent; None where the official script gives nan)."""

    n_error: int
    n_correct: int
    error_acc: float | None
    correct_acc: float | None
    f1: float | None

    def to_json(self) -> dict[str, Any]:
        return {"n_error": self.n_error, "n_correct": self.n_correct, "error_acc": self.error_acc,
                "correct_acc": self.correct_acc, "f1": self.f1}


def first_below(scores: Sequence[float], threshold: float) -> int:
    """The predicted first wrong step: the first score below ``threshold``, -1 when none is."""
    return next((k for k, score in enumerate(scores) if score < threshold), -1)


def subset_score(labels: Sequence[int], matched: Sequence[bool]) -> SubsetScore:
    """Accuracy on erroneous and on correct solutions, and their harmonic mean, from which predictions matched."""
    error = [m for label, m in zip(labels, matched) if label != -1]
    correct = [m for label, m in zip(labels, matched) if label == -1]
    return counted(len(error), sum(error), len(correct), sum(correct))


def counted(n_error: int, hit_error: int, n_correct: int, hit_correct: int) -> SubsetScore:
    """A subset's figures from how many erroneous and correct solutions there are and how many matched."""
    error_acc = hit_error / n_error * 100 if n_error else None
    correct_acc = hit_correct / n_correct * 100 if n_correct else None
    f1 = None
    if error_acc is not None and correct_acc is not None and error_acc + correct_acc > 0:
        f1 = 2 * error_acc * correct_acc / (error_acc + correct_acc)
    return SubsetScore(n_error, n_correct, error_acc, correct_acc, f1)


def scores_at(cases: Mapping[str, Sequence[tuple[int, Sequence[float]]]], threshold: float) -> dict[str, SubsetScore]:
    """Each subset's figures at one threshold; ``cases`` maps a subset to its (label, step scores)."""
    return {name: subset_score([label for label, _ in rows],
                               [first_below(scores, threshold) == label for label, scores in rows])
            for name, rows in cases.items()}


def mean_f1(subsets: Mapping[str, SubsetScore]) -> float | None:
    """The mean F1 over subsets (None when a subset's F1 is undefined)."""
    values = [s.f1 for s in subsets.values()]
    return None if not values or any(v is None for v in values) else sum(values) / len(values)  # type: ignore[arg-type, misc]


def best_threshold(cases: Mapping[str, Sequence[tuple[int, Sequence[float]]]]) -> float:
    """The threshold with the highest mean F1 over subsets (undefined F1 counts 0), the lowest among ties.

    Thresholds that change a prediction are the distinct step scores and one just above the highest. A case's
    prediction matches for thresholds in (lo, hi] of its running minima m (label L: lo = m[L], hi = m[L - 1] or
    infinity; label -1: lo = -infinity, hi = m[-1]), so each threshold is counted by bisection."""
    every = sorted({s for rows in cases.values() for _, scores in rows for s in scores})
    candidates = [*every, math.nextafter(every[-1], math.inf)] if every else [DEFAULT_THRESHOLD]
    bounds = {name: _bounds(rows) for name, rows in cases.items()}
    best, best_value = candidates[0], -1.0
    for threshold in candidates:
        value = sum(_at(bounds[name], threshold).f1 or 0.0 for name in cases)
        if value > best_value:
            best, best_value = threshold, value
    return best


def _bounds(rows: Sequence[tuple[int, Sequence[float]]]) -> tuple[list[float], list[float], list[float], list[float]]:
    """Sorted lower and upper ends of the threshold intervals where each case matches, erroneous then correct."""
    ends: dict[bool, tuple[list[float], list[float]]] = {True: ([], []), False: ([], [])}
    for label, scores in rows:
        minima = [min(scores[:k + 1]) for k in range(len(scores))]
        lo, hi = (minima[label], minima[label - 1] if label > 0 else math.inf) if label != -1 else (-math.inf, minima[-1])
        ends[label != -1][0].append(lo)
        ends[label != -1][1].append(hi)
    return (*map(sorted, ends[True]), *map(sorted, ends[False]))  # type: ignore[return-value]


def _at(bounds: tuple[list[float], ...], threshold: float) -> SubsetScore:
    """A subset's figures at ``threshold`` from its cases' intervals: #(lo < t) - #(hi < t) match."""
    err_lo, err_hi, ok_lo, ok_hi = bounds
    hit_error = bisect.bisect_left(err_lo, threshold) - bisect.bisect_left(err_hi, threshold)
    hit_correct = bisect.bisect_left(ok_lo, threshold) - bisect.bisect_left(ok_hi, threshold)
    return counted(len(err_lo), hit_error, len(ok_lo), hit_correct)


SCHEMA = kind_schema(
    KIND,
    "ProcessBench's metric: predict each solution's first wrong step (its first score below threshold) "
    "and report, per subset, the accuracy on erroneous and on correct solutions and their F1.",
    {
        "threshold": {"description": "A step whose score is below it is wrong (default 0.5); best sweeps it and keeps "
                                     "the best mean F1 over subsets (optimistic: chosen on the same cases).",
                      "oneOf": [{"type": "number"}, {"const": BEST}]},
        "min_f1": {"description": "The least F1 (percent, 0 to 100) each subset must reach (default 50).",
                   "type": "number", "minimum": 0, "maximum": 100},
    },
    attribute="Free-form tag used in reports (default process-errors).")


def parse(raw: Mapping[str, Any], context: ParseContext) -> ProcessBenchSpec:
    threshold = raw.get("threshold", DEFAULT_THRESHOLD)
    return ProcessBenchSpec(name=raw["name"], line=context.line,
                            threshold=threshold if threshold == BEST else float(threshold),
                            min_f1=float(raw.get("min_f1", DEFAULT_MIN_F1)),
                            attribute=raw.get("attribute", "process-errors"), description=raw.get("description", ""))


def evaluate(engine: "Engine", spec: str, requests: Sequence["Request"]) -> "Outcomes":
    scorer = step_scorer(engine, spec)
    if scorer is None:
        return {r.key: unscored(r, spec, _new_result(r, spec, 0.0)) for r in requests}
    labelled = {id(r): [c for c in r.suite.cases if c.steps and c.label is not None] for r in requests}
    scores = scorer.score(Solution(c.prompt, c.steps) for cases in labelled.values() for c in cases)
    out: "Outcomes" = {}
    for request in requests:
        cases: dict[str, list[tuple[int, Sequence[float]]]] = {}
        for case in labelled[id(request)]:
            cases.setdefault(case.subset or ALL, []).append((case.label, scores[Solution(case.prompt, case.steps)]))
        try:
            out[request.key] = judge(request, spec, dict(sorted(cases.items())))
        except RmcheckError as exc:
            out[request.key] = exc
    return out


def judge(request: "Request", spec: str, cases: Mapping[str, Sequence[tuple[int, Sequence[float]]]]) -> TestResult:
    test, suite = request.test, request.suite
    swept = test.threshold == BEST
    threshold = best_threshold(cases) if swept else float(test.threshold)
    subsets = scores_at(cases, threshold)
    result = _new_result(request, spec, threshold)
    for name, score in subsets.items():
        result.cases.append(_verdict(name, score, test.min_f1, suite.where(test)))
    unlabelled = [c for c in suite.cases if not (c.steps and c.label is not None)]
    result.cases += [CaseResult(c.id, "not_applicable", source=c.source,
                                reason=f"{KIND} needs a case with steps and a label") for c in unlabelled]
    result.details = {"threshold": threshold, "swept": swept, "f1": mean_f1(subsets), "min_f1": test.min_f1,
                      "subsets": {name: score.to_json() for name, score in subsets.items()}}
    result.explanation = explain(result)
    return result


def _new_result(request: "Request", spec: str, threshold: float) -> TestResult:
    test, suite = request.test, request.suite
    return TestResult(suite=suite.name, suite_file=suite.file, line=test.line, test=test.name, model=spec,
                      attribute=test.attribute, expect=KIND, rule=RULE, objective=None, tolerance="0",
                      threshold=threshold, min_pass_rate=1.0)


def _verdict(name: str, score: SubsetScore, min_f1: float, where: str) -> CaseResult:
    if score.error_acc is None or score.correct_acc is None:
        missing = "erroneous" if score.error_acc is None else "correct"
        return CaseResult(name, "not_applicable", source=where,
                          reason=f"no {missing} solution in subset {name}: its F1 is undefined")
    if score.f1 is None:
        return CaseResult(name, "failed", -min_f1, source=where,
                          reason="accuracy 0 on erroneous and on correct solutions: F1 undefined (nan), counted failing")
    return CaseResult(name, "passed" if score.f1 >= min_f1 else "failed", score.f1 - min_f1, source=where,
                      reason=f"F1 {score.f1:.1f}")


def explain(result: TestResult) -> str:
    d = result.details
    how = (f"threshold {d['threshold']:.6g}, swept: the best mean F1 over every threshold, chosen on these same cases "
           "(optimistic; ProcessBench's paper picks it on one subset)" if d["swept"] else f"threshold {d['threshold']:g}")
    lines = [f"{result.suite}::{result.test} against {result.model} {result.outcome}  "
             f"({result.suite_file}:{result.line})",
             f"  {KIND}: {RULE}; {how}",
             f"  mean F1 over subsets {_pct(d['f1'])} (min_f1 {d['min_f1']:g} per subset)",
             f"  {'subset':<16} {'error acc':>9} {'correct acc':>11} {'F1':>6}   n (error/correct)"]
    for name, s in d["subsets"].items():
        lines.append(f"  {name:<16} {_pct(s['error_acc']):>9} {_pct(s['correct_acc']):>11} {_pct(s['f1']):>6}   "
                     f"{s['n_error']}/{s['n_correct']}")
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


TEST_KIND = TestKind(KIND, parse, evaluate, SCHEMA)
