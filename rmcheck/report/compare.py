"""Compare two reward models over the same suites, and gate a release on it.

Two sides are two models, each in a JSON run document (or both in one). Per test, the pass-rate
change over the cases both runs judged (applicable in both; the others are counted and shown), judged
by :func:`judge`, the one rule that ``rmcheck compare``, ``rmcheck run --fail-on`` and the pytest plugin
share: a regression is a drop in pass rate beyond the test's ``--max-regression`` that is also
significant by the exact one-sided McNemar test (p at most ``--regression-alpha``, default 0.05);
where the cases that passed in the base are too few for p to reach alpha even if all of them
flipped, the drop alone decides; and a pass rate that fell to 0 from at least 0.5 is always one.
Cases whose verdict flipped are listed with their minimal pair.
Divergence between the two models over the same perturbed pairs: how often they agree on which
response of a pair is better (the sign of d), and Kendall's tau between their deltas.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..errors import RmcheckError
from .text import only_changes, word_diff
from ..provenance import differences, model_provenance
from ..results import load_run_document
from .sensitivity import attribute_of
from ..stats import kendall_tau, mcnemar_greater, smallest_p

JUDGED = ("passed", "failed")
MAX_FLIPS_SHOWN = 5
#: The default ``--regression-alpha``: a drop counts only when McNemar's p over the paired cases is at most this.
DEFAULT_ALPHA = 0.05
#: A pass rate that fell to 0 from at least this is a regression whatever the thresholds (never xfailed).
COLLAPSE_FROM = 0.5


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


@dataclass(frozen=True)
class Judgement:
    """What the gate made of one test's change (see :func:`judge`)."""

    dropped: bool  # the pass rate fell by more than the threshold
    p_value: float  # exact one-sided McNemar p over the paired cases
    decidable: bool  # p could reach alpha: enough paired cases passed in the base
    significant: bool  # p <= alpha (true where p cannot decide)
    collapsed: bool  # the pass rate fell to 0 from at least COLLAPSE_FROM
    note: str  # why p did not decide, for the test's row ("" where it did)

    @property
    def regression(self) -> bool:
        return self.collapsed or (self.dropped and self.significant)


