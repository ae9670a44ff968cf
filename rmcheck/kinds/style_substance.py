"""``kind: style_substance``: does the model prefer the correct response whatever the styles? (RM-Bench)

Every item holds a chosen and a rejected response in several styles, least elaborate first
(RM-Bench: concise, detailed, detailed_markdown). Each of the 3 x 3 pairings, chosen in style i
against rejected in style j, is one ``prefers_chosen`` check (score(chosen) > score(rejected)).
The pairings fall into three groups:

- normal: the diagonal (the same style on both sides);
- hard: the upper triangle (i < j), the chosen response less elaborate than the rejected one,
  so style pulls against substance;
- easy: the lower triangle (i > j), style and substance agree.

The test passes when each group's accuracy reaches its ``min_accuracy`` (default 0.5 for every
group: better than a coin flip, so style never beats substance on average).

It also reports RM-Bench's overall figure the way its leaderboard averages: each domain's score is
the mean of its easy, normal and hard accuracies (so the mean over all nine pairings), domains are
the cases' ``subset`` up to the first ``-`` (``safety-refuse`` and ``safety-response`` count as
``safety``; the rm-bench reader takes it from the item's ``domain`` or the file name), and the
overall figure is the mean over the domains present.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ..backends.base import OVERALL, Pair
from ..suite.datasets import RM_BENCH_STYLES
from ..errors import BackendError, SuiteError
from .registry import ParseContext, TestKind, kind_schema
from ..results import CaseResult, TestResult

if TYPE_CHECKING:
    from ..engine import Engine, Outcomes, Request
    from ..suite.loader import Case

KIND = "style_substance"
GROUPS = ("easy", "normal", "hard")
DEFAULT_MIN_ACCURACY = 0.5
RULE = "score(chosen in style i) > score(rejected in style j) over all style pairings"


@dataclass(frozen=True)
class StyleSubstanceSpec:
    """A parsed ``kind: style_substance`` test."""

    name: str
    line: int
    styles: tuple[str, ...]
    min_accuracy: tuple[tuple[str, float], ...]  # (group, minimum) for easy, normal, hard
    attribute: str = "style-vs-substance"
    objective: str | None = None
    description: str = ""
    kind: str = KIND


def group_of(chosen: int, rejected: int) -> str:
    """The RM-Bench group of a pairing by style index (0 = least elaborate)."""
    return "normal" if chosen == rejected else "hard" if chosen < rejected else "easy"


_ACCURACY = {"type": "number", "minimum": 0, "maximum": 1}
SCHEMA = kind_schema(
    KIND,
    "RM-Bench's style-versus-substance check: prefers_chosen over every pairing of a chosen style with "
    "a rejected style, reported as easy / normal / hard accuracy.",
    {
        "styles": {"description": "The styles compared, least elaborate first (default RM-Bench's concise, detailed, "
                                  "detailed_markdown).",
                   "type": "array", "items": {"type": "string"}, "minItems": 2},
        "min_accuracy": {"description": "The least accuracy that passes: one number for every group, or "
                                        "{easy, normal, hard} (default 0.5 each).",
                         "oneOf": [_ACCURACY, {"type": "object", "additionalProperties": False,
                                               "properties": dict.fromkeys(GROUPS, _ACCURACY)}]},
        "objective": {"description": "Assert on this named head of a multi-objective RM.", "type": "string"},
    },
    attribute="Free-form tag used in reports (default style-vs-substance).")


def parse(raw: Mapping[str, Any], context: ParseContext) -> StyleSubstanceSpec:
    styles = tuple(str(s) for s in raw.get("styles", RM_BENCH_STYLES))
    if len(set(styles)) != len(styles) or len(styles) < 2:
        raise SuiteError(f"styles must name at least two different styles, got {list(styles)}",
                         where=context.where("styles"), fix="List the styles from least to most elaborate")
    given = raw.get("min_accuracy", DEFAULT_MIN_ACCURACY)
    minimum = {g: float(given.get(g, DEFAULT_MIN_ACCURACY)) if isinstance(given, Mapping) else float(given)
               for g in GROUPS}
    return StyleSubstanceSpec(
        name=raw["name"], line=context.line, styles=styles,
        min_accuracy=tuple(minimum.items()), attribute=raw.get("attribute", "style-vs-substance"),
        objective=raw.get("objective"), description=raw.get("description", ""),
    )


def items(cases: Sequence["Case"], styles: Sequence[str]) -> tuple[dict[str, dict[str, "Case"]], list[CaseResult]]:
    """Pair cases grouped into items ``{item: {style: case}}`` that have every style, and the rest as not applicable."""
    grouped: dict[str, dict[str, Case]] = {}
    for case in cases:
        if case.is_pair and case.style in styles:
            grouped.setdefault(case.item, {})[case.style] = case
    complete = {item: found for item, found in grouped.items() if len(found) == len(styles)}
    skipped = [CaseResult(case.id, "not_applicable", source=case.source,
                          reason=f"{KIND} needs pair cases in every style of {list(styles)} under one id")
               for case in cases if case.item not in complete]
    return complete, skipped


def evaluate(engine: "Engine", spec: str, requests: Sequence["Request"]) -> "Outcomes":
    planned = {r.key: items(r.suite.cases, r.test.styles) for r in requests}
    needed = [Pair(case.prompt, text) for found, _ in planned.values() for item in found.values()
              for case in item.values() for _, text in case.responses]
    scores = engine.score(spec, needed)
    out: Outcomes = {}
    for request in requests:
        test, (found, skipped) = request.test, planned[request.key]
        objective = test.objective or OVERALL
        if found and objective not in next(iter(scores.values())):
            out[request.key] = BackendError(f"model {spec} has no objective {test.objective!r}",
                                            where=request.suite.where(test), fix="Name one of the model's objectives")
            continue
        value = lambda case, role: scores[Pair(case.prompt, case.text(role))][objective]  # noqa: E731
        out[request.key] = judge(request, spec, found, skipped, value)
    return out


def judge(request: "Request", spec: str, found: Mapping[str, Mapping[str, "Case"]], skipped: list[CaseResult],
          value: Callable[["Case", str], float]) -> TestResult:
    """Group accuracies, the style matrix and the worst hard pairing of one test."""
    test = request.test
    styles, minimum = test.styles, dict(test.min_accuracy)
    n = len(styles)
    wins = [[0] * n for _ in range(n)]
    by_domain: dict[str, list[int]] = {}  # domain -> [pairings won, pairings]
    worst: tuple[float, str, int, int] | None = None
    for item, by_style in found.items():
        tally = by_domain.setdefault(domain_of(by_style[styles[0]].subset), [0, 0])
        for i, chosen_style in enumerate(styles):
            for j, rejected_style in enumerate(styles):
                margin = value(by_style[chosen_style], "chosen") - value(by_style[rejected_style], "rejected")
                wins[i][j] += margin > 0
                tally[0] += margin > 0
                tally[1] += 1
                if i < j and (worst is None or margin < worst[0]):
                    worst = (margin, item, i, j)
    total = len(found)
    cells = {g: [(i, j) for i in range(n) for j in range(n) if group_of(i, j) == g] for g in GROUPS}
    accuracy = {g: sum(wins[i][j] for i, j in cells[g]) / (total * len(cells[g])) if total else None for g in GROUPS}
    result = TestResult(
        suite=request.suite.name, suite_file=request.suite.file, line=test.line, test=test.name, model=spec,
        attribute=test.attribute, expect=KIND, rule=RULE, objective=test.objective, tolerance="0", threshold=0.0,
        min_pass_rate=1.0,
    )
    for group in GROUPS:
        acc = accuracy[group]
        if acc is None:
            continue
        pairs = total * len(cells[group])
        verdict = "passed" if acc >= minimum[group] else "failed"
        result.cases.append(CaseResult(group, verdict, acc - minimum[group], source=request.suite.where(test),
                                       reason=f"accuracy {acc:.3f} of {pairs} pairings (min {minimum[group]:g})"))
    result.cases.extend(skipped)
    domains = {name: won / pairings for name, (won, pairings) in sorted(by_domain.items())}
    result.details = {
        "styles": list(styles), "items": total, "accuracy": accuracy, "min_accuracy": minimum,
        "domains": domains, "overall": sum(domains.values()) / len(domains) if domains else None,
        "matrix": [[wins[i][j] / total if total else None for j in range(n)] for i in range(n)],
        "worst_hard": None if worst is None else {
            "item": worst[1], "chosen_style": styles[worst[2]], "rejected_style": styles[worst[3]],
            "margin": worst[0]},
    }
    result.explanation = explain(result, found, value)
    return result


def explain(result: TestResult, found: Mapping[str, Mapping[str, "Case"]],
            value: Callable[["Case", str], float]) -> str:
    """The failure text: group accuracies, the style matrix, and the hard pairing lost by the widest margin."""
    d = result.details
    styles = d["styles"]
    width = max(len(s) for s in styles)
    lines = [f"{result.suite}::{result.test} against {result.model} "
             f"{'failed' if result.outcome == 'failed' else result.outcome}  ({result.suite_file}:{result.line})",
             f"  {KIND}: accuracy of {RULE}; {d['items']} items",
             "  " + "   ".join(f"{g} {_rate(d['accuracy'][g])} (min {d['min_accuracy'][g]:g})" for g in GROUPS),
             f"  RM-Bench overall {_rate(d['overall'])} (mean over domains: "
             + ", ".join(f"{name} {_rate(acc)}" for name, acc in d["domains"].items()) + ")",
             "  chosen style (row) against rejected style (column); hard = above the diagonal:",
             "    " + " " * width + "  " + "  ".join(s.rjust(width) for s in styles)]
    for style, row in zip(styles, d["matrix"]):
        lines.append(f"    {style.ljust(width)}  " + "  ".join(_rate(v).rjust(width) for v in row))
    worst = d["worst_hard"]
    if worst is not None and worst["margin"] <= 0:
        item = found[worst["item"]]
        chosen, rejected = item[worst["chosen_style"]], item[worst["rejected_style"]]
        lines += ["", f"  widest hard loss: item {worst['item']}  ({chosen.source})",
                  f"    chosen ({worst['chosen_style']}, score {value(chosen, 'chosen'):.4g}):",
                  _indent(chosen.text("chosen")),
                  f"    rejected ({worst['rejected_style']}, score {value(rejected, 'rejected'):.4g}):",
                  _indent(rejected.text("rejected"))]
    return "\n".join(lines)


def domain_of(subset: str) -> str:
    """RM-Bench's leaderboard domain of a case's subset: ``safety-refuse`` -> ``safety``; none -> ``all``."""
    return subset.split("-", 1)[0] if subset else "all"


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _indent(text: str, limit: int = 400) -> str:
    short = text if len(text) <= limit else text[: limit - 1] + "…"
    return "\n".join("      " + line for line in short.splitlines())


TEST_KIND = TestKind(KIND, parse, evaluate, SCHEMA)
