"""``code_transform``: meaning-preserving edits of fenced code (reWordBench, EMNLP 2025).

Renaming a local variable, re-indenting a block or swapping the quotes of a string literal
does not change what a program does; a reward model's preference between two code answers
should not change either. The edits understand Python- and C-like code (``#`` and ``//``
comments, single-line string literals) and touch nothing inside strings or comments.
"""
from __future__ import annotations

import keyword
import re
from typing import Iterator

from ..errors import OperatorError
from .base import Change, Hunk, OperatorContext
from .text import FENCE, Span

TRANSFORMS = ("rename", "whitespace", "quotes")
_LITERAL = re.compile(r"""(?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')|(?P<comment>(?:\#|//)[^\n]*)""")
_ASSIGNED = re.compile(r"^[ \t]*(?:(?:let|const|var|auto|int|float|double)[ \t]+)?([A-Za-z_]\w*)[ \t]*(?:[-+*/]?=)(?!=)"
                       r"|\bfor[ \t]+(?:\(?[ \t]*(?:let|const|var|int|auto)[ \t]+)?([A-Za-z_]\w*)[ \t]+(?:in|of)\b", re.M)
_INDENT = re.compile(r"^([ \t]+)(?=\S)", re.M)


def code_transform(text: str, ctx: OperatorContext, /, *, transform: str | None = None) -> list[Change] | None:
    """One variant per transform that applies (``transform`` picks one of rename, whitespace, quotes):

    - rename: a local variable (assigned in the code; chosen with the test's seed) gets a new
      name everywhere in its block, as one hunk;
    - whitespace: the block is re-indented (4 spaces become 2, anything else 4), as one hunk;
    - quotes: each single-line string literal without quotes or escapes inside swaps ``'`` and
      ``"``, one hunk per literal.

    Not applicable to text without fenced code, or where no transform finds anything to change.
    """
    if transform is not None and transform not in TRANSFORMS:
        raise OperatorError(f"operator 'code_transform': transform must be one of {', '.join(TRANSFORMS)}, "
                            f"not {transform!r}", fix="Write transform: rename, whitespace or quotes")
    bodies = list(code_bodies(text))
    changes = []
    for name in ([transform] if transform else TRANSFORMS):
        hunks = [h for start, end in bodies for h in _EDITS[name](text, start, end, ctx)]
        if hunks:
            changes.append(Change(text, tuple(hunks), f"code_transform: {name}"))
    return changes or None


def code_bodies(text: str) -> Iterator[Span]:
    """The code inside each fenced block (between its fence lines)."""
    for match in FENCE.finditer(text):
        start = text.index("\n", match.start()) + 1
        end = text.rindex("\n", 0, match.end()) + 1
        if end > start:
            yield start, end


def _masked(code: str) -> str:
    """``code`` with string literals and comments blanked out (offsets kept)."""
    return _LITERAL.sub(lambda m: " " * len(m.group()), code)


def _rename(text: str, start: int, end: int, ctx: OperatorContext) -> list[Hunk]:
    code = text[start:end]
    masked = _masked(code)
    names = sorted({n for m in _ASSIGNED.finditer(masked) for n in m.groups() if n and not keyword.iskeyword(n)})
    names = [n for n in names if not re.search(rf"\.\s*{n}\b|\(\s*{n}\s*=(?!=)|,\s*{n}\s*=(?!=)", masked)]
    if not names:
        return []
    old = ctx.rng.choice(names)
    taken = set(re.findall(r"\w+", code))
    new = next(f"{old}{i}" for i in range(2, 10_000) if f"{old}{i}" not in taken)
    spans = [m.span() for m in re.finditer(rf"(?<![\w.]){re.escape(old)}(?!\w)", masked)]
    first, last = spans[0][0], spans[-1][1]
    out, pos = [], first
    for s, e in spans:
        out.append(code[pos:s] + new)
        pos = e
    return [Hunk(start + first, start + last, "".join(out))]


def _reindent(text: str, start: int, end: int, ctx: OperatorContext) -> list[Hunk]:
    code = text[start:end]
    indents = [m.group(1) for m in _INDENT.finditer(code)]
    if not indents:
        return []
    unit = min((i for i in indents), key=len)
    width = 2 if unit == "    " else 4
    new = _INDENT.sub(lambda m: " " * width * (len(m.group(1).expandtabs(len(unit))) // len(unit)), code)
    return [Hunk(start, end, new)] if new != code else []


def _quotes(text: str, start: int, end: int, ctx: OperatorContext) -> list[Hunk]:
    hunks = []
    for m in _LITERAL.finditer(text, start, end):
        literal = m.group("string")
        if literal and "\\" not in literal and not set("'\"") & set(literal[1:-1]):
            other = "'" if literal[0] == '"' else '"'
            hunks.append(Hunk(m.start(), m.end(), other + literal[1:-1] + other))
    return hunks


_EDITS = {"rename": _rename, "whitespace": _reindent, "quotes": _quotes}