def judge(rates: tuple[float | None, float | None], paired: int, flippable: int, worse: int, better: int,
          threshold: float, alpha: float | None) -> Judgement:
    """The gate's one rule for one test, given its base and candidate pass rates, its ``paired`` cases (judged
    by both runs; ``flippable`` of them passed in the base) and how many flipped ``worse`` and ``better``.

    A regression is a drop beyond ``threshold`` with an exact one-sided McNemar p at most ``alpha``. Where
    p cannot reach ``alpha`` even if every flippable case went pass -> fail (with alpha 0.05: 4 or fewer;
    or no case pairs; or ``alpha`` None), the drop alone decides. A rate that fell to 0 from at least
    COLLAPSE_FROM is a regression whatever the thresholds.
    """
    before, after = rates
    drop = None if before is None or after is None else before - after
    p_value = mcnemar_greater(worse, better)
    decidable = alpha is not None and paired > 0 and smallest_p(flippable) <= alpha
    note = ""
    if alpha is not None and not decidable:
        cases = f"n = {paired}: too few paired cases" if flippable == paired else \
            f"n = {paired}, {flippable} passing in the base: too few"
        note = f"{cases} for p ≤ {alpha:g}; judged on the drop"
    return Judgement(dropped=drop is not None and drop > threshold + 1e-12, p_value=p_value, decidable=decidable,
                     significant=not decidable or p_value <= alpha,  # type: ignore[operator]
                     collapsed=before is not None and before >= COLLAPSE_FROM and after == 0, note=note)


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
    """One test's pass rate under the base and the candidate model, over the cases both judged.

    Whether it regressed is :func:`judge`'s verdict (``alpha`` None: the drop alone decides).
    """

    test: str  # suite::test
    attribute: str
    base: dict[str, Any]
    candidate: dict[str, Any]
    threshold: float
    alpha: float | None = DEFAULT_ALPHA
    flips: list[Flip] = field(default_factory=list)
    paired: tuple[int, int, int] = (0, 0, 0)  # cases judged in both: their count, base passes, candidate passes
    unpaired: tuple[list[str], list[str]] = ([], [])  # case ids judged only by the base / only by the candidate

    @property
    def rates(self) -> tuple[float | None, float | None]:
        """Base and candidate pass rates over the paired cases (each run's own rate when none pair)."""
        count, base, candidate = self.paired
        if count:
            return base / count, candidate / count
        return self.base["pass_rate"], self.candidate["pass_rate"]

    @property
    def change(self) -> float | None:
        before, after = self.rates
        return None if before is None or after is None else after - before

    @cached_property
    def worse(self) -> int:
        return sum(f.regressed for f in self.flips)

    @property
    def better(self) -> int:
        return len(self.flips) - self.worse

    @cached_property
    def judgement(self) -> Judgement:
        return judge(self.rates, self.paired[0], self.paired[1], self.worse, self.better, self.threshold, self.alpha)

    @property
    def p_value(self) -> float:
        return self.judgement.p_value

    @property
    def regression(self) -> bool:
        return self.judgement.regression

    def criteria(self) -> str:
        """The criteria as numbers: ``drop 0.50 > max 0.05: yes; McNemar p 0.0312 <= 0.05: yes``, or where p
        cannot decide ``drop 1.00 > max 0.00: yes; n = 2: too few paired cases for p ≤ 0.05; judged on the drop``."""
        j = self.judgement
        drop = "n/a" if self.change is None else f"{0.0 - self.change:.2f}"  # 0.00, never -0.00
        yes = lambda ok: "yes" if ok else "no"  # noqa: E731
        if j.note or self.alpha is None:
            second = j.note or "judged on the drop"
        else:
            second = f"McNemar p {j.p_value:.3g} <= {self.alpha:g}: {yes(j.significant)}"
        text = f"drop {drop} > max {self.threshold:.2f}: {yes(j.dropped)}; {second}"
        if j.collapsed and not (j.dropped and j.significant):
            text += f"; fell to 0 from {self.rates[0]:.2f}: a collapse is always a regression"
        return text

    def row(self) -> list[str]:
        rate = lambda r: "n/a" if r is None else f"{r:.2f}"  # noqa: E731
        change = "n/a" if self.change is None else f"{self.change:+.2f}"
        only_base, only_candidate = self.unpaired
        base, candidate = self.rates
        return [self.test, self.attribute, rate(base), rate(candidate), change, str(self.paired[0]),
                f"{len(only_base)}/{len(only_candidate)}", str(self.worse), str(self.better),
                f"{self.p_value:.3g}", f"{self.threshold:.2f}", "REGRESSION" if self.regression else "",
                self.judgement.note]

    def explain(self, base: str, candidate: str) -> str:
        """Why this test counts as a regression, with the cases that flipped to failing."""
        before, after = self.rates
        lines = [f"{self.test} regressed against the baseline: pass rate {before:.2f} ({base}) -> "
                 f"{after:.2f} ({candidate}) over the {self.paired[0]} cases both judged; {self.criteria()}; "
                 f"{self.worse} case(s) passed -> failed, {self.better} failed -> passed"]
        lines += self.unpaired_lines()
        for flip in self.flips:
            if flip.regressed:
                lines.append(f"  case {flip.case_id}: d {flip.before['delta']:+.4g} -> {flip.after['delta']:+.4g}"
                             f"  {flip.pair_line()}")
        return "\n".join(lines)

    def unpaired_lines(self, shown: int = MAX_FLIPS_SHOWN) -> list[str]:
        """The cases judged by one run only (left out of the change), a few ids each."""
        lines = []
        for side, ids in zip(("the base", "the candidate"), self.unpaired):
            if ids:
                more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
                lines.append(f"  {len(ids)} case(s) judged by {side} only (not compared): "
                             f"{', '.join(ids[:shown])}{more}")
        return lines


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
    provenance: list[str] = field(default_factory=list)  # score-changing differences between the runs

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
                f"divergence: {self.divergence.text()}",
                *(f"REGRESSION {c.test}: {c.criteria()}" for c in self.regressions), verdict]

    def text(self) -> str:
        header = ["test", "attribute", "base", "cand", "change", "paired", "unpaired b/c", "pass->fail",
                  "fail->pass", "p (McNemar, one-sided)", "max drop", "", ""]
        alpha = self.changes[0].alpha if self.changes else DEFAULT_ALPHA
        rule = (f"a regression: a pass-rate drop beyond max drop over the cases both runs judged, with an exact "
                f"one-sided McNemar p <= {alpha:g} (judged on the drop where too few cases pair for that); or a "
                f"pass rate that fell to 0 from {COLLAPSE_FROM:g} or more" if alpha is not None else
                "a regression: a pass-rate drop beyond max drop over the cases both runs judged")
        lines = [f"base:      {self.base}", f"candidate: {self.candidate}", rule,
                 *(f"warning: {line}" for line in self.provenance), "",
                 *_table([header] + [c.row() for c in self.changes])]
        for change in self.changes:
            if change.unpaired[0] or change.unpaired[1] or (change.change or 0) < 0:  # a drop: both criteria
                lines += [f"{change.test}: {change.criteria()}", *change.unpaired_lines()]
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
    """The models of a run document in the order they were given (the first ``--rm`` first)."""
    given = [m.get("spec") for m in doc.get("models", []) if isinstance(m, dict)]
    found = list(dict.fromkeys(r["model"] for r in doc["results"]))
    return sorted(found, key=lambda m: given.index(m) if m in given else len(given))


