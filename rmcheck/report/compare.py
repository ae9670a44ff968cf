"""Compare two reward models over the same suites, and gate a release on it.

Two sides are two models, each in a JSON run document (or both in one). Per test, the pass-rate
change, with an exact McNemar test paired over the cases both runs judged; a regression is a drop
in pass rate beyond the test's ``--max-regression`` threshold (optionally only when McNemar's p is
at most ``--regression-alpha``). Cases whose verdict flipped are listed with their minimal pair.
Divergence between the two models over the same perturbed pairs: how often they agree on which
response of a pair is better (the sign of d), and Kendall's tau between their deltas.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..errors import RmcheckError
from .text import only_changes, word_diff
from ..results import load_run_document
from .sensitivity import attribute_of

JUDGED = ("passed", "failed")
MAX_FLIPS_SHOWN = 5


@dataclass(frozen=True)
class Thresholds:
    """The largest tolerated pass-rate drop: per attribute, else the default."""

    default: float = 0.0
    per_attribute: tuple[tuple[str, float], ...] = ()

    def of(self, attribute: str) -> float:
        return dict(self.per_attribute).get(attribute, self.default)


def parse_thresholds(values: Sequence[str] | None, where: str = "--max-regression") -> Thresholds:
    """``["0.05", "verbosity=0"]`` -> default 0.05, verbosity 0. Values are pass-rate drops in [0, 1]."""
    default, per = 0.0, {}
    for value in values or ():
        name, sep, number = value.rpartition("=")
        try:
            drop = float(number)
        except ValueError:
            drop = -1.0
        if not 0 <= drop <= 1 or (sep and not name):
            raise RmcheckError(f"bad value {value!r}", where=where,
                               fix="Give a pass-rate drop between 0 and 1, for all tests (0.05) or for one "
                                   "attribute (verbosity=0.0)")
        if sep:
            per[name] = drop
        else:
            default = drop
    return Thresholds(default, tuple(per.items()))


def mcnemar_p(worse: int, better: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs (pass->fail, fail->pass)."""
    n = worse + better
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(worse, better) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b (ties accounted for); None when either side is constant or too short."""
    score = untied_x = untied_y = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = _sign(x[i] - x[j]), _sign(y[i] - y[j])
            score += dx * dy
            untied_x += dx != 0
            untied_y += dy != 0
    return score / math.sqrt(untied_x * untied_y) if untied_x and untied_y else None


def _sign(value: float) -> int:
    return (value > 1e-12) - (value < -1e-12)


@dataclass(frozen=True)
class Flip:
    """A case whose verdict differs between the two models."""

    test: str
    case_id: str
    before: dict[str, Any]
    after: dict[str, Any]

    @property
    def regressed(self) -> bool:
        return self.after["verdict"] == "failed"

    def pair_line(self, width: int = 110) -> str:
        """The failing side's minimal pair on one line."""
        case = self.after if self.regressed else self.before
        if "original" not in case:
            return ""
        after = case.get("minimal", case.get("perturbed", case["original"]))
        text = " ".join(only_changes(word_diff(case["original"], after)).split())
        return text if len(text) <= width else text[:width - 1] + "…"


