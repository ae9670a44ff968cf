"""Human-readable failure text: the minimal counterfactual as a word diff, with scores."""
from __future__ import annotations

import difflib
import re
import textwrap
from typing import Iterator

from ..perturb.base import in_prompt
from ..results import STATUS_TEXT, CaseResult, Counterfactual, TestResult

_TOKENS = re.compile(r"\s+|[^\s]+")
MAX_SHOWN = 3


def diff_chunks(before: str, after: str) -> Iterator[tuple[str, str]]:
    """``after`` against ``before`` word by word, as ``("equal" | "removed" | "added", text)`` chunks."""
    a, b = _TOKENS.findall(before), _TOKENS.findall(after)
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            yield "equal", "".join(a[i1:i2])
            continue
        if i2 > i1:
            yield "removed", "".join(a[i1:i2])
        if j2 > j1:
            yield "added", "".join(b[j1:j2])


def word_diff(before: str, after: str) -> str:
    """``after`` against ``before`` word by word: ``[-removed-]`` and ``{+added+}``."""
    marks = {"equal": "{}", "removed": "[-{}-]", "added": "{{+{}+}}"}
    return "".join(marks[kind].format(text if kind == "equal" else shown(text))
                   for kind, text in diff_chunks(before, after))


def shown(edit: str) -> str:
    """An edit that is only white space, made visible (``·`` for a space, ``⏎`` for a line break)."""
    return edit.replace(" ", "·").replace("\n", "⏎") if edit.isspace() else edit


def _visible(text: str) -> str:
    return text.replace("\n", "⏎\n")


def _block(label: str, text: str, indent: str = "    ") -> list[str]:
    body = textwrap.indent(_visible(text), indent + "  ")
    return [f"{indent}{label}:", body]


def failure_text(result: TestResult, max_shown: int = MAX_SHOWN) -> str:
    """The pytest failure report of one test: verdict line, then the worst cases explained."""
    if result.explanation is not None:
        return result.explanation
    counts = result.counts
    rate = result.pass_rate
    head = [
        f"{result.suite}::{result.test} against {result.model} failed  ({result.suite_file}:{result.line})",
        f"  expect {result.expect}: {result.rule}; tolerance {result.tolerance} -> t = {result.threshold:.4g}"
        + (f"; objective {result.objective}" if result.objective else ""),
        f"  {counts['failed']} of {counts['passed'] + counts['failed']} cases failed "
        f"(pass rate {rate:.2f} < min_pass_rate {result.min_pass_rate:.2f}); "
        f"{counts['not_applicable']} not applicable",
    ]
    failing = sorted(result.failures, key=lambda c: -abs(c.delta or 0.0))
    lines = head
    for case in failing[:max_shown]:
        lines.append("")
        lines.extend(case_text(case))
    if len(failing) > max_shown:
        lines.append(f"\n  ... and {len(failing) - max_shown} more failing cases (all are in the --rmcheck-json document)")
    return "\n".join(lines)


def case_text(case: CaseResult) -> list[str]:
    at = "" if case.dose is None else f", {'failed' if case.verdict == 'failed' else 'held'} at dose {case.dose}"
    lines = [f"  case {case.id}  ({case.source}{at})"]
    cf = case.counterfactual
    if cf is None:
        lines.append(f"    d = {case.delta:+.4g}")
        return lines
    lines.extend(_block("prompt", cf.prompt_text))
    if cf.status == "as_written":
        for side in cf.sides:
            lines.extend(_block(f"{side.role} (score {side.scores['original']:.4g})", side.original))
        lines.append(f"    d = {cf.deltas['original']:+.4g}")
        return lines
    main = cf.sides[0]
    lines.extend(_block(f"minimal counterfactual of the {main.role} "
                        f"({cf.edits_kept} of {cf.edits_total} edits; {STATUS_TEXT[cf.status]})",
                        word_diff(main.original, main.minimal)))
    scored = "the response under the prompt" if in_prompt(main.role) else main.role
    lines.append(f"    score({scored}): original {main.scores['original']:.4g} -> minimal "
                 f"{main.scores['minimal']:.4g} (full perturbation {main.scores['perturbed']:.4g})")
    for other in cf.sides[1:]:
        changed = other.minimal != other.original
        if in_prompt(other.role):  # the prompt is shown above: only its minimal diff here (its scores are the response's)
            lines.extend(_block(f"{other.role} (minimal)", word_diff(other.original, other.minimal)) if changed else [])
            continue
        text = word_diff(other.original, other.minimal) if changed else other.original
        lines.extend(_block(f"{other.role}{' (minimal)' if changed else ' (unchanged)'}", text))
        lines.append(f"    score({other.role}): original {other.scores['original']:.4g} -> minimal "
                     f"{other.scores['minimal']:.4g}")
    lines.append(f"    d: original {cf.deltas['original']:+.4g}, minimal {cf.deltas['minimal']:+.4g}, "
                 f"full perturbation {cf.deltas['perturbed']:+.4g}")
    return lines


def one_line(case: CaseResult, width: int = 90) -> str:
    """The worst case's minimal pair squeezed onto ``width`` characters, for summary tables: the diff is
    shortened, never the ``d=`` value."""
    cf = case.counterfactual
    if cf is None:
        return _fit(f"{case.id}: {case.reason}", "", width) if case.reason else f"{case.id}: d={case.delta:+.3g}"
    if cf.status == "as_written":
        scores = ", ".join(f"{side.role} {side.scores['original']:.3g}" for side in cf.sides)
        return _fit(f"{case.id}: {scores}", f" (d={cf.deltas['original']:+.3g})", width)
    diff = " ".join(only_changes(word_diff(cf.sides[0].original, cf.sides[0].minimal)).split())
    at = "" if case.dose is None else f" at dose {case.dose}"
    return _fit(f"{case.id}{at}: {diff}", f" (d={cf.deltas['minimal']:+.3g})", width)


def _fit(text: str, keep: str, width: int) -> str:
    """``text + keep`` in ``width`` characters, cutting ``text`` (with an ellipsis), never ``keep``."""
    room = width - len(keep)
    return (text if len(text) <= room else text[: max(room - 1, 0)] + "…") + keep


def only_changes(diff: str) -> str:
    """Keep the edits of a word diff with a couple of words of context around each."""
    parts = re.split(r"(\[-.*?-\]|\{\+.*?\+\})", diff, flags=re.S)
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(part)
            continue
        words = part.split()
        if len(words) > 4:
            lead = words[:2] if i else []
            tail = words[-2:] if i < len(parts) - 1 else []
            part = " ".join(lead + ["…"] + tail)
        out.append(part)
    return " ".join(out)
