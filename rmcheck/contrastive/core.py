"""Why does the RM prefer one response over the other? Contrastive explanations of comparisons.

As in "Interpreting Language Reward Models via Contrastive Explanations" (Jiang et al., ICLR 2025):
every attribute's operators perturb each response of a comparison (in both directions where the
attribute has two operators, such as padding and truncating for verbosity), every perturbed comparison
is scored through the engine (batched, cached, deduplicated), and each is classified against the RM's
original preference (:func:`rmcheck.stats.outcome`: counterfactual, semifactual, tie or a small
non-flip). An operator with a strength (:class:`rmcheck.perturb.Dose`) asks what it takes to flip: dose 1
is tried on both responses, then the ladder (2, 4, 8, ... up to ``max_dose``) climbs on each response
whose dose-1 edit closed part of the margin, until the preference flips (the attribute's flip dose) or the
bound is reached. Beyond the paper, each attribute's counterfactuals (all at its flip dose) are shrunk by
ddmin to the fewest edits that still flip the preference, and that minimal counterfactual is scored again
from the model (replayed) before it is reported.
"""
from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ..backends.base import OVERALL, Pair, Prompt, Scores
from ..errors import RmcheckError
from ..perturb import OPERATORS, Change, Dose, OperatorContext, dose_of, run_operator
from ..results import prompt_json
from ..counterfactual.ddmin import Subset
from ..counterfactual.minimise import Search, Status, minimise
from ..counterfactual.trial import Trial
from ..suite.loader import Case
from ..stats import OUTCOMES, SEMIFACTUAL_MARGIN, Outcome, closed, outcome
from ..report.text import word_diff

if TYPE_CHECKING:
    from ..engine import Engine

ROLES = ("chosen", "rejected")
#: The highest dose the ladder climbs to by default (1, 2, 4, 8, 16).
MAX_DOSE = 16


@dataclass(frozen=True)
class Probe:
    """One way to perturb a response along an attribute: an operator, its arguments and its direction."""

    attribute: str
    operator: str
    direction: str  # "more" or "less" of the attribute
    args: tuple[tuple[str, Any], ...] = ()

    @property
    def dose(self) -> Dose | None:
        """How the operator's strength follows a dose; None without a strength or when the probe sets it."""
        found = dose_of(self.operator)
        return found if found is not None and found.argument not in dict(self.args) else None

    def arguments(self, dose: int) -> dict[str, Any]:
        """The operator's arguments at ``dose`` (its own arguments alone when it has no strength)."""
        return {**dict(self.args), **(self.dose.args(dose) if self.dose else {})}

    def to_json(self) -> dict[str, Any]:
        return {"attribute": self.attribute, "operator": self.operator, "direction": self.direction,
                **({"args": dict(self.args)} if self.args else {})}


#: The built-in operators that need no arguments, by the attribute they move (the built-in suites' names).
BUILTIN_PROBES: tuple[Probe, ...] = (
    Probe("verbosity", "pad_with_filler", "more"),
    Probe("verbosity", "truncate_sentences", "less"),
    Probe("formatting", "markdown_list", "more"),
    Probe("sycophancy", "add_flattery", "more"),
    Probe("honesty", "add_hedge", "more"),
    Probe("honesty", "add_false_certainty", "less"),
    Probe("factuality", "corrupt_numbers", "less"),
    Probe("helpfulness", "prepend_refusal", "less"),
    Probe("robustness", "whitespace_noise", "less"),
    Probe("robustness", "typos", "less"),
)


def llm_probes(attribute: str) -> tuple[Probe, Probe]:
    """``llm_rewrite`` along a free-form attribute, both ways (recorded to cassettes like any llm_rewrite)."""
    return tuple(Probe(attribute, "llm_rewrite", d, (("attribute", attribute), ("direction", d)))  # type: ignore[return-value]
                 for d in ("more", "less"))


