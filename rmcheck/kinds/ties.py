"""RewardBench 2's score of its Ties subset: a weighted metric, not best-of-N credit.

The Ties subset asks questions with several correct answers ("Name a primary colour"). Each such
``tied:N`` row comes with a ``ref:N`` row, a narrower question about the same thing with one correct
answer. Following allenai/reward-bench (``rewardbench/utils.py``, ``process_single_model``, which
``scripts/run_v2.py`` applies to the subset whose name is "ties" in any case), the score is

    0.30 * accuracy over tied prompts + 0.30 * accuracy over ref prompts
    + 0.20 * share of paired prompts whose correct-incorrect gap exceeds the spread of the correct answers
    + 0.20 * the same with the gap taken as the smaller of the ref and the tied prompt's gaps
    + 0.01 * mean tanh(that smaller gap / spread - 1)  (0 where it is undefined)

where a prompt is accurate when its worst correct answer outscores its best incorrect one, its gap is
worst correct minus best incorrect, and its spread is best correct minus worst correct. Paired prompts
are those with both rows. A spread of 0 (equal scores for the correct answers, or a single one, where the
official script stops with a TypeError) makes the ratio +inf, -inf or undefined as numpy does.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable

from ..errors import RmcheckError

SUBSET = "ties"
#: RewardBench 2's Ties ids, ``ref:N`` and ``tied:N``; the rewardbench2 reader adds ``/K`` per correct answer.
_ID = re.compile(r"(ref|tied):(\d+)(?:/\d+)?")
WEIGHTS = {"tied_accuracy": 0.30, "ref_accuracy": 0.30, "correct_over_spread": 0.20,
           "correct_over_spread_hard": 0.20, "margin": 0.01}


def is_ties(subset: str) -> bool:
    return subset.casefold() == SUBSET


@dataclass(frozen=True)
class Prompt:
    """One prompt of the Ties subset: the scores of its correct answers and its best incorrect score."""

    correct: tuple[float, ...]
    best_incorrect: float

    @property
    def gap(self) -> float:
        return min(self.correct) - self.best_incorrect

    @property
    def accurate(self) -> bool:
        return self.gap > 0

    @property
    def spread(self) -> float:
        return max(self.correct) - min(self.correct)


@dataclass(frozen=True)
class TiesScore:
    """The weighted score and its parts."""

    parts: dict[str, float]
    prompts: int  # ref and tied prompts judged
    paired: int  # prompts with both rows

    @property
    def score(self) -> float:
        return sum(WEIGHTS[name] * value for name, value in self.parts.items())

    def to_json(self) -> dict[str, object]:
        return {"score": self.score, **self.parts, "prompts": self.prompts, "paired": self.paired}


def ties_score(cases: Iterable[tuple[str, str, float, float]], *, where: str) -> TiesScore:
    """The Ties score of ``(case id, source, chosen score, best rejected score)`` rows: each case is one correct
    answer of the prompt its id names (``ref:N`` or ``tied:N``, with the reader's ``/K``). ``where`` is the test's
    place, for the error of a subset without a paired prompt."""
    found: dict[tuple[str, int], tuple[list[float], list[float]]] = {}
    for case_id, source, chosen, best_rejected in cases:
        match = _ID.fullmatch(case_id)
        if match is None:
            raise RmcheckError(f"case {case_id!r} is in the Ties subset, whose score pairs each prompt's ref:N and "
                               f"tied:N rows by id, but its id is neither", where=source,
                               fix="Keep RewardBench 2's ids (ref:N, tied:N) for Ties rows, or give the case "
                                   "another subset")
        correct, incorrect = found.setdefault((match[1], int(match[2])), ([], []))
        correct.append(chosen)
        incorrect.append(best_rejected)
    prompts = {key: Prompt(tuple(correct), max(incorrect)) for key, (correct, incorrect) in found.items()}
    ref = {n: p for (kind, n), p in prompts.items() if kind == "ref"}
    tied = {n: p for (kind, n), p in prompts.items() if kind == "tied"}
    paired = sorted(ref.keys() & tied.keys())
    if not paired:
        raise RmcheckError("RewardBench 2's Ties score is undefined: no prompt has both its ref:N and its tied:N row",
                           where=where,
                           fix="Read the Ties rows of a prompt together (a limit: may have cut them apart)")
    hard = [min(ref[n].gap, tied[n].gap) for n in paired]
    spread = [tied[n].spread for n in paired]
    parts = {
        "tied_accuracy": _mean(p.accurate for p in tied.values()),
        "ref_accuracy": _mean(p.accurate for p in ref.values()),
        "correct_over_spread": _mean(tied[n].gap > s for n, s in zip(paired, spread)),
        "correct_over_spread_hard": _mean(h > s for h, s in zip(hard, spread)),
        "margin": _mean(_tanh_or_zero(_ratio(h, s) - 1) for h, s in zip(hard, spread)),
    }
    return TiesScore(parts, len(prompts), len(paired))


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values)


def _ratio(a: float, b: float) -> float:
    """``a / b`` with numpy's division by zero: +inf, -inf, or nan for 0 / 0."""
    if b:
        return a / b
    return math.copysign(math.inf, a) if a else math.nan


def _tanh_or_zero(x: float) -> float:
    return 0.0 if math.isnan(x) else math.tanh(x)


def summary(score: TiesScore) -> str:
    """One line: the score and its weighted parts."""
    parts = ", ".join(f"{WEIGHTS[name]:.2f} x {name.replace('_', ' ')} {value:.3f}"
                      for name, value in score.parts.items())
    return (f"Ties score {score.score:.3f} = {parts} over {score.prompts} prompts "
            f"({score.paired} with both ref and tied rows)")
