"""What the HTML report ranks and points at, from run documents: a scorecard per model (pass rate per
test and suite, accuracy for pair-preference tests, a ranking) and the worst failing cases.

- A model's rank: the share of its applicable tests that passed, then its mean pass rate.
- Accuracy: for ``prefers_chosen``, the share of applicable pair cases where chosen scored higher
  (whatever the tolerance); for kinds that report it in ``details`` (``style_substance``'s RM-Bench
  ``overall``, else ``accuracy`` as ``best_of_n`` gives it), that number (the mean of its groups when
  it has several).
- A failure's severity: how far its delta lies beyond the test's threshold, in units of the model's
  score sd (the sensitivity scale), so failures of different tests and models sort together.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Sequence

from .sensitivity import attribute_of, model_labels


@dataclass
class TestRow:
    """One test (suite::test) across models."""

    suite: str
    test: str
    attribute: str
    expect: str
    by_model: dict[str, dict[str, Any]] = field(default_factory=dict)  # model label -> the result document

    @property
    def key(self) -> str:
        return f"{self.suite}::{self.test}"


def accuracy(result: dict[str, Any]) -> float | None:
    """The accuracy of a pair-preference test (see the module docstring); None for other tests."""
    if result.get("expect") == "prefers_chosen":
        deltas = [c["delta"] for c in result.get("cases", []) if c.get("verdict") in ("passed", "failed")
                  and isinstance(c.get("delta"), (int, float))]
        return sum(d > 0 for d in deltas) / len(deltas) if deltas else None
    details = result.get("details") or {}
    overall = details.get("overall")  # style_substance's RM-Bench figure (mean over domains), when it has one
    found = overall if isinstance(overall, (int, float)) and not isinstance(overall, bool) else details.get("accuracy")
    if isinstance(found, dict):
        values = [v for v in found.values() if isinstance(v, (int, float))]
        return statistics.fmean(values) if values else None
    return float(found) if isinstance(found, (int, float)) and not isinstance(found, bool) else None


@dataclass
class ModelCard:
    """One model's line of the ranking."""

    model: str
    results: list[dict[str, Any]]
    rank: int = 0

    @property
    def applicable(self) -> list[dict[str, Any]]:
        return [r for r in self.results if r.get("outcome") in ("passed", "failed")]

    @property
    def passed(self) -> int:
        return sum(r["outcome"] == "passed" for r in self.applicable)

    @property
    def share_passed(self) -> float | None:
        return self.passed / len(self.applicable) if self.applicable else None

    @property
    def mean_pass_rate(self) -> float | None:
        rates = [r["pass_rate"] for r in self.applicable if isinstance(r.get("pass_rate"), (int, float))]
        return statistics.fmean(rates) if rates else None

    def suite_rates(self) -> dict[str, float | None]:
        """Per suite: passed cases over applicable cases of all its tests."""
        counts: dict[str, list[int]] = {}
        for r in self.results:
            c = r.get("counts") or {}
            tally = counts.setdefault(str(r["suite"]), [0, 0])
            tally[0] += int(c.get("passed", 0))
            tally[1] += int(c.get("passed", 0)) + int(c.get("failed", 0))
        return {s: (p / n if n else None) for s, (p, n) in counts.items()}


@dataclass
class Failure:
    """One failing case, with what it takes to sort and show it."""

    model: str
    attribute: str
    result: dict[str, Any]
    case: dict[str, Any]
    severity: float

    @property
    def test(self) -> str:
        return f"{self.result['suite']}::{self.result['test']}"


@dataclass
class Scorecard:
    models: list[ModelCard]
    tests: list[TestRow]
    failures: list[Failure]  # worst first

    @property
    def suites(self) -> list[str]:
        return list(dict.fromkeys(t.suite for t in self.tests))


def scorecard(docs: Sequence[tuple[str, dict[str, Any]]], scales: dict[str, float]) -> Scorecard:
    """The scorecard of every model in ``docs``; ``scales`` holds each model's score sd (1.0 when unknown)."""
    labels = model_labels(docs)
    by_model: dict[str, list[dict[str, Any]]] = {}
    tests: dict[str, TestRow] = {}
    failures: list[Failure] = []
    for i, (_, doc) in enumerate(docs):
        for result in doc.get("results", []):
            model = labels[(i, result["model"])]
            by_model.setdefault(model, []).append(result)
            row = tests.setdefault(f"{result['suite']}::{result['test']}", TestRow(
                str(result["suite"]), str(result["test"]), attribute_of(result), str(result.get("expect", ""))))
            row.by_model[model] = result
            failures.extend(_failures(model, result, scales.get(model, 1.0)))
    cards = sorted((ModelCard(m, rs) for m, rs in by_model.items()),
                   key=lambda c: (-(c.share_passed or 0.0), -(c.mean_pass_rate or 0.0), c.model))
    for rank, card in enumerate(cards, start=1):
        card.rank = rank
    failures.sort(key=lambda f: (-f.severity, f.model, f.test, str(f.case.get("id"))))
    return Scorecard(cards, list(tests.values()), failures)


def _failures(model: str, result: dict[str, Any], scale: float) -> list[Failure]:
    threshold = result.get("threshold") if isinstance(result.get("threshold"), (int, float)) else 0.0
    out = []
    for case in result.get("cases", []):
        if case.get("verdict") != "failed":
            continue
        delta = case.get("delta")
        beyond = abs(delta) - abs(threshold) if isinstance(delta, (int, float)) else 0.0
        out.append(Failure(model, attribute_of(result), result, case, max(beyond, 0.0) / (scale or 1.0)))
    return out
