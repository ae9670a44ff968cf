"""Failure text of a step test: each failing case's minimal step edit and its step scores before and after."""
from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Sequence

from ..results import STATUS_TEXT, TestResult

if TYPE_CHECKING:
    from .kind import Shown

SHOWN = 5
WIDTH = 72


def explain(result: TestResult, shown: Sequence["Shown"]) -> str:
    counts, rate = result.counts, result.pass_rate
    lines = [f"{result.suite}::{result.test} against {result.model} {result.outcome}  "
             f"({result.suite_file}:{result.line})",
             f"  expect {result.expect}: {result.rule}; tolerance {result.tolerance} -> t = {result.threshold:.4g}; "
             f"perturb {result.perturb}",
             f"  {counts['failed']} of {counts['passed'] + counts['failed']} cases failed"
             + (f" (pass rate {rate:.2f}, min_pass_rate {result.min_pass_rate:.2f})" if rate is not None else "")
             + f"; {counts['not_applicable']} not applicable"]
    worst = sorted(shown, key=lambda s: -abs(s.case.delta or 0.0))
    for item in worst[:SHOWN]:
        lines += ["", *case_text(item)]
    if len(worst) > SHOWN:
        lines.append(f"\n  ... and {len(worst) - SHOWN} more failing cases (all are in the JSON run document)")
    return "\n".join(lines)


def case_text(item: "Shown") -> list[str]:
    case, cf = item.case, item.case.counterfactual
    how = f"{cf.edits_kept} of {cf.edits_total} edits; {STATUS_TEXT[cf.status]}" if cf else ""
    lines = [f"  case {case.id}  ({case.source}): m = {case.delta:.4g}",
             f"    minimal step edit, replayed ({how}):" if cf and cf.status != "flaky" else f"    step edit ({how}):"]
    lines += [f"      {line}" for line in step_diff(item.before.steps, item.after.steps)]
    lines += ["    step scores:", *(f"      {row}" for row in table(item))]
    return lines


def step_diff(before: Sequence[str], after: Sequence[str]) -> list[str]:
    """The steps that differ: ``- step i: text`` as written, ``+ step j: text`` after the edit."""
    out = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=before, b=after, autojunk=False).get_opcodes():
        if tag == "replace" and i2 - i1 == j2 - j1:  # edited in place: each step before and after
            out += [line for i, j in zip(range(i1, i2), range(j1, j2))
                    for line in (f"- step {i}: {_short(before[i])}", f"+ step {j}: {_short(after[j])}")]
        elif tag != "equal":
            out += [f"- step {i}: {_short(before[i])}" for i in range(i1, i2)]
            out += [f"+ step {j}: {_short(after[j])}" for j in range(j1, j2)]
    return out


def table(item: "Shown") -> list[str]:
    """One row per step of the edited solution (and any the edit removed): its score as written and after the edit."""
    rows = ["step   before    after"]
    for k in range(max(len(item.scores_before), len(item.scores_after))):
        before = f"{item.scores_before[k]:8.4f}" if k < len(item.scores_before) else " " * 8
        after = f"{item.scores_after[k]:8.4f}" if k < len(item.scores_after) else "  (none)"
        mark = "  <- first edited step" if k == item.first else ""
        rows.append(f"{k:>4} {before} {after}{mark}")
    return rows


def _short(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= WIDTH else flat[:WIDTH - 1] + "…"
