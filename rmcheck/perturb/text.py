"""Span finders for operators: sentences, numbers, words and gaps, as exact offsets.

Every finder returns ``(start, end)`` spans into the text it was given, so an operator
can turn them into hunks without re-searching.
"""
from __future__ import annotations

import re
from typing import Iterable

Span = tuple[int, int]

ABBREVIATIONS = frozenset(
    {"e.g.", "i.e.", "etc.", "vs.", "cf.", "approx.", "mr.", "mrs.", "ms.", "dr.", "prof.",
     "st.", "jr.", "sr.", "no.", "fig.", "u.s."}
)
_OPENERS = "\"'“‘(["
_CLOSERS = "\"'”’)]"
_MARKER = r"[ \t]*(?:[-*+]|\d+[.)])"
LIST_MARKER = re.compile(rf"^{_MARKER}(?=[ \t])", re.M)
"""A markdown list-item marker (``-``, ``*``, ``+``, ``1.``, ``1)``) at the start of a line."""
MARKER_ONLY = re.compile(_MARKER)
_TOKEN = re.compile(r"\S+")
_TERMINAL = re.compile(rf"[.!?][{re.escape(_CLOSERS)}]*$")
_INITIALS = re.compile(r"(?:[A-Z]\.)+")
_NUMBER = re.compile(r"(?<![\w.,])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?!\w|[.,]\d)")
_SPACE_GAP = re.compile(r"(?<=\S) +(?=\S)")


def is_terminated(sentence: str) -> bool:
    """Whether ``sentence`` ends in ``.``, ``!`` or ``?`` (closing quotes and brackets allowed)."""
    return bool(_TERMINAL.search(sentence))


def _ends_sentence(token: str, first_on_line: bool) -> bool:
    if not is_terminated(token) or (first_on_line and MARKER_ONLY.fullmatch(token)):
        return False
    bare = token.rstrip(_CLOSERS).lstrip(_OPENERS)
    return bare.lower() not in ABBREVIATIONS and not _INITIALS.fullmatch(bare)


def sentence_spans(text: str) -> list[Span]:
    """The sentences of ``text``, without surrounding whitespace.

    A sentence ends at a token ending in ``.``, ``!`` or ``?`` that is not an abbreviation
    (``e.g.``), an initial (``J.``) or a list marker (``1.``), and at every line break.
    Decimals such as ``3.5`` never end one: no whitespace follows their dot.
    """
    tokens = list(_TOKEN.finditer(text))
    spans: list[Span] = []
    start: int | None = None
    for i, token in enumerate(tokens):
        first_on_line = i == 0 or "\n" in text[tokens[i - 1].end():token.start()]
        start = token.start() if start is None else start
        last = i + 1 == len(tokens)
        if last or "\n" in text[token.end():tokens[i + 1].start()] or _ends_sentence(token.group(), first_on_line):
            spans.append((start, token.end()))
            start = None
    return spans


def _outside(spans: Iterable[Span], excluded: list[Span]) -> list[Span]:
    return [s for s in spans if not any(a <= s[0] < b for a, b in excluded)]


def number_spans(text: str) -> list[Span]:
    """Integers and decimals (``7``, ``1,000``, ``3.5``, ``1969``), not list numbering.

    Numbers glued to letters (``mp3``, ``3rd``) or in dotted runs (``1.2.3``) are skipped.
    """
    markers = [m.span() for m in LIST_MARKER.finditer(text)]
    return _outside((m.span() for m in _NUMBER.finditer(text)), markers)


def word_spans(text: str, min_length: int = 1) -> list[Span]:
    """Words made of letters only (no digits, apostrophes or hyphens), ``min_length`` or longer."""
    pattern = rf"(?<![\w'’-])[^\W\d_]{{{min_length},}}(?![\w'’-])"
    return [m.span() for m in re.finditer(pattern, text)]


def space_gaps(text: str) -> list[Span]:
    """Runs of spaces between two non-space characters."""
    return [m.span() for m in _SPACE_GAP.finditer(text)]


def follows_list_marker(text: str, pos: int) -> bool:
    """Whether everything on the line before ``pos`` is a list marker (``- ``, ``1. ``)."""
    line_start = text.rfind("\n", 0, pos) + 1
    return MARKER_ONLY.fullmatch(text, line_start, pos) is not None


def whole_word_pattern(words: Iterable[str]) -> re.Pattern[str]:
    """A case-sensitive pattern matching any of ``words`` as a whole word, longest first."""
    alternatives = sorted({w for w in words if w}, key=len, reverse=True)
    return re.compile(rf"(?<!\w)(?:{'|'.join(map(re.escape, alternatives))})(?!\w)")