def select_probes(names: Sequence[str] = (), llm_attributes: Sequence[str] = ()) -> list[Probe]:
    """The probes ``--attributes`` picks (attribute or operator names; all built-ins when empty), plus
    ``llm_rewrite`` along each of ``llm_attributes``. A registered operator that takes no required
    argument may be named too; its attribute is its own name."""
    chosen: list[Probe] = []
    for name in names:
        found = [p for p in BUILTIN_PROBES if name in (p.attribute, p.operator)]
        if not found and name in OPERATORS.names() and name != "llm_rewrite":
            found = [Probe(name, name, "more")]
        if not found:
            known = sorted({p.attribute for p in BUILTIN_PROBES} | {p.operator for p in BUILTIN_PROBES})
            raise RmcheckError(f"unknown attribute or operator {name!r}", where="--attributes",
                               fix=f"Use one of: {', '.join(known)}; or --llm-attribute NAME for an LLM rewrite")
        chosen.extend(found)
    if not names and not llm_attributes:
        chosen = list(BUILTIN_PROBES)
    for attribute in llm_attributes:
        chosen.extend(llm_probes(attribute))
    return list(dict.fromkeys(chosen))


@dataclass(frozen=True)
class Comparison:
    """One comparison to explain: a prompt and two responses, ``chosen`` labelled the better one."""

    id: str
    prompt: Prompt
    chosen: str
    rejected: str
    source: str = ""

    def text(self, role: str) -> str:
        return self.chosen if role == "chosen" else self.rejected

    @property
    def last_turn(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[-1][1]

    @functools.cached_property
    def case(self) -> Case:
        """The comparison as a pair case, which trials perturb."""
        return Case(self.id, self.prompt, (("chosen", self.chosen), ("rejected", self.rejected)), self.source)


def margin(trial: Trial, texts: Mapping[str, str], scores: Mapping[Pair, Scores]) -> float:
    """score(chosen) - score(rejected) for these texts of the trial's comparison."""
    value = lambda role: scores[trial.pair(role, texts)][OVERALL]  # noqa: E731
    return value("chosen") - value("rejected")


@dataclass
class Scored:
    """One scored perturbed comparison and what it did to the preference."""

    perturbed: Trial  # one response of the comparison changed by one operator variant, at a dose
    before: float  # the original margin
    margin: float
    outcome: Outcome
    closed: float  # share of the original margin taken away

    @property
    def change(self) -> Change:
        return self.perturbed.changes[0][1]

    @property
    def dose(self) -> int:
        return self.perturbed.dose or 1

    def flips(self, keep: Subset, scores: Mapping[Pair, Scores]) -> bool:
        """Whether the edits in ``keep`` (a subset of this perturbation's) still flip the preference."""
        return outcome(self.before, margin(self.perturbed, self.perturbed.texts(keep), scores)) == "counterfactual"

    def to_json(self) -> dict[str, Any]:
        return {"target": self.perturbed.target, "dose": self.perturbed.dose, "label": self.change.label,
                "outcome": self.outcome, "margin": self.margin, "closed": self.closed,
                "edits": len(self.perturbed.edits), "perturbed": self.change.text}


@dataclass
class Minimal:
    """The counterfactual with the fewest edits that still flip the preference, confirmed outside the shrink round
    that found it (replayed)."""

    scored: Scored
    keep: Subset
    status: Status  # minimal, budget, or flaky (the replay no longer flips the preference)
    texts: dict[str, str]
    scores: dict[str, float]  # both responses: replayed where a shrink round scored them, else as scored before

    @property
    def margin(self) -> float:
        return self.scores["chosen"] - self.scores["rejected"]

    def to_json(self) -> dict[str, Any]:
        perturbed = self.scored.perturbed
        target = perturbed.target
        return {"target": target, "dose": perturbed.dose, "label": self.scored.change.label, "status": self.status,
                "edits_kept": len(self.keep), "edits_total": len(perturbed.edits),
                "texts": self.texts, "scores": self.scores, "margin": self.margin,
                "diff": word_diff(perturbed.case.text(target), self.texts[target])}


@dataclass
class AttributeExplanation:
    """What one probe's perturbations of a comparison did to its preference."""

    probe: Probe
    scored: list[Scored] = field(default_factory=list)
    not_applicable: list[str] = field(default_factory=list)  # roles the operator had nothing to change in
    minimal: Minimal | None = None

    def count(self, kind: Outcome) -> int:
        return sum(1 for s in self.scored if s.outcome == kind)

    @property
    def counterfactuals(self) -> int:
        return self.count("counterfactual")

    @property
    def applicable(self) -> bool:
        return bool(self.scored)

    @property
    def flip_dose(self) -> int | None:
        """The smallest dose that flipped the preference (1 for an operator without a strength), or None."""
        return min((s.dose for s in self.scored if s.outcome == "counterfactual"), default=None)

    @property
    def doses(self) -> list[int]:
        """The doses tried, on either response."""
        return sorted({s.dose for s in self.scored})

    def to_json(self) -> dict[str, Any]:
        margins = [s.margin for s in self.scored]
        return {**self.probe.to_json(), "counterfactuals": self.counterfactuals,
                "semifactuals": self.count("semifactual"), "ties": self.count("tie"),
                "small_nonflips": self.count("small"), "perturbations": len(self.scored),
                "flip_dose": self.flip_dose, "doses": self.doses,
                "not_applicable": self.not_applicable,
                "margins": {"min": min(margins), "max": max(margins)} if margins else None,
                "perturbed": [s.to_json() for s in self.scored],
                "minimal": self.minimal.to_json() if self.minimal else None}


@dataclass
class Explanation:
    """A comparison, the RM's original scores, and what every probe did to its preference."""

    comparison: Comparison
    scores: dict[str, float]
    attributes: list[AttributeExplanation]

    @property
    def margin(self) -> float:
        return self.scores["chosen"] - self.scores["rejected"]

    @property
    def preferred(self) -> str:
        return "tie" if self.margin == 0 else "chosen" if self.margin > 0 else "rejected"

    @property
    def has_counterfactual(self) -> bool:
        return any(a.counterfactuals for a in self.attributes)

    def to_json(self) -> dict[str, Any]:
        c = self.comparison
        return {"id": c.id, "source": c.source, "prompt": prompt_json(c.prompt), "chosen": c.chosen,
                "rejected": c.rejected, "scores": self.scores, "margin": self.margin, "preferred": self.preferred,
                "attributes": [a.to_json() for a in self.attributes]}


def perturb(comparison: Comparison, probe: Probe, settings: Mapping[str, Any], dose: int = 1,
            roles: Sequence[str] = ROLES) -> tuple[list[Trial], list[str]]:
    """Every variant of ``probe`` at ``dose`` on each of ``roles`` (a trial comparing both responses), and the
    roles it does not apply to."""
    found: list[Trial] = []
    skipped: list[str] = []
    for role in roles:
        text = comparison.text(role)
        ctx = OperatorContext(rng=random.Random(f"{probe.operator}\x1f0\x1f{text}"), prompt=comparison.last_turn,
                              settings=settings)
        try:
            changes = run_operator(probe.operator, text, ctx, probe.arguments(dose))
        except RmcheckError as exc:
            raise type(exc)(exc.message, where=exc.where or f"{comparison.id}: {probe.operator}", fix=exc.fix) from None
        found.extend(Trial(comparison.case, comparison.id, ROLES, ((role, change),), dose) for change in changes)
        if not changes:
            skipped.append(role)
    return found, skipped


def explain_comparisons(engine: "Engine", spec: str, comparisons: Sequence[Comparison], probes: Sequence[Probe],
                        semifactual_margin: float = SEMIFACTUAL_MARGIN, max_dose: int = MAX_DOSE) -> list[Explanation]:
    """Explain every comparison under ``spec``: one scoring pass for all perturbations at dose 1, one more
    per rung of the dose ladder, then every counterfactual shrunk in lockstep, then the smallest per
    attribute replayed."""
    plans = [[(probe, *perturb(c, probe, engine.options.extra)) for probe in probes] for c in comparisons]
    needed = [Pair(c.prompt, c.text(role)) for c in comparisons for role in ROLES]
    needed += [pair for plan in plans for _, found, _ in plan for trial in found for pair in trial.pairs()]
    scores = engine.score(spec, needed, f"explaining {len(comparisons)} comparison(s)")
    explained: list[Explanation] = []
    for comparison, plan in zip(comparisons, plans):
        original = {role: scores[Pair(comparison.prompt, comparison.text(role))][OVERALL] for role in ROLES}
        explanation = Explanation(comparison, original, [])
        before = explanation.margin
        for probe, found, skipped in plan:
            entry = AttributeExplanation(probe, not_applicable=skipped)
            if before != 0:
                entry.scored.extend(_scored(p, before, scores, semifactual_margin) for p in found)
            explanation.attributes.append(entry)
        explained.append(explanation)
    _climb(engine, spec, explained, semifactual_margin, max_dose)
    _minimal_counterfactuals(engine, spec, explained)
    return explained


def _scored(trial: Trial, before: float, scores: Mapping[Pair, Scores], semifactual_margin: float) -> Scored:
    after = margin(trial, trial.texts(), scores)
    found = outcome(before, after, semifactual_margin)
    return Scored(trial, before, after, found, closed(before, after))  # type: ignore[arg-type]


def _climb(engine: "Engine", spec: str, explained: Sequence[Explanation], semifactual_margin: float,
           max_dose: int) -> None:
    """Climb each strength's dose ladder past dose 1, one scoring pass per rung for every comparison: on each
    response whose dose-1 edit closed part of the margin, until the preference flips or ``max_dose``."""
    sides = {(id(a), s.perturbed.target): (e, a, s.perturbed.target) for e in explained for a in e.attributes
             if a.probe.dose is not None and a.flip_dose is None for s in a.scored if s.closed > 0}
    climbing = list(sides.values())
    for dose in (1 << k for k in range(1, max_dose.bit_length())):
        climbing = [(e, a, role) for e, a, role in climbing
                    if a.flip_dose is None and dose in a.probe.dose.ladder(max_dose)]  # type: ignore[union-attr]
        if not climbing:
            return
        found = [(e, a, perturb(e.comparison, a.probe, engine.options.extra, dose, (role,))[0])
                 for e, a, role in climbing]
        pairs = [pair for _, _, trials in found for trial in trials for pair in trial.pairs()]
        scores = engine.score(spec, pairs, f"dose {dose}: {len(found)} perturbation(s)") if pairs else {}
        for e, a, ps in found:
            a.scored.extend(_scored(p, e.margin, scores, semifactual_margin) for p in ps)


def _minimal_counterfactuals(engine: "Engine", spec: str, explained: Sequence[Explanation]) -> None:
    """Shrink every counterfactual (all in lockstep, one scoring batch per round); per attribute, the one with the
    fewest edits left (the larger original flip on a tie) is replayed and kept. A replay re-scores only the pairs a
    shrink round scored: the others were scored before it, in other batches."""
    scorer = engine.scorer(spec)
    known = set(scorer.memo)
    work = [(a, s) for e in explained for a in e.attributes
            for s in sorted(a.scored, key=lambda s: -abs(s.margin)) if s.outcome == "counterfactual"]
    found = minimise([Search(len(s.perturbed.edits), s.perturbed.pairs, s.flips, group=id(a)) for a, s in work],
                     lambda pairs, n: engine.score(spec, pairs, f"shrinking {n} counterfactuals"),
                     lambda pairs: scorer.confirm(pairs, known), engine.shrink_budget)
    for i, small in found.items():
        a, s = work[i]
        texts = s.perturbed.texts(small.keep)
        replayed = {role: small.scores[s.perturbed.pair(role, texts)][OVERALL] for role in ROLES}
        a.minimal = Minimal(s, small.keep, small.status, texts, replayed)


__all__ = ["BUILTIN_PROBES", "MAX_DOSE", "OUTCOMES", "AttributeExplanation", "Comparison", "Explanation", "Minimal",
           "Probe", "Scored", "explain_comparisons", "llm_probes", "select_probes"]
