"""``rmcheck.explain(...)``: explain one comparison or a dataset of them, as text and as a JSON document."""
from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Sequence

from ..backends.base import ModelOptions, Prompt, prompt_to_text
from ..engine import DEFAULT_SHRINK_BUDGET, Engine
from ..errors import RmcheckError
from ..scoring.cache import ScoreCache
from ..stats import SEMIFACTUAL_MARGIN
from .core import MAX_DOSE, AttributeExplanation, Comparison, Explanation, explain_comparisons, select_probes
from .dataset import AttributeSummary, Summary, read_comparisons

EXPLAIN_FORMAT = 1


@dataclass
class ExplainReport:
    """Explanations of comparisons under one model, with their global summary."""

    model: dict[str, str]  # spec, fingerprint, description
    explanations: list[Explanation]
    semifactual_margin: float
    seed: int = 0
    max_dose: int = MAX_DOSE

    @cached_property
    def summary(self) -> Summary:
        return Summary(self.explanations, self.seed)

    def to_json(self) -> dict[str, Any]:
        from ..version import __version__

        return {"rmcheck_explain": EXPLAIN_FORMAT, "rmcheck_version": __version__,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "model": self.model,
                "settings": {"semifactual_margin": self.semifactual_margin, "seed": self.seed,
                             "max_dose": self.max_dose},
                "comparisons": [e.to_json() for e in self.explanations], "summary": self.summary.to_json()}

    def write_json(self, path: str | Path) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.to_json(), indent=1), encoding="utf-8")
        return target

    def text(self) -> str:
        lines = [f"model: {self.model['description']}",
                 f"semifactual: the preference held though the perturbation closed >= {self.semifactual_margin:g} "
                 "of the margin; small: it held and less closed; tie: equal scores after; flips at: the smallest "
                 f"dose that flipped it (operators with a strength climb doses 1, 2, 4, ... up to {self.max_dose})"]
        if len(self.explanations) == 1:
            lines += comparison_lines(self.explanations[0])
        else:
            lines += summary_lines(self.summary)
        return "\n".join(lines)


def explain(rm: str, *, prompt: Prompt | None = None, chosen: str | None = None, rejected: str | None = None,
            file: str | Path | None = None, format: str = "jsonl", limit: int | None = None,
            attributes: Sequence[str] = (), llm_attributes: Sequence[str] = (),
            semifactual_margin: float = SEMIFACTUAL_MARGIN, max_dose: int = MAX_DOSE,
            options: ModelOptions | None = None,
            cache: ScoreCache | None = None, shrink_budget: int = DEFAULT_SHRINK_BUDGET, seed: int = 0,
            progress: Callable[[str, int, int], None] | None = None, engine: Engine | None = None) -> ExplainReport:
    """Explain why the RM ``rm`` prefers one response of a comparison (``prompt``, ``chosen``, ``rejected``),
    or of every comparison in a dataset ``file``: which attribute perturbations flip its preference
    (counterfactuals, each with its minimal edit), which it survives (semifactuals), and, over a dataset,
    the CF coverage and per-attribute CF rates. An operator with a strength climbs doses 1, 2, 4, ... up to
    ``max_dose`` until the preference flips (its ``flip_dose``). ``progress(what, done, total)`` hears about
    every scoring step (as the engine's progress callback)."""
    if (file is None) == (prompt is None):
        raise RmcheckError("give one comparison or one file", where="rmcheck explain",
                           fix="Pass --prompt P --chosen A --rejected B, or --file F")
    if file is None:
        if chosen is None or rejected is None:
            raise RmcheckError("a comparison needs both responses", where="rmcheck explain",
                               fix="Pass --chosen A and --rejected B with --prompt P")
        comparisons = [Comparison("comparison", prompt, chosen, rejected)]  # type: ignore[arg-type]
    else:
        comparisons = read_comparisons(file, format, limit)
    if not 0 < semifactual_margin <= 1:
        raise RmcheckError(f"semifactual margin {semifactual_margin} is not in (0, 1]", where="--semifactual-margin",
                           fix="Write e.g. --semifactual-margin 0.5 (half the original margin closed)")
    if isinstance(max_dose, bool) or not isinstance(max_dose, int) or max_dose < 1:
        raise RmcheckError(f"max dose {max_dose!r} is not a positive whole number", where="--max-dose",
                           fix="Write e.g. --max-dose 16 (doses 1, 2, 4, 8, 16)")
    probes = select_probes(attributes, llm_attributes)
    engine = engine or Engine(options or ModelOptions(), shrink_budget, progress, cache)
    model = engine.model(rm)
    explained = explain_comparisons(engine, rm, comparisons, probes, semifactual_margin, max_dose)
    return ExplainReport({"spec": rm, "fingerprint": model.fingerprint, "description": model.describe()},
                         explained, semifactual_margin, seed, max_dose)


