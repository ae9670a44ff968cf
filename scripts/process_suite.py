"""The built-in step suite's cases: arithmetic word problems solved in steps, one calculation per step.

    python -m scripts.process_suite           # write suites/process-steps.rmcheck.yaml
    python -m scripts.process_suite --check   # exit 1 when the file is not what this script writes

Each problem is a template filled with numbers from a seeded generator; every step states one calculation
``a op b = c`` on numbers the problem or an earlier step gave, and the last step states the answer.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "suites" / "process-steps.rmcheck.yaml"
PER_TEMPLATE = 8
NAMES = ("Ana", "Ben", "Chidi", "Dana", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jun", "Kofi", "Lena")

HEADER = """\
# Written by `python -m scripts.process_suite` (seeded templates); edit the script, not this file.
rmcheck: 1
suite: process-steps
description: >-
  A process reward model scores each step of a solution. A step made wrong must score lower, the steps before
  an edit must keep their scores (a PRM reads only what came before), two steps out of order must be caught,
  and a right final answer after a wrong step must not save the solution. Arithmetic word problems, one
  calculation per step; needs a process model (python:MODULE:FN with FN.rmcheck_interface = "process").
tests:
  - name: corrupted-step-scores-lower
    attribute: step-correctness
    perturb: {op: corrupt_step, at: random}
    expect: step_lower
  - name: earlier-steps-keep-their-scores
    attribute: causality
    perturb: {op: corrupt_step, at: last}
    expect: earlier_unchanged
    tolerance: 0.001
  - name: swapped-steps-score-lower
    attribute: step-order
    perturb: {op: swap_steps, at: first}
    expect: step_lower
  - name: right-answer-after-wrong-step-is-still-wrong
    attribute: miracle-answer
    perturb: {op: miracle_step, at: first}
    expect: solution_lower
    aggregate: min
cases:
"""

Problem = tuple[str, list[str]]


def pencils(rng: random.Random, name: str) -> Problem:
    a, b, c, d = rng.randint(3, 9), rng.randint(4, 12), rng.randint(2, 9), rng.randint(3, 15)
    p, q = a * b, a * b - c
    return (f"{name} buys {a} packs of {b} pencils, gives {c} pencils to a friend, then buys {d} more pencils. "
            "How many pencils does " + name + " have now?",
            [f"The packs hold {a} * {b} = {p} pencils.", f"After giving some away, {name} has {p} - {c} = {q} pencils.",
             f"Buying more gives {q} + {d} = {q + d} pencils.", f"The answer is {q + d}."])


def savings(rng: random.Random, name: str) -> Problem:
    a, b, c, d = rng.randint(12, 40), rng.randint(3, 7), rng.randint(10, 30), rng.randint(2, 4)
    earned = a * b
    left = earned - c
    return (f"{name} earns {a} dollars a day for {b} days, spends {c} dollars on books, and splits the rest "
            f"equally among {d} jars. How many dollars go in each jar? Round down.",
            [f"{name} earns {a} * {b} = {earned} dollars.", f"After the books, {earned} - {c} = {left} dollars are left.",
             f"Each jar gets {left} / {d} = {left // d} dollars, rounded down.", f"The answer is {left // d}."])


def garden(rng: random.Random, name: str) -> Problem:
    a, b, c, d = rng.randint(4, 10), rng.randint(5, 12), rng.randint(2, 8), rng.randint(2, 4)
    plants = a * b
    alive = plants - c
    return (f"{name} plants {a} rows of {b} tulips. {c} tulips do not bloom. Each blooming tulip has {d} "
            "petals. How many petals are there?",
            [f"There are {a} * {b} = {plants} tulips.", f"Of them, {plants} - {c} = {alive} bloom.",
             f"They have {alive} * {d} = {alive * d} petals.", f"The answer is {alive * d}."])


def trip(rng: random.Random, name: str) -> Problem:
    a, b, c, d = rng.randint(40, 90), rng.randint(2, 5), rng.randint(20, 60), rng.randint(10, 35)
    first = a * b
    total = first + c
    return (f"{name} drives {a} km an hour for {b} hours, then {c} km more, and walks the last {d} km. "
            "How long is the whole trip in km?",
            [f"The first part is {a} * {b} = {first} km.", f"With the extra drive, {first} + {c} = {total} km.",
             f"Adding the walk, {total} + {d} = {total + d} km.", f"The answer is {total + d}."])


TEMPLATES: dict[str, Callable[[random.Random, str], Problem]] = {
    "pencils": pencils, "savings": savings, "garden": garden, "trip": trip}


def render() -> str:
    lines = [HEADER]
    for key, make in TEMPLATES.items():
        rng = random.Random(f"process-steps/{key}")
        for n in range(1, PER_TEMPLATE + 1):
            prompt, steps = make(rng, rng.choice(NAMES))
            lines += [f"  - id: {key}-{n}", f"    prompt: {json.dumps(prompt)}", "    steps:",
                      *(f"      - {json.dumps(step)}" for step in steps), "    label: -1"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.process_suite", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the suite is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        same = SUITE.is_file() and SUITE.read_text(encoding="utf-8") == text
        print(f"{SUITE}: {'up to date' if same else 'out of date: run python -m scripts.process_suite'}")
        return 0 if same else 1
    SUITE.write_text(text, encoding="utf-8")
    print(f"wrote {SUITE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
