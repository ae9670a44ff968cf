"""Solutions in steps, as cases hold them: ``steps: [...]`` instead of ``response``, and ProcessBench's ``label``."""
from __future__ import annotations

import re
from typing import Any, Sequence

from ..errors import SuiteError

#: How a solution's steps join into one response (what a scalar RM reads); a response splits back at it.
SEPARATOR = "\n\n"
_BLANK_LINES = re.compile(r"\n\s*\n")


def join_steps(steps: Sequence[str]) -> str:
    return SEPARATOR.join(steps)


def split_steps(response: str) -> tuple[str, ...]:
    """A response's steps: its paragraphs (separated by a blank line)."""
    return tuple(response.split(SEPARATOR))


def one_paragraph(step: str) -> str:
    """A step's blank lines made single line breaks (a blank line separates steps)."""
    return _BLANK_LINES.sub("\n", step.strip())


def checked_steps(raw: Any, case_id: str, source: str) -> tuple[str, ...]:
    """A case's ``steps``: a non-empty list of non-empty texts, each one paragraph."""
    fix = "Write steps: [first step, second step, ...], each step one paragraph of text"
    if not isinstance(raw, list) or not raw or not all(isinstance(s, str) for s in raw):
        raise SuiteError(f"case {case_id!r}: steps must be a non-empty list of texts", where=source, fix=fix)
    for index, step in enumerate(raw):
        if not step.strip():
            raise SuiteError(f"case {case_id!r}: step {index} is empty", where=source, fix=fix)
        if _BLANK_LINES.search(step.strip()):
            raise SuiteError(f"case {case_id!r}: step {index} holds a blank line, which separates steps",
                             where=source, fix="Split it into two steps, or use single line breaks inside a step")
    return tuple(s.strip() for s in raw)


def checked_label(raw: Any, steps: Sequence[str], case_id: str, source: str) -> int | None:
    """ProcessBench's ``label``: the index of the first wrong step (from 0), or -1 when every step is right."""
    if raw is None:
        return None
    if not steps:
        raise SuiteError(f"case {case_id!r}: label applies to a case with steps", where=source,
                         fix="Give steps: [...] instead of response, or remove label")
    if isinstance(raw, bool) or not isinstance(raw, int) or not -1 <= raw < len(steps):
        raise SuiteError(f"case {case_id!r}: label {raw!r} is not -1 or the index of one of its {len(steps)} steps",
                         where=source, fix=f"Write label: -1 (no wrong step) or 0 to {len(steps) - 1} (the first wrong "
                                           "step, counted from 0)")
    return raw
