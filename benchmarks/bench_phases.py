"""Pairs scored per phase of a cold run: judging, shrinking, replaying minimal pairs.

    python benchmarks/bench_phases.py                        # the demo RM over the built-in suites, no cache
    python benchmarks/bench_phases.py --save before.json     # also keep its verdicts and minimal pairs
    python benchmarks/bench_phases.py --against before.json  # and check a later run gives the same ones

Pair counts are deterministic (they are what the model was sent), so they compare across runs and machines;
the seconds beside them are wall time between progress reports, noisy on a shared CPU. ``--against`` compares
every result's outcome and pass rate, and every failing case's minimal texts, scores and status.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rmcheck.cli.app import builtin_suites  # noqa: E402
from rmcheck.engine import run_suites  # noqa: E402

#: The phase of a progress step, by the first word the engine reports it with.
PHASES = {"scoring": "scoring", "shrinking": "shrinking", "replaying": "replay"}


class PhaseCounter:
    """A progress callback that adds up, per phase, the pairs sent to the model and the wall time spent."""

    def __init__(self) -> None:
        self.pairs: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self.last = time.perf_counter()

    def __call__(self, what: str, done: int, total: int) -> None:
        now = time.perf_counter()
        phase = PHASES.get(what.split()[0], "other")
        if total:  # a load (total 0) is not scoring; time since the last report belongs to this step
            self.seconds[phase] += now - self.last
            if done >= total:
                self.pairs[phase] += total
        self.last = now


def digest(results: list[Any]) -> dict[str, Any]:
    """What must not change: each result's outcome and pass rate, each failing case's minimal pair."""
    out = {}
    for result in results:
        doc = result.to_json()
        cases = {c["id"]: {k: c.get(k) for k in ("minimal", "scores", "deltas", "status", "other_sides")}
                 for c in doc["cases"] if c["verdict"] == "failed"}
        out[f"{doc['suite']}::{doc['test']}[{doc['model']}]"] = {"outcome": doc["outcome"],
                                                                "pass_rate": doc["pass_rate"], "failing": cases}
    return out


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """One line per result or failing case whose digest differs."""
    lines = [f"{key}: only in {'before' if key in before else 'after'}" for key in before.keys() ^ after.keys()]
    for key in before.keys() & after.keys():
        old, new = before[key], after[key]
        lines += [f"{key}: {field} {old[field]} -> {new[field]}" for field in ("outcome", "pass_rate")
                  if old[field] != new[field]]
        lines += [f"{key} case {case}: {old['failing'].get(case)} -> {new['failing'].get(case)}"
                  for case in old["failing"].keys() | new["failing"].keys()
                  if old["failing"].get(case) != new["failing"].get(case)]
    return sorted(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rm", default="demo", metavar="SPEC", help="model to run (default demo)")
    parser.add_argument("paths", nargs="*", help="suites (default: the built-in suites)")
    parser.add_argument("--save", metavar="PATH", help="write the verdicts and minimal pairs to PATH")
    parser.add_argument("--against", metavar="PATH", help="compare the verdicts and minimal pairs with a saved run")
    args = parser.parse_args(argv)
    counter = PhaseCounter()
    start = time.perf_counter()
    report = run_suites(args.paths or [builtin_suites()], [args.rm], progress=counter)
    wall = time.perf_counter() - start
    stats = report.engine.used_scorer(args.rm).stats
    total = sum(counter.pairs.values())
    print(f"cold run of {args.rm} over {len(report.requests)} tests, {wall:.1f} s; "
          f"{stats.forward_pairs} pairs scored in {stats.batches} forward passes")
    for phase in (*PHASES.values(), "other"):
        if counter.pairs[phase] or phase != "other":
            print(f"    {phase:<10} {counter.pairs[phase]:>6} pairs  {counter.pairs[phase] / max(total, 1):>4.0%}"
                  f"  {counter.seconds[phase]:>6.1f} s")
    found = digest(report.results)
    if args.save:
        Path(args.save).write_text(json.dumps(found, indent=1, sort_keys=True))
    if args.against:
        diff = differences(json.loads(Path(args.against).read_text()), json.loads(json.dumps(found)))
        failing = sum(len(r["failing"]) for r in found.values())
        print(f"against {args.against}: {len(found)} results, {failing} failing cases: "
              + ("the same verdicts and minimal pairs" if not diff else f"{len(diff)} differences"))
        for line in diff[:20]:
            print(f"    {line}")
        return 1 if diff else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