def pick_model(doc: dict[str, Any], wanted: str | None, where: str) -> str:
    found = models_in(doc)
    if wanted is not None and wanted not in found:
        raise RmcheckError(f"no results for model {wanted!r}", where=where, fix=f"Its models are: {', '.join(found)}")
    if wanted is None and len(found) != 1:
        raise RmcheckError(f"holds {len(found)} models ({', '.join(found) or 'none'}); which one to compare?",
                           where=where, fix="Name them with --models BASE CANDIDATE")
    return wanted or found[0]


def compare_runs(paths: Sequence[str | Path], models: Sequence[str] | None = None,
                 thresholds: Thresholds | None = None, alpha: float | None = DEFAULT_ALPHA) -> Comparison:
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
    comparison = compare_results(_results(base_doc, base), _results(cand_doc, cand),
                                 f"{base} ({Path(base_path).name})", f"{cand} ({Path(cand_path).name})",
                                 thresholds or Thresholds(), alpha)
    comparison.provenance = differences(model_provenance(base_doc, base), model_provenance(cand_doc, cand))
    return comparison


def _results(doc: dict[str, Any], model: str) -> list[dict[str, Any]]:
    return [r for r in doc["results"] if r["model"] == model]


def _key(result: dict[str, Any]) -> str:
    return f"{result['suite']}::{result['test']}"


def compare_results(base: Iterable[dict[str, Any]], candidate: Iterable[dict[str, Any]], base_label: str,
                    candidate_label: str, thresholds: Thresholds, alpha: float | None = DEFAULT_ALPHA) -> Comparison:
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
              alpha: float | None = DEFAULT_ALPHA) -> TestChange:
    """The change of one test, over the cases both runs judged (applicable in both)."""
    attribute = attribute_of(candidate)
    before = {c["id"]: c for c in base.get("cases", []) if c["verdict"] in JUDGED}
    after = {c["id"]: c for c in candidate.get("cases", []) if c["verdict"] in JUDGED}
    both = [i for i in after if i in before]
    flips = [Flip(_key(candidate), i, before[i], after[i]) for i in both if before[i]["verdict"] != after[i]["verdict"]]
    paired = (len(both), sum(before[i]["verdict"] == "passed" for i in both),
              sum(after[i]["verdict"] == "passed" for i in both))
    unpaired = ([i for i in before if i not in after], [i for i in after if i not in before])
    return TestChange(_key(candidate), attribute, base, candidate, thresholds.of(attribute), alpha, flips,
                      paired, unpaired)


def _paired_deltas(base: dict[str, Any], candidate: dict[str, Any]) -> list[tuple[float, float]]:
    cases = {c["id"]: c for c in base.get("cases", []) if c["verdict"] in JUDGED and c.get("delta") is not None}
    return [(cases[c["id"]]["delta"], c["delta"]) for c in candidate.get("cases", [])
            if c["id"] in cases and c["verdict"] in JUDGED and c.get("delta") is not None]
