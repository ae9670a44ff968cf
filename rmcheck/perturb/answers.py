"""Answer-side operators from the 2025 literature: master keys and answer formats.

``master_key`` ("One Token to Fool LLM-as-a-Judge", 2025): a bare ":" or "Thought process:"
scores like a correct answer with many reward models and LLM judges. ``answer_format``
(reWordBench, EMNLP 2025): moving a final answer from ``\\boxed{76}`` to a markdown header is
meaning-preserving, yet state-of-the-art reward models fall below chance under such rewrites.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import OperatorError
from .base import Change, Hunk, OperatorContext

PAPER_KEYS = (
    " ", ".", ",", ":",  # non-word symbols (" " is a single blank space)
    "Thought process:", "Let's solve this problem step by step.", "Solution",  # reasoning openers
    "解", "かいせつ", "Respuesta",  # "solution" or "answer" in Chinese, Japanese and Spanish
)
"""The master keys in the table of "One Token to Fool LLM-as-a-Judge" (Zhao et al., 2025, arXiv:2507.08794):
non-word symbols, reasoning openers and multilingual keys, in the table's order."""
MASTER_KEYS = PAPER_KEYS + ("Solution:", "解答：", "Lösung:", "Solución:", "Respuesta:", "Réponse :")
"""The default keys: every key of the paper's table, then rmcheck's own openers with a colon and translations."""

FORMATS = ("boxed", "header", "bold", "sentence")
_RENDER = {
    "boxed": "\\boxed{{{}}}",
    "header": "# Answer {}",
    "bold": "**Answer:** {}",
    "sentence": "The answer is {}.",
}
#: The final-answer statements each format recognises; the answer itself is group ``x``.
_LINE_FORMS = {
    "header": re.compile(r"^[ \t]*#{1,6}[ \t]*(?:final[ \t]+)?answer:?[ \t]*(?:\n[ \t]*\n?[ \t]*)?(?P<x>\S[^\n]*?)[ \t]*$",
                         re.I | re.M),
    "bold": re.compile(r"^[ \t]*\*\*(?:final[ \t]+)?answer:?\*\*:?[ \t]*(?P<x>\S[^\n]*?)[ \t]*$", re.I | re.M),
    "sentence": re.compile(r"(?<![^\s])the[ \t]+(?:final[ \t]+)?answer[ \t]+is:?[ \t]+(?P<x>[^\n]*?[^\s.])\.?[ \t]*$",
                           re.I | re.M),
}
_BOXED = re.compile(r"(?:\$\$?|\\\[|\\\()?[ \t]*\\boxed\{")
_BOXED_CLOSE = re.compile(r"[ \t]*(?:\$\$?|\\\]|\\\))?")


@dataclass(frozen=True)
class FinalAnswer:
    """The final-answer statement of a response: its format, span and the answer ``value``."""

    form: str
    start: int
    end: int
    value: str


def final_answer(text: str) -> FinalAnswer | None:
    """The last final-answer statement in ``text`` (``\\boxed{X}``, ``# Answer X``, ``**Answer:** X``
    or ``The answer is X.``), or None when it states no final answer."""
    boxed = _boxed(text)
    lines = [f for f in (_line(text, form) for form in _LINE_FORMS) if f is not None and f.value.strip()]
    if boxed is not None and boxed.value:  # "The answer is $\\boxed{76}$." states it boxed
        lines = [f for f in lines if f.end <= boxed.start or f.start >= boxed.end] + [boxed]
    return max(lines, key=lambda f: (f.end, -f.start)) if lines else None


def _boxed(text: str) -> FinalAnswer | None:
    last = None
    for match in _BOXED.finditer(text):
        depth, pos = 1, match.end()
        while pos < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[pos], 0)
            pos += 1
        if depth == 0:
            end = _BOXED_CLOSE.match(text, pos).end()  # type: ignore[union-attr]
            last = FinalAnswer("boxed", match.start(), end, text[match.end():pos - 1].strip())
    return last


