"""Planted process models for ``suites/process-steps.rmcheck.yaml`` (``python:tests.process_prms:NAME``).

``careful`` checks every step as a grader would: each calculation ``a op b = c`` must be right (``/`` exact or
rounded down) on numbers the problem or an earlier step gave, and ``The answer is N`` must restate the last
result. It reads only the steps up to the one it scores. Each other model is ``careful`` with one flaw:

- ``final_only`` scores only the final answer: every earlier step gets the same middling score;
- ``peeking`` lets later steps change earlier scores: each step's score is scaled by the share of right steps in
  the whole solution.
"""
from __future__ import annotations

import re
from fractions import Fraction

GOOD, BAD, UNKNOWN = 0.95, 0.05, 0.5
NUMBER = r"(\d+(?:\.\d+)?)"
CALCULATION = re.compile(rf"{NUMBER}\s*([-+*/])\s*{NUMBER}\s*=\s*{NUMBER}")
ANSWER = re.compile(rf"answer is {NUMBER}")
rmcheck_fingerprint = "process-prms-1"
rmcheck_fingerprint_files: list[str] = []


def _right(a: Fraction, op: str, b: Fraction, c: Fraction) -> bool:
    if op == "/":
        return b != 0 and (a / b == c or a // b == c)
    return {"+": a + b, "-": a - b, "*": a * b}[op] == c


def checked(prompt: str, steps: list[str]) -> list[bool]:
    """Whether each step is right, reading the problem and the steps before it only."""
    known = {Fraction(n) for n in re.findall(NUMBER, prompt)}
    last: Fraction | None = None
    verdicts = []
    for step in steps:
        ok = True
        for a, op, b, c in CALCULATION.findall(step):
            a_, b_, c_ = Fraction(a), Fraction(b), Fraction(c)
            ok = ok and a_ in known and b_ in known and _right(a_, op, b_, c_)
            known.add(c_)
            last = c_
        for answer in ANSWER.findall(step):
            ok = ok and last is not None and Fraction(answer) == last
        verdicts.append(ok)
    return verdicts


def careful(prompts: list[str], steps: list[list[str]]) -> list[list[float]]:
    """No flaw: each step scored by its own check."""
    return [[GOOD if ok else BAD for ok in checked(p, s)] for p, s in zip(prompts, steps)]


def final_only(prompts: list[str], steps: list[list[str]]) -> list[list[float]]:
    """Flaw: only the final answer is checked; every other step gets the same score."""
    return [[UNKNOWN] * (len(s) - 1) + [GOOD if checked(p, s)[-1] else BAD] for p, s in zip(prompts, steps)]


def peeking(prompts: list[str], steps: list[list[str]]) -> list[list[float]]:
    """Flaw: not causal; every step's score is scaled by the share of right steps in the whole solution."""
    out = []
    for p, s in zip(prompts, steps):
        verdicts = checked(p, s)
        share = sum(verdicts) / len(verdicts)
        out.append([(GOOD if ok else BAD) * share for ok in verdicts])
    return out


for _model in (careful, final_only, peeking):
    _model.rmcheck_interface = "process"  # type: ignore[attr-defined]
