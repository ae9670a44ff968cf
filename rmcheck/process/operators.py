"""Step operators: edits of a solution's steps (its paragraphs: steps are joined by a blank line).

Each takes ``at: K | first | last | random`` (K counts from 0, as ProcessBench's labels do) and returns one
:class:`~rmcheck.perturb.base.Change` of the joined steps, or None when the step it names cannot be edited that way
(not applicable). ``random`` picks, with the test's seed, among the steps the operator can edit.
"""
from __future__ import annotations

import ast
import operator as op
import random
import re
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Callable, Sequence

from ..errors import OperatorError
from ..perturb.base import Change, Hunk, OperatorContext, operator
from ..perturb.builtin import corrupt_number
from ..perturb.text import Span, number_spans, whole_word_pattern
from .cases import SEPARATOR

At = int | str
#: The operators that edit a solution's steps (the others edit text, inside one step with ``step: K``).
STEP_OPERATORS = ("corrupt_step", "drop_step", "swap_steps", "duplicate_step", "miracle_step")
AT_WORDS = ("first", "last", "random")
#: A stated fact a step may flip when it states no number: each word and its opposite.
OPPOSITES = {"more": "less", "greater": "smaller", "larger": "smaller", "increase": "decrease",
             "increases": "decreases", "increased": "decreased", "even": "odd", "positive": "negative",
             "before": "after", "true": "false", "above": "below", "maximum": "minimum", "add": "subtract",
             "earns": "loses", "gains": "loses", "faster": "slower", "older": "younger", "longer": "shorter"}
_FLIPS = {**OPPOSITES, **{b: a for a, b in OPPOSITES.items()}}
_FACT = whole_word_pattern(_FLIPS)
_BETWEEN = re.compile(r"[\s$()+\-*/×÷·x]*")  # what may stand between the numbers of a calculation
_OPERATORS = {ast.Add: op.add, ast.Sub: op.sub, ast.Mult: op.mul, ast.Div: op.truediv}


def step_spans(text: str) -> list[Span]:
    """Where each step of ``text`` (its parts between blank-line separators) starts and ends."""
    spans, start = [], 0
    for step in text.split(SEPARATOR):
        spans.append((start, start + len(step)))
        start += len(step) + len(SEPARATOR)
    return spans


def pick(name: str, at: At, count: int, editable: Callable[[int], bool], ctx: OperatorContext) -> int | None:
    """The step ``at`` names among ``count`` steps, or None when that step cannot be edited (or none can)."""
    if isinstance(at, bool) or not (isinstance(at, int) and at >= 0 or at in AT_WORDS):
        raise OperatorError(f"operator {name!r}: at must be a step index from 0, first, last or random, not {at!r}",
                            fix="Write e.g. at: 2 or at: random")
    if at == "random":
        choices = [k for k in range(count) if editable(k)]
        return ctx.rng.choice(choices) if choices else None
    index = {"first": 0, "last": count - 1}.get(at, at)  # type: ignore[arg-type]
    return index if isinstance(index, int) and 0 <= index < count and editable(index) else None


def fault(step: str) -> Span | None:
    """The detail of a step to make wrong: the result of its last calculation, else its last number, else its last
    stated fact (a word with an opposite); None when the step has none."""
    numbers = number_spans(step)
    results = [s for s in numbers if step[:s[0]].rstrip(" $")[-1:] == "="]
    found = (results or numbers)[-1:] or [m.span() for m in _FACT.finditer(step)][-1:]
    return found[0] if found else None


def wrong(detail: str, rng: random.Random) -> str:
    """A number changed to another of its shape, or a word to its opposite."""
    if detail[:1].isdigit():
        return corrupt_number(detail, rng)
    other = _FLIPS[detail.lower()]
    return other.capitalize() if detail[0].isupper() else other


def _steps(text: str) -> tuple[list[str], list[Span]]:
    spans = step_spans(text)
    return [text[s:e] for s, e in spans], spans


@operator()
def corrupt_step(text: str, ctx: OperatorContext, /, *, at: At = "random") -> Change | None:
    """Make step ``at`` wrong: change the result of its calculation (else a number it states, else a stated fact
    to its opposite). One hunk."""
    steps, spans = _steps(text)
    k = pick("corrupt_step", at, len(steps), lambda i: fault(steps[i]) is not None, ctx)
    if k is None:
        return None
    start, end = fault(steps[k])  # type: ignore[misc]
    offset = spans[k][0]
    return Change(text, (Hunk(offset + start, offset + end, wrong(steps[k][start:end], ctx.rng)),), f"step {k}")


@operator()
def drop_step(text: str, ctx: OperatorContext, /, *, at: At = "random") -> Change | None:
    """Leave step ``at`` out (with its separator). Not applicable to a one-step solution."""
    steps, spans = _steps(text)
    k = pick("drop_step", at, len(steps), lambda i: len(steps) > 1, ctx)
    if k is None:
        return None
    start, end = (spans[k][0], spans[k + 1][0]) if k + 1 < len(steps) else (spans[k - 1][1], spans[k][1])
    return Change(text, (Hunk(start, end, ""),), f"step {k}")