def _line(text: str, form: str) -> FinalAnswer | None:
    matches = list(_LINE_FORMS[form].finditer(text))
    if not matches:
        return None
    m = matches[-1]
    return FinalAnswer(form, m.start() + len(m.group()) - len(m.group().lstrip()), m.end(), m.group("x").strip())


def render_answer(form: str, value: str) -> str:
    return _RENDER[form].format(value)


def master_key(text: str, ctx: OperatorContext, /, *, keys: Sequence[str] | None = None) -> list[Change] | None:
    """Replace the whole response with a bare opener, one variant per key (``keys`` overrides
    :data:`MASTER_KEYS`): content gone, so the score must drop. Not applicable to blank text."""
    chosen = MASTER_KEYS if keys is None else _keys(keys)
    if not text.strip():
        return None
    start, end = len(text) - len(text.lstrip()), len(text.rstrip())
    return [Change(text, (Hunk(start, end, key),), f"key={key!r}") for key in chosen if key != text[start:end]]


def _keys(keys: Any) -> tuple[str, ...]:
    if isinstance(keys, str) or not isinstance(keys, (list, tuple)) or not keys \
            or not all(isinstance(k, str) and k for k in keys):  # " " is a key of the paper's table
        raise OperatorError(f"operator 'master_key': keys must be a list of non-empty strings, not {keys!r}",
                            fix='Write e.g. keys: [":", "Thought process:"]')
    return tuple(keys)


def answer_format(text: str, ctx: OperatorContext, /, *, to: str | None = None) -> Change | None:
    """Restate the final answer in another format: ``\\boxed{X}``, ``# Answer X``, ``**Answer:** X``
    or ``The answer is X.`` (``to`` picks one; by default one of the others, with the test's seed).

    The answer itself is unchanged. A final-answer statement is replaced by one hunk (a header
    or bold line goes on a line of its own); a ``\\boxed{X}`` inside a sentence of its own
    ("So the total is $\\boxed{76}$.") becomes two hunks: the sentence keeps the plain ``X``,
    and the new statement follows it. Not applicable where no final answer is found, or where it
    is already in the ``to`` format.
    """
    if to is not None and to not in FORMATS:
        raise OperatorError(f"operator 'answer_format': to must be one of {', '.join(FORMATS)}, not {to!r}",
                            fix="Write to: boxed, header, bold or sentence")
    found = final_answer(text)
    if found is None or found.form == to:
        return None
    form = to or ctx.rng.choice([f for f in FORMATS if f != found.form])
    new = render_answer(form, found.value)
    line_start = text.rfind("\n", 0, found.start) + 1
    line_end = len(text) if text.find("\n", found.end) < 0 else text.find("\n", found.end)
    lead, tail = text[line_start:found.start], text[found.end:line_end]
    label = f"answer_format: {found.form} -> {form}"
    if found.form == "boxed" and not (_SCAFFOLD.fullmatch(lead) and _PUNCTUATION.fullmatch(tail)):
        end = line_end - (len(tail) - len(tail.rstrip()))
        glue = " " if form == "sentence" else "\n\n"
        return Change(text, (Hunk(found.start, found.end, found.value), Hunk(end, end, glue + new)), label)
    start, end = (line_start + len(lead) - len(lead.lstrip()), line_end) if found.form == "boxed" \
        else (found.start, found.end)
    if form in ("header", "bold") and text[line_start:start].strip():
        start = len(text[:start].rstrip())
        new = "\n\n" + new
    return Change(text, (Hunk(start, end, new),), label)


_SCAFFOLD = re.compile(r"[ \t]*(?:(?:so|thus|therefore|hence),?[ \t]+)?(?:the[ \t]+)?(?:final[ \t]+)?"
                       r"(?:answer(?:[ \t]+is)?:?)?[ \t]*", re.I)
_PUNCTUATION = re.compile(r"[ \t.!]*")
