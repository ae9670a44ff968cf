"""Span finders for operators: sentences, numbers, words and gaps, as exact offsets.

Every finder returns ``(start, end)`` spans into the text it was given, so an operator
can turn them into hunks without re-searching.
"""
from __future__ import annotations

import re
from typing import Iterable

from sentencex import get_sentence_boundaries

Span = tuple[int, int]

ABBREVIATIONS = frozenset(
    {"e.g.", "i.e.", "etc.", "vs.", "cf.", "approx.", "mr.", "mrs.", "ms.", "dr.", "prof.",
     "st.", "jr.", "sr.", "no.", "fig.", "u.s.", "jan.", "feb.", "mar.", "apr.", "jun.", "jul.", "aug.",
     "sep.", "sept.", "oct.", "nov.", "dec.", "a.m.", "p.m.", "inc.", "ltd.", "co.", "dept.", "est.",
     "vol.", "ch.", "sec.", "p.", "pp.", "ed.", "al.", "mt.", "ft.", "lb.", "lbs.", "oz."}
)
"""Abbreviations that end a sentence only before a capital letter (see :func:`sentence_spans`)."""
TITLES = frozenset({"mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "mt.", "gen.", "sen.", "rep.", "gov."})
"""Abbreviations that never end a sentence (a name follows them)."""
_OPENERS = "\"'“‘(["
_CLOSERS = "\"'”’)]"
_MARKER = r"[ \t]*(?:[-*+]|\d+[.)])"
LIST_MARKER = re.compile(rf"^{_MARKER}(?=[ \t])", re.M)
"""A markdown list-item marker (``-``, ``*``, ``+``, ``1.``, ``1)``) at the start of a line."""
MARKER_ONLY = re.compile(_MARKER)
FENCE = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n.*?^[ \t]*\1[ \t]*$", re.M | re.S)
"""A fenced code block, from its opening fence line to its closing fence (both included)."""
_TOKEN = re.compile(r"\S+")
_TERMINAL = re.compile(rf"[.!?][{re.escape(_CLOSERS)}]*$")
_INITIALS = re.compile(r"(?:[A-Z]\.)+")
_NUMBER = re.compile(r"(?<![\w.,])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?!\w|[.,]\d)")
_SPACE_GAP = re.compile(r"(?<=\S) +(?=\S)")
LANGUAGE = "en"


def is_terminated(sentence: str) -> bool:
    """Whether ``sentence`` ends in ``.``, ``!`` or ``?`` (closing quotes and brackets allowed)."""
    return bool(_TERMINAL.search(sentence))


def code_block_spans(text: str) -> list[Span]:
    """Fenced code blocks (```` ``` ```` or ``~~~``), each from its opening to its closing fence."""
    return [m.span() for m in FENCE.finditer(text)]


def sentence_spans(text: str) -> list[Span]:
    """The sentences of ``text``, without surrounding whitespace.

    Prose is split by sentencex (Wikimedia's rule-based segmenter: abbreviations, decimals,
    URLs, ellipses and quotes in ~300 languages), line by line: a line break always ends a
    sentence, so list items and markdown lines stay whole. Three corrections on top: a break
    after a title (``Ms.``) is undone; a break after one of :data:`ABBREVIATIONS` or initials
    (``U.S.``) is undone unless the next word starts with a capital (a single initial, ``J.``,
    even then); and a bare list marker (``1.``) never stands alone. A
    fenced code block is one span of its own, never split.
    """
    spans: list[Span] = []
    pos = 0
    for start, end in [*code_block_spans(text), (len(text), len(text))]:
        for line in re.finditer(r"[^\n]+", text[pos:start]):
            spans.extend((pos + line.start() + a, pos + line.start() + b) for a, b in _line_sentences(line.group()))
        if end > start:
            spans.append((start + len(text[start:end]) - len(text[start:end].lstrip()), end))
        pos = end
    return spans


def _line_sentences(line: str) -> list[Span]:
    return [span for start, end in _segmented(line) for span in _split_missed(line, start, end)]


def _segmented(line: str) -> list[Span]:
    pieces: list[Span] = []
    for bound in get_sentence_boundaries(LANGUAGE, line):
        piece = line[bound["start_index"]:bound["end_index"]]
        if not piece.strip():
            continue
        start = bound["start_index"] + len(piece) - len(piece.lstrip())
        end = bound["start_index"] + len(piece.rstrip())
        if pieces and _continues(line[pieces[-1][0]:pieces[-1][1]], line[start:end], first=len(pieces) == 1):
            pieces[-1] = (pieces[-1][0], end)
        else:
            pieces.append((start, end))
    return pieces


def _split_missed(line: str, start: int, end: int) -> list[Span]:
    """``line[start:end]`` cut after every token that plainly ends a sentence (terminal punctuation, not
    an abbreviation, title or initial) before a word that does not start in lower case: the segmenter
    keeps "E.g.. 1,000." together, which a deletion between the two can produce."""
    tokens = list(_TOKEN.finditer(line, start, end))
    spans, begin = [], start
    for token, following in zip(tokens, tokens[1:]):
        bare = token.group().rstrip(_CLOSERS).lstrip(_OPENERS)
        plain_end = is_terminated(token.group()) and bare.lower() not in ABBREVIATIONS | TITLES \
            and not _INITIALS.fullmatch(bare) and not (token.start() == begin and MARKER_ONLY.fullmatch(bare))
        if plain_end and not following.group().lstrip(_OPENERS)[:1].islower():
            spans.append((begin, token.end()))
            begin = following.start()
    return spans + [(begin, end)]


def _continues(before: str, after: str, *, first: bool) -> bool:
    """Whether the segmenter's break between ``before`` and ``after`` falls inside one sentence."""
    if first and MARKER_ONLY.fullmatch(before.strip()):
        return True  # "1." opening a list item
    words = before.split()
    bare = words[-1].rstrip(_CLOSERS).lstrip(_OPENERS) if words else ""
    if bare.lower() in TITLES:
        return True
    if not bare.endswith(".") or not (bare.lower() in ABBREVIATIONS or _INITIALS.fullmatch(bare)):
        return False
    if not after.lstrip(_OPENERS)[:1].isupper():
        return True
    return len(bare) == 2 and bare[0].isupper()  # "J. R. Tolkien": a single initial before a capital


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