@operator()
def swap_steps(text: str, ctx: OperatorContext, /, *, at: At = "random") -> Change | None:
    """Swap step ``at`` with the next one (``last`` swaps the last two); the two hunks are one edit."""
    steps, spans = _steps(text)
    k = pick("swap_steps", at, len(steps) - 1, lambda i: steps[i] != steps[i + 1], ctx)
    if k is None:
        return None
    tie = f"swap_steps:{k}"
    return Change(text, (Hunk(*spans[k], steps[k + 1], tie), Hunk(*spans[k + 1], steps[k], tie)), f"steps {k}, {k + 1}")


@operator()
def duplicate_step(text: str, ctx: OperatorContext, /, *, at: At = "random") -> Change | None:
    """Repeat step ``at`` right after itself."""
    steps, spans = _steps(text)
    k = pick("duplicate_step", at, len(steps), lambda i: bool(steps[i].strip()), ctx)
    if k is None:
        return None
    return Change(text, (Hunk(spans[k][1], spans[k][1], SEPARATOR + steps[k]),), f"step {k}")


@operator()
def miracle_step(text: str, ctx: OperatorContext, /, *, at: At = "random") -> Change | None:
    """Make step ``at`` (not the last) wrong and carry its wrong value through the later steps' calculations, but
    keep the last step, so the final answer is right after a wrong step. The hunks are one edit."""
    steps, spans = _steps(text)
    k = pick("miracle_step", at, len(steps) - 1, lambda i: fault(steps[i]) is not None, ctx)
    if k is None:
        return None
    start, end = fault(steps[k])  # type: ignore[misc]
    made = wrong(steps[k][start:end], ctx.rng)
    hunks = [Hunk(spans[k][0] + start, spans[k][0] + end, made, "miracle_step")]
    changed = {_value(steps[k][start:end]): _value(made)}
    for j in range(k + 1, len(steps) - 1):
        hunks += [Hunk(spans[j][0] + s, spans[j][0] + e, new, "miracle_step") for (s, e), new in
                  carried(steps[j], changed)]
    return Change(text, tuple(hunks), f"step {k}")


def carried(step: str, changed: dict[Decimal | None, Decimal | None]) -> list[tuple[Span, str]]:
    """Edits that carry wrong values (``changed``: right -> wrong, extended as results change) through ``step``:
    each number that had a changed value takes the wrong one, and a calculation whose operands changed gets the
    result they now give."""
    numbers = number_spans(step)
    values = [_value(step[s:e]) for s, e in numbers]
    edits: dict[int, str] = {i: _shown(changed[v]) for i, v in enumerate(values) if v in changed and changed[v] is not None}
    for first, last, result in _calculations(step, numbers):
        operands = [(numbers[i], edits.get(i, step[slice(*numbers[i])])) for i in range(first, last)]
        start, end = numbers[first][0], numbers[last - 1][1]
        before, now = _evaluate(step, start, end, []), _evaluate(step, start, end, operands)
        if before is None or now is None or now == before:
            continue
        floored = before != values[result] and before.to_integral_value(ROUND_FLOOR) == values[result]
        if before == values[result] or floored:  # a right calculation (or one rounded down) stays one
            changed[values[result]] = now.to_integral_value(ROUND_FLOOR) if floored else now
            edits[result] = _shown(changed[values[result]])
    return [(numbers[i], new) for i, new in sorted(edits.items()) if new != step[slice(*numbers[i])]]


def _calculations(step: str, numbers: Sequence[Span]) -> list[tuple[int, int, int]]:
    """Each calculation ``a op b ... = c``: the index range of its operands' numbers and the index of its result."""
    found = []
    for result in range(1, len(numbers)):
        gap = step[numbers[result - 1][1]:numbers[result][0]]
        if not re.fullmatch(r"[\s)]*=\s*\$?", gap):
            continue
        first = result - 1
        while first > 0 and _BETWEEN.fullmatch(step[numbers[first - 1][1]:numbers[first][0]]):
            first -= 1
        found.append((first, result, result))
    return found


def _evaluate(step: str, start: int, end: int, operands: Sequence[tuple[Span, str]]) -> Decimal | None:
    """The value of ``step[start:end]`` (an arithmetic expression) with ``operands`` replaced; None if it is none."""
    pieces, pos = [], start
    for (s, e), new in operands:
        pieces += [step[pos:s], new]
        pos = e
    pieces.append(step[pos:end])
    source = "".join(pieces).replace(",", "").replace("$", "").replace("×", "*").replace("÷", "/").replace("·", "*")
    source = re.sub(r"(?<=[\d)])\s*x\s*(?=[\d(])", "*", source)
    try:
        return _arith(ast.parse(source, mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError, InvalidOperation, KeyError, RecursionError):
        return None


def _arith(node: ast.AST) -> Decimal:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return Decimal(str(node.value))
    if isinstance(node, ast.BinOp):
        return _OPERATORS[type(node.op)](_arith(node.left), _arith(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_arith(node.operand)
    raise ValueError("not arithmetic")


def _value(number: str) -> Decimal | None:
    try:
        return Decimal(number.replace(",", ""))
    except InvalidOperation:
        return None  # a fact word, not a number


def _shown(value: Decimal | None) -> str:
    if value is None:
        return ""
    rounded = value.quantize(Decimal("0.01")).normalize() if value != value.to_integral_value() else value
    return f"{rounded.normalize():f}"
