"""``rmcheck validate`` on the largest suite the limits allow (issue 17 asks for under 2 s).

    PYTHONPATH=. python benchmarks/bench_validate.py [--runs 3]

The suite is as large as ``max_suite_bytes`` lets a file be (256 KiB by default), holds inline cases,
a lexicon that expands one case to the rest of ``max_cases``, and tests with operator arguments at
``max_operator_argument``. Prints its size and case count, and the wall time and peak memory (RSS)
of each ``rmcheck validate`` process, the interpreter start included.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rmcheck.limits import CASES, OPERATOR_ARGUMENT, SUITE_BYTES

ROOT = Path(__file__).resolve().parent.parent


def largest_suite() -> str:
    """Inline cases up to the byte limit, with one lexicon case that takes the case count to the limit."""
    names = [f"Name{i}" for i in range(100)]
    head = (f"rmcheck: 1\nsuite: largest\nlexicons:\n  name: [{', '.join(names)}]\n  city: [{', '.join(names)}]\n"
            "tests:\n")
    tests = "".join(f"  - {{name: t{i}, perturb: {{op: pad_with_filler, n: {OPERATOR_ARGUMENT.value}}}, "
                    f"expect: not_higher, tolerance: 0.1 sd}}\n" for i in range(50))
    lexicon_case = "cases:\n  - {id: lex, prompt: 'Tell {name} about {city}.', response: '{name} lives in {city}.'}\n"
    body = head + tests + lexicon_case
    inline, i = [], 0
    room = min(CASES.value - len(names) ** 2, 10 ** 9)
    size = len(body.encode())
    while i < room:
        line = (f"  - {{id: c{i}, prompt: 'What is the capital of country number {i}?', "
                f"response: 'The capital of country {i} is City {i}. It has a river.'}}\n")
        if size + len(line) > SUITE_BYTES.value:
            break
        inline.append(line)
        size += len(line)
        i += 1
    return body + "".join(inline)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="rmcheck-bench-validate-"))
    path = folder / "largest.rmcheck.yaml"
    path.write_text(largest_suite(), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    print(f"suite: {path.stat().st_size:,} bytes (limit {SUITE_BYTES.value:,})")
    for run in range(args.runs):
        started = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run([sys.executable, "-m", "rmcheck.cli", "validate", str(path)], capture_output=True,
                             text=True, env=env)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        print(f"run {run + 1}: exit {out.returncode}, {wall:.2f} s wall, {cpu:.2f} s CPU, "
              f"peak RSS {after.ru_maxrss / 1024:.0f} MB: {out.stdout.strip()[-80:] or out.stderr.strip()[-200:]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
