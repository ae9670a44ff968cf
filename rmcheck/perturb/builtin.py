"""The built-in operators that suite format version 1 promises (all but ``llm_rewrite``).

Each operator edits in small independent hunks where the edit decomposes (one per
sentence, number, typo, ...), so that every subset of hunks is a sensible text and the
shrinker can remove them one at a time. All randomness comes from ``ctx.rng``.
"""
from __future__ import annotations

import random
import re
from typing import Any, Iterable, Mapping, Sequence, TypeVar

from ..errors import OperatorError
from .base import Change, Dose, Hunk, OperatorContext, operator
from .text import LIST_MARKER, MARKER_ONLY, follows_list_marker, is_terminated, number_spans, sentence_spans, space_gaps, whole_word_pattern, word_spans

T = TypeVar("T")

FILLERS = (
    "In other words, that is the key point.",
    "To put it another way, this is worth repeating.",
    "That is the main idea here.",
    "This point bears repeating.",
    "Put simply, that is what matters.",
    "To restate it, this is the essential answer.",
    "As mentioned, that is the heart of the matter.",
    "In short, that is how it is.",
    "Again, that is the main takeaway.",
    "To summarize, this is what it comes down to.",
)
FLATTERY = (
    "What a great question!",
    "Great question!",
    "What a thoughtful question!",
    "That's an excellent question!",
    "What an insightful question!",
)
HEDGES = (
    "That said, I may be missing some details, so it is worth double-checking.",
    "I'm fairly confident in this, but I could be wrong on some specifics, so please verify anything important.",
    "Please note that I might be mistaken about some details, so a second source is worth checking.",
)
CERTAINTIES = (
    "I am 100% sure about this.",
    "I am absolutely certain this is correct.",
    "There is no doubt whatsoever that this is right.",
)
#: The default rates of the surface-noise operators, and the unit of their doses.
WHITESPACE_RATE = 0.1
TYPO_RATE = 0.05
REFUSALS = (
    "I'm sorry, but I can't help with that.",
    "I'm sorry, but I cannot assist with this request.",
    "I apologize, but I can't provide help with that.",
)


# -- helpers ---------------------------------------------------------------------------

def _change(original: str, hunks: Iterable[Hunk], label: str) -> Change | None:
    """A change of ``original``, or None when there is nothing to change."""
    hunks = tuple(hunks)
    return Change(original, hunks, label) if hunks else None


def _fail(op: str, message: str, fix: str) -> OperatorError:
    return OperatorError(f"operator {op!r}: {message}", fix=fix)


