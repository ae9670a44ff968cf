"""Explanations over a dataset: comparisons read from a file, and the global sensitivity they give.

- CF coverage: the share of comparisons (with a preference, i.e. not an original tie) that have at
  least one counterfactual;
- per attribute (probe), the CF rate: the share of the comparisons it applied to in which it found a
  counterfactual, with a bootstrap confidence interval over comparisons (BCa, :func:`rmcheck.stats.bootstrap_ci`);
- representative examples: per attribute, the counterfactual and the semifactual whose share of the
  margin closed is nearest the median of their kind (the most typical of the attribute's effect).
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

from ..errors import RmcheckError
from ..stats import OUTCOMES, bootstrap_ci
from ..suite.datasets import FORMATS, file_stem, read_rows
from ..suite.loader import check_rows
from .core import AttributeExplanation, Comparison, Explanation, Probe, Scored


def read_comparisons(path: str | Path, fmt: str = "jsonl", limit: int | None = None) -> list[Comparison]:
    """Pair rows (``prompt``, ``chosen``, ``rejected``) of a dataset file in ``fmt`` (jsonl, hh-rlhf, rm-bench)."""
    if fmt not in FORMATS:
        raise RmcheckError(f"unknown format {fmt!r}", where="--format", fix=f"Use one of: {', '.join(FORMATS)}")
    found = []
    rows = check_rows(read_rows(Path(path), fmt, limit, where=f"--file {path}"))
    for number, (row, source) in enumerate(rows, start=1):
        if not {"prompt", "chosen", "rejected"} <= set(row) or not isinstance(row["rejected"], str):
            raise RmcheckError("a row without prompt, chosen and one rejected response", where=source,
                               fix="explain compares two responses: give each row prompt, chosen and rejected")
        prompt = row["prompt"]
        if not isinstance(prompt, str):
            prompt = tuple((turn["role"], turn["content"]) for turn in prompt)
        name = str(row.get("id", f"{file_stem(Path(path))}-{number}"))
        found.append(Comparison(name + (f"[style={row['style']}]" if row.get("style") else ""), prompt,
                                row["chosen"], row["rejected"], source))
    if not found:
        raise RmcheckError("no comparison in the file", where=str(path), fix="Check --file, --format and --limit")
    return found


@dataclass
class AttributeSummary:
    """One probe over a dataset: its CF rate with a bootstrap interval, counts, and representative examples."""

    probe: Probe
    entries: list[tuple[Explanation, AttributeExplanation]]  # comparisons it applied to (with a preference)
    seed: int = 0

    @property
    def flags(self) -> list[float]:
        return [1.0 if a.counterfactuals else 0.0 for _, a in self.entries]

    @property
    def cf_rate(self) -> float | None:
        return statistics.fmean(self.flags) if self.entries else None

    @cached_property
    def ci(self) -> tuple[float, float] | None:
        return bootstrap_ci(self.flags, seed=self.seed) if self.entries else None

    def count(self, kind: str) -> int:
        return sum(a.count(kind) for _, a in self.entries)  # type: ignore[arg-type]

    def representative(self, kind: str) -> tuple[Explanation, Scored] | None:
        """The perturbation of this kind whose share of the margin closed is nearest the median of its kind."""
        found = [(e, s) for e, a in self.entries for s in a.scored if s.outcome == kind]
        if not found:
            return None
        median = statistics.median(s.closed for _, s in found)
        return min(found, key=lambda es: abs(es[1].closed - median))

    def example_json(self, kind: str) -> dict[str, Any] | None:
        found = self.representative(kind)
        return None if found is None else {"id": found[0].comparison.id, **found[1].to_json()}

    def to_json(self) -> dict[str, Any]:
        examples = {kind: self.example_json(kind) for kind in ("counterfactual", "semifactual")}
        return {**self.probe.to_json(), "comparisons": len(self.entries),
                "with_counterfactual": int(sum(self.flags)), "cf_rate": self.cf_rate,
                "ci": list(self.ci) if self.ci else None,
                **{f"{kind}s" if kind != "small" else "small_nonflips": self.count(kind) for kind in OUTCOMES},
                "representative": examples}


@dataclass
class Summary:
    """Global sensitivity over a set of explained comparisons."""

    explanations: list[Explanation]
    seed: int = 0

    @property
    def with_preference(self) -> list[Explanation]:
        return [e for e in self.explanations if e.preferred != "tie"]

    @property
    def coverage(self) -> float | None:
        found = self.with_preference
        return sum(e.has_counterfactual for e in found) / len(found) if found else None

    @cached_property
    def attributes(self) -> list[AttributeSummary]:
        probes = list(dict.fromkeys(a.probe for e in self.explanations for a in e.attributes))
        return [AttributeSummary(p, [(e, a) for e in self.with_preference for a in e.attributes
                                     if a.probe == p and a.applicable], self.seed) for p in probes]

    def to_json(self) -> dict[str, Any]:
        flags = [1.0 if e.has_counterfactual else 0.0 for e in self.with_preference]
        return {"comparisons": len(self.explanations), "original_ties": len(self.explanations) - len(flags),
                "prefers_chosen": sum(e.preferred == "chosen" for e in self.explanations),
                "coverage": self.coverage, "coverage_ci": list(bootstrap_ci(flags, seed=self.seed)) if flags else None,
                "attributes": [a.to_json() for a in self.attributes]}


__all__ = ["AttributeSummary", "Summary", "read_comparisons"]