# -- text ---------------------------------------------------------------------------------------


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()


def _table(header: Sequence[str], rows: list[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  " + _row(header, widths), *("  " + _row(r, widths) for r in rows)]


def comparison_lines(e: Explanation) -> list[str]:
    """One comparison: its scores, a row per probe, then each minimal counterfactual as a word diff."""
    lines = [f"comparison {e.comparison.id}: {prompt_to_text(e.comparison.prompt)[:100]!r}",
             f"  score(chosen) {e.scores['chosen']:+.4g}, score(rejected) {e.scores['rejected']:+.4g}: "
             + ("a tie, so there is no preference to explain" if e.preferred == "tie"
                else f"the RM prefers {e.preferred} by {abs(e.margin):.4g}")]
    if e.preferred == "tie":
        return lines
    rows = [_attribute_row(a) for a in e.attributes]
    lines += _table(("attribute", "operator", "CF", "SF", "tie", "small", "flips at", "margin after (min..max)"), rows)
    minimal = [a for a in e.attributes if a.minimal is not None]
    lines.append("minimal counterfactuals (fewest edits that still flip, replayed):" if minimal
                 else "no counterfactual: no perturbation flipped the preference")
    for a in minimal:
        lines += minimal_lines(a, e.margin)
    return lines


def _attribute_row(a: AttributeExplanation) -> list[str]:
    margins = [s.margin for s in a.scored]
    span = f"{min(margins):+.3g}..{max(margins):+.3g}" if margins else "not applicable"
    return [a.probe.attribute, a.probe.operator, *(str(a.count(k)) for k in ("counterfactual", "semifactual", "tie",
                                                                              "small")), flips_at(a), span]


def flips_at(a: AttributeExplanation) -> str:
    """``dose 4``, ``held to dose 16`` (the highest dose tried), or ``-`` (not applicable, or no flip of an
    operator without a strength)."""
    if a.flip_dose is not None:
        return f"dose {a.flip_dose}"
    return f"held to dose {a.doses[-1]}" if a.doses and a.probe.dose is not None else "-"


def minimal_lines(a: AttributeExplanation, before: float) -> list[str]:
    m = a.minimal
    assert m is not None
    doc = m.to_json()
    at = f" at dose {doc['dose']}" if a.probe.dose is not None else ""
    return [f"  {a.probe.attribute} ({a.probe.operator}{at} on {doc['target']}, {doc['edits_kept']} of "
            f"{doc['edits_total']} edits, {doc['status']}): margin {before:+.4g} -> {m.margin:+.4g}",
            f"    {doc['target']}: {doc['diff']}"]


def summary_lines(summary: Summary) -> list[str]:
    """A dataset: coverage, the CF rate per probe with its interval, and representative examples."""
    doc = summary.to_json()
    coverage = "n/a" if doc["coverage"] is None else (f"{doc['coverage']:.2f} [{doc['coverage_ci'][0]:.2f}, "
                                                     f"{doc['coverage_ci'][1]:.2f}]")
    lines = [f"{doc['comparisons']} comparisons ({doc['original_ties']} original ties; the RM prefers chosen in "
             f"{doc['prefers_chosen']}); CF coverage (share with at least one counterfactual): {coverage}"]
    attributes = sorted(summary.attributes, key=lambda a: -(a.cf_rate or 0.0))
    lines += _table(("attribute", "operator", "CF rate [95% CI]", "applied", "CF", "SF", "tie", "small"),
                    [_summary_row(a) for a in attributes])
    lines.append("representative examples (the most typical counterfactual and semifactual per attribute):")
    for a in attributes:
        for kind in ("counterfactual", "semifactual"):
            found = a.representative(kind)
            if found is not None:
                e, s = found
                lines.append(f"  {a.probe.attribute}/{a.probe.operator} {kind}: {e.comparison.id} "
                             f"({s.perturbed.target} perturbed): margin {s.before:+.4g} -> {s.margin:+.4g}")
    return lines


def _summary_row(a: AttributeSummary) -> list[str]:
    rate = "n/a" if a.cf_rate is None or a.ci is None else f"{a.cf_rate:.2f} [{a.ci[0]:.2f}, {a.ci[1]:.2f}]"
    return [a.probe.attribute, a.probe.operator, rate, str(len(a.entries)),
            *(str(a.count(k)) for k in ("counterfactual", "semifactual", "tie", "small"))]
