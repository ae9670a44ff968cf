"""The sentence segmenter never lets an edit land inside a sentence.

Texts are built from sentences whose boundaries are known by construction, with the
tokens a naive splitter breaks at in the middle: abbreviations (``Jan.``, ``p.m.``,
``e.g.``), titles and initials (``Dr. Smith``, ``J. R. Tolkien``), decimals, URLs, list
items and fenced code blocks. ``sentence_spans`` must find exactly those sentences, and
every operator that splits sentences must put its edits only between them.
"""
from __future__ import annotations

import random

from hypothesis import given, settings, strategies as st

from rmcheck.perturb import OperatorContext, run_operator
from rmcheck.perturb.text import sentence_spans

WORDS = ("the", "plan", "works", "well", "for", "most", "people", "and", "it", "costs", "little", "time")
STARTS = ("We", "They", "Our team", "The report", "Everyone", "Results")
#: Tokens that must not end a sentence where they stand (each is followed by more words).
TRICKY = ("on Jan. 3", "at 5 p.m. sharp", "e.g. salt", "i.e. water", "with Dr. Smith", "by J. R. Tolkien",
          "about 3.14 units", "at https://example.com/a.b?c=d now", "via www.site.org/x.html today",
          "approx. 20 km", "for Ms. Jones", "in the U.S. market", "etc. as well", "from Fig. 3 here",
          "for $3.50 each", "by Prof. Li", "at St. Mary's", "vs. the rest", "on Oct. 12 again")
ENDS = (".", "!", "?")
CODE = "```python\nx = 1.5  # e.g. a value. Fine\nprint(x)\n```"
SPLITTERS = (("pad_with_filler", {"n": 3}), ("truncate_sentences", {"keep": 1}), ("markdown_list", {}))


@st.composite
def sentence(draw: st.DrawFn) -> str:
    middle = draw(st.lists(st.sampled_from(WORDS + TRICKY), min_size=1, max_size=4))
    return " ".join([draw(st.sampled_from(STARTS)), *middle, draw(st.sampled_from(WORDS))]) + draw(st.sampled_from(ENDS))


@st.composite
def document(draw: st.DrawFn) -> tuple[str, list[tuple[int, int]]]:
    """A text and its sentences' spans: paragraphs of prose, list items and code blocks."""
    text, spans = "", []
    for block in draw(st.lists(st.sampled_from(("prose", "list", "code")), min_size=1, max_size=4)):
        text += "\n\n" if text else ""
        if block == "code":
            spans.append((len(text), len(text) + len(CODE)))
            text += CODE
            continue
        items = draw(st.lists(sentence(), min_size=1, max_size=4))
        for number, item in enumerate(items, start=1):
            if block == "list":
                text += ("\n" if number > 1 else "")
                item = f"{number}. {item}"
            elif number > 1:
                text += " "
            spans.append((len(text), len(text) + len(item)))
            text += item
    return text, spans


def inside(position: int, spans: list[tuple[int, int]]) -> bool:
    return any(start < position < end for start, end in spans)


@settings(max_examples=150, deadline=None)
@given(document())
def test_segmenter_finds_the_written_sentences(doc: tuple[str, list[tuple[int, int]]]) -> None:
    text, spans = doc
    assert sentence_spans(text) == spans, [text[s:e] for s, e in sentence_spans(text)]


@settings(max_examples=100, deadline=None)
@given(document(), st.sampled_from(SPLITTERS), st.integers(0, 2**16))
def test_no_edit_lands_inside_a_sentence(doc: tuple[str, list[tuple[int, int]]], splitter: tuple[str, dict],
                                         seed: int) -> None:
    text, spans = doc
    name, args = splitter
    for change in run_operator(name, text, OperatorContext(rng=random.Random(seed)), args):
        for hunk in change.hunks:
            assert not inside(hunk.start, spans) and not inside(hunk.end, spans), (name, text, hunk)


def test_the_regression_from_the_issue() -> None:
    """The old regex split at "Jan." and padded filler into the middle of a date."""
    text = "We met on Jan. 3, e.g. at 5 p.m. with Dr. Smith. It went well."
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "We met on Jan. 3, e.g. at 5 p.m. with Dr. Smith.", "It went well."]
