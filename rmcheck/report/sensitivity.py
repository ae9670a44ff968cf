"""Global sensitivity of reward models to each attribute, from JSON run documents.

As in "Interpreting Language Reward Models via Contrastive Explanations": for every model and
attribute, the distribution of score deltas the attribute's perturbations cause, its mean with a
(seeded, BCa) bootstrap confidence interval, and, over pair cases, how often a perturbation flips the
model's preference between chosen and rejected (a counterfactual), leaves it although it closed at least
half the margin (a semifactual), ends in a tie, or moves it little (see :mod:`rmcheck.stats`).
Representative examples are the cases whose delta is closest to the median.

A perturbed response's delta is score(perturbed) - score(original) in the test's objective, read
from each judged case's ``response_scores``.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..stats import SEMIFACTUAL_MARGIN, Outcome, bootstrap_ci, outcome

__all__ = ["CaseEffect", "INVARIANCE", "Sensitivity", "bootstrap_ci", "probes", "sensitivities"]

#: Expectations whose failure is a move in either direction: their heat is mean |Δ|/sd, not the signed mean.
INVARIANCE = ("invariant", "preference_kept")


@dataclass(frozen=True)
class CaseEffect:
    """One judged case of a test that perturbs: its deltas and what they did to the pair's preference."""

    model: str
    attribute: str
    objective: str | None  # the head the test asserts on; None for the overall score
    test: str  # suite::test
    case: dict[str, Any]  # the case as the run document holds it
    deltas: tuple[float, ...]  # one per perturbed response
    outcome: Outcome | None  # what it did to the pair's preference; None when not a pair (or an original tie)
    expect: str = ""  # the test's expectation

    @property
    def flipped(self) -> bool | None:
        """Whether the preference flipped (a counterfactual); None when the case has no preference."""
        return None if self.outcome is None else self.outcome == "counterfactual"

    @property
    def delta(self) -> float:
        return statistics.fmean(self.deltas)


@dataclass
class Sensitivity:
    """One model's sensitivity to one attribute."""

    model: str
    attribute: str
    probes: list[CaseEffect]
    scale: float  # sd of the model's scores (in this objective) over the original responses; 1.0 when unknown
    seed: int = 0
    deltas: list[float] = field(init=False)

    def __post_init__(self) -> None:
        self.deltas = [d for p in self.probes for d in p.deltas]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.deltas)

    @property
    def median(self) -> float:
        return statistics.median(self.deltas)

    @property
    def ci(self) -> tuple[float, float]:
        return bootstrap_ci(self.deltas, seed=self.seed)

    @property
    def standardized_mean(self) -> float:
        return self.mean / self.scale

    @property
    def invariance(self) -> bool:
        """Whether every test of the group expects no move either way (then up and down must not cancel)."""
        return all(p.expect in INVARIANCE for p in self.probes)

    @property
    def heat(self) -> float:
        """The heat map's value: mean |Δ|/sd for invariance tests, signed mean Δ/sd for directional ones."""
        return statistics.fmean(abs(d) for d in self.deltas) / self.scale if self.invariance else self.standardized_mean

    @property
    def pairs(self) -> list[CaseEffect]:
        return [p for p in self.probes if p.flipped is not None]

    def count(self, kind: Outcome) -> int:
        return sum(1 for p in self.pairs if p.outcome == kind)

    @property
    def counterfactuals(self) -> int:
        return self.count("counterfactual")

    @property
    def semifactuals(self) -> int:
        return self.count("semifactual")

    @property
    def ties(self) -> int:
        return self.count("tie")

    @property
    def pass_rate(self) -> float | None:
        judged = [p.case["verdict"] for p in self.probes if p.case.get("verdict") in ("passed", "failed")]
        return judged.count("passed") / len(judged) if judged else None

    def representative(self, count: int = 2) -> list[CaseEffect]:
        """The cases most typical of the attribute's effect (delta closest to the median), then the most
        typical counterfactual when none of those flipped the preference."""
        median = self.median
        typical = sorted(self.probes, key=lambda p: (abs(p.delta - median), p.test, p.case["id"]))
        chosen = typical[:count]
        if not any(p.flipped for p in chosen):
            chosen += [p for p in typical if p.flipped][:1]
        return chosen

    def to_json(self) -> dict[str, Any]:
        low, high = self.ci
        return {"model": self.model, "attribute": self.attribute, "responses": len(self.deltas),
                "mean": self.mean, "ci": [low, high], "median": self.median, "scale": self.scale,
                "standardized_mean": self.standardized_mean, "heat": self.heat,
                "heat_kind": "mean |Δ|/sd" if self.invariance else "mean Δ/sd", "pairs": len(self.pairs),
                "counterfactuals": self.counterfactuals, "semifactuals": self.semifactuals, "ties": self.ties,
                "small_nonflips": self.count("small"), "pass_rate": self.pass_rate}