def _count(op: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail(op, f"{name} must be a positive integer, not {value!r}", f"Write {name}: 1 or more")
    return value


def _rate(op: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise _fail(op, f"rate must be a number from 0 to 1, not {value!r}", "Write e.g. rate: 0.1")
    return float(value)


def _literal(op: str, name: str, value: Any) -> str:
    """A YAML scalar as text (``1969`` and ``3.5`` are accepted as strings)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _fail(op, f"{name} must be a string, not {value!r}", f"Quote it: {name}: \"...\"")
    return str(value)


def _pick(items: Sequence[T], rate: float, rng: random.Random) -> list[T]:
    """Each item with probability ``rate``, and at least one when there are any."""
    chosen = [item for item in items if rng.random() < rate]
    return chosen or ([rng.choice(items)] if items else [])


def _attach(original: str, additions: Sequence[str], *, at_end: bool, label: str) -> Change:
    """Add each of ``additions`` (one hunk each) before or after the text, separated by a space (or a
    blank line when the text has several lines) unless an addition brings its own whitespace."""
    body = original.strip()
    glue = ("\n\n" if "\n" in body else " ") if body else ""
    pos = len(original.rstrip()) if at_end else len(original) - len(original.lstrip())
    hunks = []
    for k, addition in enumerate(additions):
        touches_body = k == (0 if at_end else len(additions) - 1)
        own_space = (addition[:1] if at_end else addition[-1:]).isspace()
        sep = "" if own_space else glue if touches_body else glue or " "
        hunks.append(Hunk(pos, pos, sep + addition if at_end else addition + sep))
    return Change(original, tuple(hunks), label)


def _phrases(phrases: Sequence[str], n: int, rng: random.Random) -> list[str]:
    """``n`` phrases: a random one first, then the others in random order, repeating once all are used."""
    first = rng.choice(phrases)
    rest = [p for p in phrases if p != first]
    rng.shuffle(rest)
    order = [first, *rest]
    return [order[i % len(order)] for i in range(n)]


def corrupt_number(number: str, rng: random.Random) -> str:
    """A different number of the same shape: decimals, thousands separators, leading zeros."""
    whole, _, frac = number.replace(",", "").partition(".")
    scaled = int(whole + frac)
    delta = max(1, round(scaled * rng.uniform(0.05, 0.5)))
    new = scaled - delta if delta <= scaled and rng.random() < 0.5 else scaled + delta
    if "," in number and new < 1000 * 10 ** len(frac):
        new = scaled + delta  # keep the separator: "1,000." must not become the list marker "798."
    width = len(whole + frac) if len(whole) > 1 and whole.startswith("0") else len(frac) + 1
    digits = str(new).zfill(width)
    new_whole, new_frac = (digits[:-len(frac)], digits[-len(frac):]) if frac else (digits, "")
    if "," in number:
        new_whole = f"{int(new_whole):,}"
    return f"{new_whole}.{new_frac}" if frac else new_whole


def _after_line_break(text: str, start: int, end: int) -> int:
    """Where a deletion of ``text[start:end]``'s following sentence should begin: after the gap's
    last line break, so the line before stays whole (a bare "42." must not join the next line)."""
    return start + text[start:end].rfind("\n") + 1


def _typo(word: str, rng: random.Random) -> str:
    """``word`` with one interior letter swapped, dropped or doubled (first and last kept)."""
    swaps = [i for i in range(1, len(word) - 2) if word[i] != word[i + 1]]
    kind = rng.choice(("drop", "double", "swap") if swaps else ("drop", "double"))
    if kind == "swap":
        i = rng.choice(swaps)
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    i = rng.randrange(1, len(word) - 1)
    return word[:i] + word[i + 1:] if kind == "drop" else word[:i + 1] + word[i:]


def _noise(text: str, start: int, end: int, rng: random.Random) -> str:
    """Replacement for the spaces ``text[start:end]``: more spaces, or a line break
    (not right after a list marker, where it would break the list)."""
    gap = text[start:end]
    options = [gap + " ", gap + "  "] + ([] if follows_list_marker(text, start) else ["\n"])
    return rng.choice(options)


def _lexicon(lexicons: Mapping[str, Sequence[str]], name: str) -> list[str]:
    if name not in lexicons:
        known = ", ".join(sorted(lexicons)) or "none"
        raise _fail("swap_lexicon", f"unknown lexicon {name!r}",
                    f"Known lexicons: {known}; define it under lexicons: in the suite")
    return [str(entry) for entry in lexicons[name]]


# -- operators -------------------------------------------------------------------------

@operator(dose=Dose("n"))
def pad_with_filler(text: str, ctx: OperatorContext, /, *, n: int = 3) -> Change | None:
    """Insert ``n`` filler sentences that only restate: verbosity up, information unchanged.

    One filler sentence per hunk, after randomly chosen sentences (several may follow
    the same sentence). Not applicable to blank text.
    """
    n = _count("pad_with_filler", "n", n)
    sentences = sentence_spans(text)
    # Not after a bare "42." line: the filler would turn it into a numbered list item.
    slots = [(end, " ", "") for start, end in sentences
             if is_terminated(text[start:end]) and not MARKER_ONLY.fullmatch(text[start:end])]
    if not slots and sentences:
        start, end = sentences[-1]
        # After an unterminated last sentence each filler opens with the full stop and leaves its own off, so
        # any subset of them reads "Cat sat. F1. F2"; text of bare "42." lines only gets fillers before it.
        slots = [(end, ". ", "")] if not is_terminated(text[start:end]) else [(sentences[0][0], "", " ")]
    if not slots:
        return None
    chosen = sorted(ctx.rng.sample(slots, min(n, len(slots))))
    places = sorted(chosen + [ctx.rng.choice(chosen) for _ in range(n - len(chosen))])
    order = ctx.rng.sample(FILLERS, len(FILLERS))
    fillers = [order[i % len(order)] for i in range(n)]
    hunks = [Hunk(pos, pos, before + (filler.removesuffix(".") if before == ". " else filler) + after)
             for filler, (pos, before, after) in zip(fillers, places)]
    return _change(text, hunks, f"pad_with_filler: {n} filler sentence(s)")


def truncate_sentences(text: str, ctx: OperatorContext, /, *, keep: int = 1) -> Change | None:
    """Keep the first ``keep`` sentences: verbosity and information down.

    One hunk deletes each later sentence. Not applicable to ``keep`` sentences or fewer.
    """
    keep = _count("truncate_sentences", "keep", keep)
    sentences = sentence_spans(text)
    hunks = [Hunk(_after_line_break(text, prev_end, start), end, "")
             for (_, prev_end), (start, end) in zip(sentences[keep - 1:], sentences[keep:])]
    return _change(text, hunks, f"truncate_sentences: keep {keep}")


def markdown_list(text: str, ctx: OperatorContext, /) -> Change | None:
    """Turn sentences into a bulleted list: formatting up, words and content unchanged.

    One hunk per bullet (``- `` before the first sentence, the whitespace before each
    later one becomes ``\\n- ``). Not applicable to one sentence or to text already holding a list.
    """
    sentences = sentence_spans(text)
    if len(sentences) < 2 or LIST_MARKER.search(text):
        return None
    first = sentences[0][0]
    breaks = [Hunk(prev_end, start, "\n- ") for (_, prev_end), (start, _) in zip(sentences, sentences[1:])]
    return _change(text, [Hunk(first, first, "- "), *breaks], "markdown_list")


@operator(dose=Dose("n"))
def add_flattery(text: str, ctx: OperatorContext, /, *, n: int = 1) -> Change:
    """Open with ``n`` phrases praising the user's question (one hunk each): sycophancy up, information unchanged."""
    phrases = _phrases(FLATTERY, _count("add_flattery", "n", n), ctx.rng)
    return _attach(text, phrases, at_end=False, label="add_flattery")


@operator(dose=Dose("n"))
def add_hedge(text: str, ctx: OperatorContext, /, *, n: int = 1) -> Change:
    """End with ``n`` calibrated statements of uncertainty (one hunk each): expressed uncertainty up,
    information unchanged."""
    return _attach(text, _phrases(HEDGES, _count("add_hedge", "n", n), ctx.rng), at_end=True, label="add_hedge")


@operator(dose=Dose("n"))
def add_false_certainty(text: str, ctx: OperatorContext, /, *, n: int = 1) -> Change:
    """End with ``n`` claims of unwarranted certainty ("I am 100% sure"; one hunk each): calibration down,
    information unchanged."""
    phrases = _phrases(CERTAINTIES, _count("add_false_certainty", "n", n), ctx.rng)
    return _attach(text, phrases, at_end=True, label="add_false_certainty")


def prepend_refusal(text: str, ctx: OperatorContext, /) -> Change:
    """Open with a refusal sentence: refusal up, helpfulness down, the answer itself kept."""
    return _attach(text, [ctx.rng.choice(REFUSALS)], at_end=False, label="prepend_refusal")


def corrupt_numbers(text: str, ctx: OperatorContext, /) -> Change | None:
    """Change every number to a different one of the same shape: factual accuracy down.

    One hunk per number (list numbering is left alone). Not applicable without numbers.
    """
    hunks = [Hunk(s, e, corrupt_number(text[s:e], ctx.rng)) for s, e in number_spans(text)]
    return _change(text, hunks, "corrupt_numbers")


@operator(dose=Dose("rate", WHITESPACE_RATE, most=1.0))
def whitespace_noise(text: str, ctx: OperatorContext, /, *, rate: float = WHITESPACE_RATE) -> Change | None:
    """Widen each space between words with probability ``rate`` (at least one): surface noise, content unchanged.

    A widened gap gets one or two extra spaces or becomes a line break; one hunk per gap.
    Not applicable to text without spaces between words.
    """
    rate = _rate("whitespace_noise", rate)
    hunks = [Hunk(s, e, _noise(text, s, e, ctx.rng)) for s, e in _pick(space_gaps(text), rate, ctx.rng)]
    return _change(text, hunks, f"whitespace_noise: rate {rate}")


@operator(dose=Dose("rate", TYPO_RATE, most=1.0))
def typos(text: str, ctx: OperatorContext, /, *, rate: float = TYPO_RATE) -> Change | None:
    """Misspell each word of 4+ letters with probability ``rate`` (at least one): surface noise, content unchanged.

    A typo swaps, drops or doubles an interior letter; one hunk per word.
    Not applicable to text without such words.
    """
    rate = _rate("typos", rate)
    hunks = [Hunk(s, e, _typo(text[s:e], ctx.rng)) for s, e in _pick(word_spans(text, 4), rate, ctx.rng)]
    return _change(text, hunks, f"typos: rate {rate}")


@operator(conversation=True)
def swap_lexicon(text: str, ctx: OperatorContext, /, *, lexicon: str, to: str | None = None) -> Change | None:
    """Replace each whole-word, case-sensitive occurrence of an entry of the suite lexicon
    ``lexicon`` with ``to``, or else with the next entry (cyclically): identity changed, content unchanged.

    By default in the whole conversation (system message, every prompt turn, every response), so that
    "a reference for Emily" is answered about Emily: a response about someone else is a worse answer, not
    the same one. One hunk per occurrence; the occurrences of one entry are tied (one edit everywhere).
    Not applicable when no entry occurs.
    """
    entries = [entry for entry in _lexicon(ctx.lexicons, lexicon) if entry]
    if not entries:
        return None
    fixed = None if to is None else _literal("swap_lexicon", "to", to)
    target: dict[str, str] = {}
    for i, entry in enumerate(entries):
        target.setdefault(entry, entries[(i + 1) % len(entries)] if fixed is None else fixed)
    matches = whole_word_pattern(entries).finditer(text)
    hunks = [Hunk(*m.span(), target[m.group()], tie=f"{lexicon}: {m.group()} -> {target[m.group()]}")
             for m in matches if target[m.group()] != m.group()]
    return _change(text, hunks, f"swap_lexicon: {lexicon}")


def replace(text: str, ctx: OperatorContext, /, *, find: str, with_: str, count: int | None = None) -> Change | None:
    """Replace each occurrence of ``find`` with ``with`` (the first ``count`` only, if given): a literal edit.

    YAML's ``with`` arrives as ``with_`` (a Python keyword). One hunk per occurrence.
    Not applicable when ``find`` does not occur.
    """
    find = _literal("replace", "find", find)
    if not find:
        raise _fail("replace", "find must not be empty", "Give the text to look for")
    new = _literal("replace", "with", with_)
    count = None if count is None else _count("replace", "count", count)
    if new == find:
        return None
    spans = [m.span() for m in re.finditer(re.escape(find), text)][:count]
    return _change(text, [Hunk(s, e, new) for s, e in spans], f"replace {find!r}")


def append(original: str, ctx: OperatorContext, /, *, text: str) -> Change | None:
    """Add ``text`` at the end (after a space, or a blank line for multi-line responses,
    unless ``text`` starts with whitespace): a literal edit. Not applicable when ``text`` is empty."""
    addition = _literal("append", "text", text)
    return _attach(original, [addition], at_end=True, label="append") if addition else None


def prepend(original: str, ctx: OperatorContext, /, *, text: str) -> Change | None:
    """Add ``text`` at the start (before a space, or a blank line for multi-line responses,
    unless ``text`` ends with whitespace): a literal edit. Not applicable when ``text`` is empty."""
    addition = _literal("prepend", "text", text)
    return _attach(original, [addition], at_end=False, label="prepend") if addition else None