@dataclass
class TestChange:
    """One test's pass rate under the base and the candidate model."""

    test: str  # suite::test
    attribute: str
    base: dict[str, Any]
    candidate: dict[str, Any]
    threshold: float
    alpha: float | None = None
    flips: list[Flip] = field(default_factory=list)

    @property
    def change(self) -> float | None:
        before, after = self.base["pass_rate"], self.candidate["pass_rate"]
        return None if before is None or after is None else after - before

    @property
    def worse(self) -> int:
        return sum(f.regressed for f in self.flips)

    @property
    def better(self) -> int:
        return len(self.flips) - self.worse

    @property
    def p_value(self) -> float:
        return mcnemar_p(self.worse, self.better)

    @property
    def regression(self) -> bool:
        change = self.change
        significant = self.alpha is None or self.p_value <= self.alpha
        return change is not None and -change > self.threshold + 1e-12 and significant

    def row(self) -> list[str]:
        rate = lambda r: "n/a" if r is None else f"{r:.2f}"  # noqa: E731
        change = "n/a" if self.change is None else f"{self.change:+.2f}"
        return [self.test, self.attribute, rate(self.base["pass_rate"]), rate(self.candidate["pass_rate"]), change,
                str(self.worse), str(self.better), f"{self.p_value:.3g}", f"{self.threshold:.2f}",
                "REGRESSION" if self.regression else ""]

    def explain(self, base: str, candidate: str) -> str:
        """Why this test counts as a regression, with the cases that flipped to failing."""
        lines = [f"{self.test} regressed against the baseline: pass rate {self.base['pass_rate']:.2f} ({base}) -> "
                 f"{self.candidate['pass_rate']:.2f} ({candidate}), a drop of {-(self.change or 0):.2f} > "
                 f"max regression {self.threshold:.2f}; {self.worse} case(s) passed -> failed, {self.better} "
                 f"failed -> passed (exact McNemar p = {self.p_value:.3g})"]
        for flip in self.flips:
            if flip.regressed:
                lines.append(f"  case {flip.case_id}: d {flip.before['delta']:+.4g} -> {flip.after['delta']:+.4g}"
                             f"  {flip.pair_line()}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Divergence:
    """How two models agree over the same judged cases."""

    cases: int
    agreement: float | None  # share of cases where sign(d) is the same
    tau: float | None  # Kendall tau-b between the deltas

    @classmethod
    def of(cls, pairs: Sequence[tuple[float, float]]) -> "Divergence":
        if not pairs:
            return cls(0, None, None)
        agree = sum(_sign(a) == _sign(b) for a, b in pairs) / len(pairs)
        return cls(len(pairs), agree, kendall_tau([a for a, _ in pairs], [b for _, b in pairs]))

    def text(self) -> str:
        number = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
        return f"preference agreement {number(self.agreement)}, Kendall tau {number(self.tau)} over {self.cases} cases"


@dataclass
class Comparison:
    base: str  # labels: "spec (file)"
    candidate: str
    changes: list[TestChange]
    missing: list[str]  # tests the base ran and the candidate did not
    added: list[str]
    divergence: Divergence
    by_attribute: dict[str, Divergence]

    @property
    def regressions(self) -> list[TestChange]:
        return [c for c in self.changes if c.regression]

    @property
    def failed(self) -> bool:
        return bool(self.regressions or self.missing)

    def summary_lines(self) -> list[str]:
        verdict = (f"FAIL: {len(self.regressions)} regression(s), {len(self.missing)} test(s) missing from the "
                   f"candidate" if self.failed else "OK: no regression beyond the thresholds")
        return [f"compared {len(self.changes)} tests: base {self.base} -> candidate {self.candidate}",
                f"divergence: {self.divergence.text()}", verdict]

    def text(self) -> str:
        header = ["test", "attribute", "base", "cand", "change", "pass->fail", "fail->pass", "p (McNemar)",
                  "max drop", ""]
        lines = [f"base:      {self.base}", f"candidate: {self.candidate}", "",
                 *_table([header] + [c.row() for c in self.changes])]
        lines += [f"missing from the candidate (counted as regressions): {t}" for t in self.missing]
        lines += [f"new in the candidate: {t}" for t in self.added]
        lines += ["", f"divergence over the same perturbed pairs: {self.divergence.text()}"]
        lines += [f"  {attribute}: {d.text()}" for attribute, d in self.by_attribute.items()]
        if any(c.flips for c in self.changes):
            lines += ["", f"cases whose verdict flipped (the failing side's minimal pair; at most {MAX_FLIPS_SHOWN} "
                          f"per test, regressions first):"]
        for change in self.changes:
            flips = sorted(change.flips, key=lambda f: not f.regressed)
            lines += [f"  {f.before['verdict']} -> {f.after['verdict']}  {f.test} :: {f.case_id}  {f.pair_line()}"
                      for f in flips[:MAX_FLIPS_SHOWN]]
            if len(flips) > MAX_FLIPS_SHOWN:
                lines.append(f"  ... and {len(flips) - MAX_FLIPS_SHOWN} more in {change.test}")
        return "\n".join(lines + ["", self.summary_lines()[-1]])


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


# -- selecting and pairing ----------------------------------------------------------------------------


def models_in(doc: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys(r["model"] for r in doc["results"]))


def pick_model(doc: dict[str, Any], wanted: str | None, where: str) -> str:
    found = models_in(doc)
    if wanted is not None and wanted not in found:
        raise RmcheckError(f"no results for model {wanted!r}", where=where, fix=f"Its models are: {', '.join(found)}")
    if wanted is None and len(found) != 1:
        raise RmcheckError(f"holds {len(found)} models ({', '.join(found) or 'none'}); which one to compare?",
                           where=where, fix="Name them with --models BASE CANDIDATE")
    return wanted or found[0]


def compare_runs(paths: Sequence[str | Path], models: Sequence[str] | None = None,
                 thresholds: Thresholds | None = None, alpha: float | None = None) -> Comparison:
    """``rmcheck compare``: BASE.json CANDIDATE.json, or one RUN.json holding both models."""
    docs = [load_run_document(p) for p in paths]
    wanted = list(models or [None, None])
    if len(docs) == 1:
        found = models_in(docs[0])
        if models is None and len(found) == 2:
            wanted = found
        elif models is None:
            raise RmcheckError(f"holds {len(found)} models; compare needs two", where=str(paths[0]),
                               fix="Name the two with --models BASE CANDIDATE, or pass BASE.json CANDIDATE.json")
        docs, paths = docs * 2, [paths[0]] * 2
    sides = [(pick_model(doc, name, str(path)), doc, path) for doc, name, path in zip(docs, wanted, paths)]
    (base, base_doc, base_path), (cand, cand_doc, cand_path) = sides
    return compare_results(_results(base_doc, base), _results(cand_doc, cand),
                           f"{base} ({Path(base_path).name})", f"{cand} ({Path(cand_path).name})",
                           thresholds or Thresholds(), alpha)


def _results(doc: dict[str, Any], model: str) -> list[dict[str, Any]]:
    return [r for r in doc["results"] if r["model"] == model]


def _key(result: dict[str, Any]) -> str:
    return f"{result['suite']}::{result['test']}"


def compare_results(base: Iterable[dict[str, Any]], candidate: Iterable[dict[str, Any]], base_label: str,
                    candidate_label: str, thresholds: Thresholds, alpha: float | None = None) -> Comparison:
    before, after = {_key(r): r for r in base}, {_key(r): r for r in candidate}
    common = [k for k in before if k in after]
    changes = [change_of(before[k], after[k], thresholds, alpha) for k in common]
    pooled: dict[str, list[tuple[float, float]]] = {}
    for k in common:
        pooled.setdefault(attribute_of(after[k]), []).extend(_paired_deltas(before[k], after[k]))
    return Comparison(base_label, candidate_label, changes, [k for k in before if k not in after],
                      [k for k in after if k not in before],
                      Divergence.of([p for ps in pooled.values() for p in ps]),
                      {a: Divergence.of(ps) for a, ps in pooled.items()})


def change_of(base: dict[str, Any], candidate: dict[str, Any], thresholds: Thresholds,
              alpha: float | None = None) -> TestChange:
    attribute = attribute_of(candidate)
    cases = {c["id"]: c for c in base.get("cases", [])}
    flips = [Flip(_key(candidate), c["id"], cases[c["id"]], c) for c in candidate.get("cases", [])
             if c["id"] in cases and {c["verdict"], cases[c["id"]]["verdict"]} == set(JUDGED)]
    return TestChange(_key(candidate), attribute, base, candidate, thresholds.of(attribute), alpha, flips)


def _paired_deltas(base: dict[str, Any], candidate: dict[str, Any]) -> list[tuple[float, float]]:
    cases = {c["id"]: c for c in base.get("cases", []) if c["verdict"] in JUDGED and c.get("delta") is not None}
    return [(cases[c["id"]]["delta"], c["delta"]) for c in candidate.get("cases", [])
            if c["id"] in cases and c["verdict"] in JUDGED and c.get("delta") is not None]


class Baseline:
    """A baseline run document that each new test result is checked against (``--rmcheck-baseline``)."""

    def __init__(self, path: str | Path, thresholds: Thresholds, alpha: float | None = None) -> None:
        self.path = str(path)
        self.doc = load_run_document(path)
        self.thresholds, self.alpha = thresholds, alpha

    def base_model(self, spec: str) -> str:
        found = models_in(self.doc)
        return spec if spec in found else pick_model(self.doc, None, self.path)

    def check(self, result: dict[str, Any]) -> TestChange | None:
        """The change against the baseline's result of the same test, or None when the baseline lacks it."""
        model = self.base_model(result["model"])
        base = next((r for r in _results(self.doc, model) if _key(r) == _key(result)), None)
        return change_of(base, result, self.thresholds, self.alpha) if base is not None else None

    def compare(self, results: list[dict[str, Any]]) -> Comparison:
        """One model's results against the baseline, over the tests this run ran (a subset is not a regression)."""
        spec = results[0]["model"] if results else ""
        model = self.base_model(spec)
        ran = {_key(r) for r in results}
        return compare_results([r for r in _results(self.doc, model) if _key(r) in ran], results,
                               f"{model} ({Path(self.path).name})", spec, self.thresholds, self.alpha)