def model_labels(docs: Sequence[tuple[str, dict[str, Any]]]) -> dict[tuple[int, str], str]:
    """A label per (document index, model spec): the spec, suffixed with the file name when a spec
    occurs in several documents (and with the document's position when their file names are equal too)."""
    seen: dict[str, int] = {}
    for _, doc in docs:
        for spec in {r["model"] for r in doc["results"]}:
            seen[spec] = seen.get(spec, 0) + 1
    names = [Path(path).name for path, _ in docs]
    names = [n if names.count(n) == 1 else f"{n} #{i + 1}" for i, n in enumerate(names)]
    return {(i, r["model"]): r["model"] if seen[r["model"]] == 1 else f"{r['model']} [{names[i]}]"
            for i, (_, doc) in enumerate(docs) for r in doc["results"]}


def probes(docs: Sequence[tuple[str, dict[str, Any]]], semifactual_margin: float = SEMIFACTUAL_MARGIN) -> list[CaseEffect]:
    """Every judged, perturbed case of every run document, as a :class:`CaseEffect`."""
    labels = model_labels(docs)
    results = [(i, r) for i, (_, doc) in enumerate(docs) for r in doc["results"]]
    operators: dict[str, set[str]] = {}
    for _, result in results:
        if result.get("perturb"):
            operators.setdefault(attribute_of(result), set()).add(result["perturb"])
    out: list[CaseEffect] = []
    for i, result in results:
        attribute = _label(result, len(operators.get(attribute_of(result), ())) > 1)
        for case in result.get("cases", []):
            scores = case.get("response_scores") or {}
            deltas = tuple(s["perturbed"] - s["original"] for s in scores.values() if "perturbed" in s)
            if deltas:
                out.append(CaseEffect(labels[(i, result["model"])], attribute, result.get("objective"),
                                 f"{result['suite']}::{result['test']}", case, deltas, _outcome(scores, semifactual_margin),
                                 str(result.get("expect", ""))))
    return out


def attribute_of(result: dict[str, Any]) -> str:
    """A result's attribute: the test's tag, else its suite's name."""
    return result.get("attribute") or result["suite"]


def _label(result: dict[str, Any], by_operator: bool) -> str:
    """What sensitivity is grouped by: the attribute, split by operator when the attribute's tests perturb in
    several ways (pad vs truncate are opposite directions), and the objective when the test sets one."""
    label = attribute_of(result)
    if by_operator and result.get("perturb"):
        label += f": {result['perturb']}"
    return label + (f" [{result['objective']}]" if result.get("objective") else "")


def _outcome(scores: dict[str, dict[str, float]], semifactual_margin: float) -> Outcome | None:
    if "chosen" not in scores or "rejected" not in scores:
        return None
    before = scores["chosen"]["original"] - scores["rejected"]["original"]
    after = (scores["chosen"].get("perturbed", scores["chosen"]["original"])
             - scores["rejected"].get("perturbed", scores["rejected"]["original"]))
    return outcome(before, after, semifactual_margin)


def scales(found: Iterable[CaseEffect]) -> dict[tuple[str, str | None], float]:
    """Per (model, objective): the sd of its scores over distinct original responses (1.0 when fewer
    than two or all equal), so that deltas of models with different score ranges compare."""
    originals: dict[tuple[str, str | None], dict[tuple[str, str, str], float]] = {}
    for probe in found:
        base = probe.case["id"].split("~")[0].split("/")[0]
        for role, s in probe.case["response_scores"].items():
            suite = probe.test.split("::")[0]
            originals.setdefault((probe.model, probe.objective), {})[(suite, base, role)] = s["original"]
    out = {}
    for key, values in originals.items():
        sd = statistics.stdev(values.values()) if len(values) > 1 else 0.0
        out[key] = sd if sd > 0 else 1.0
    return out


def sensitivities(docs: Sequence[tuple[str, dict[str, Any]]], *, seed: int = 0,
                  semifactual_margin: float = SEMIFACTUAL_MARGIN) -> list[Sensitivity]:
    """One :class:`Sensitivity` per (model, attribute), in the order they first appear."""
    found = probes(docs, semifactual_margin)
    scale = scales(found)
    groups: dict[tuple[str, str], list[CaseEffect]] = {}
    for probe in found:
        groups.setdefault((probe.model, probe.attribute), []).append(probe)
    return [Sensitivity(model, attribute, group, scale[(model, group[0].objective)], seed)
            for (model, attribute), group in groups.items()]
