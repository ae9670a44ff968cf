"""``rmcheck compare`` on a large run document: the gate must stay fast as suites grow.

    python benchmarks/bench_compare.py [--cases 100000] [--tests 100] [--repeat 3]

builds (in a temp dir) one run document holding two models, each with ``--tests`` tests whose cases
add up to ``--cases`` over both models, written through rmcheck's own result classes; every case has
the example fields a real judged case carries (prompt, responses, per-response scores), and about one
case in ten flips verdict between the models. It then times, best of ``--repeat``:

- load: reading the document back with ``json`` alone, the floor any compare pays;
- compare: ``rmcheck compare RUN.json`` through :func:`rmcheck.report.compare.compare_runs` and its
  text output (Kendall tau-b and the exact McNemar test per test included);

and prints both, the ratio compare / load, and whether compare took under the 2 s target. Times are
CPU seconds of this process (``time.process_time``), so other work on a shared machine does not
inflate them; on an idle machine they match wall time.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rmcheck.report.compare import compare_runs  # noqa: E402
from rmcheck.results import CaseResult, Example, TestResult, run_document  # noqa: E402

MODELS = ("python:base:rm", "python:candidate:rm")


def build(path: Path, cases: int, tests: int, seed: int = 0) -> None:
    """A two-model run document with ``cases`` cases in all, spread over ``tests`` tests per model."""
    rng = random.Random(seed)
    per_test = max(1, cases // (2 * tests))
    results = []
    for n in range(tests):
        verdicts = [rng.random() < 0.8 for _ in range(per_test)]
        for model in MODELS:
            flip = model == MODELS[1]
            result = TestResult(suite=f"suite{n // 10}", suite_file=f"suites/s{n // 10}.rmcheck.yaml", line=n + 1,
                                test=f"test-{n}", model=model, attribute=f"attr{n % 7}", expect="not_higher",
                                rule="d <= t", objective=None, tolerance="0.1 sd", threshold=0.05,
                                min_pass_rate=0.9, perturb="pad_with_filler")
            for i, ok in enumerate(verdicts):
                ok = ok != (flip and rng.random() < 0.1)
                delta = rng.gauss(0.0 if ok else 0.3, 0.1)
                original = f"Response {i} of test {n}. It says a few things in plain words."
                example = Example(f"Prompt {i}?", "response", original, original + " To summarize, that is it.",
                                  {"response": {"original": rng.random(), "perturbed": rng.random()}})
                result.cases.append(CaseResult(f"case-{i}", "passed" if ok else "failed", delta, example=example))
            results.append(result.to_json())
    models = [{"spec": m, "fingerprint": m, "description": m} for m in MODELS]
    path.write_text(json.dumps(run_document(results, models)), encoding="utf-8")


def best(repeat: int, run) -> float:
    times = []
    for _ in range(repeat):
        started = time.process_time()
        run()
        times.append(time.process_time() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--tests", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "run.json"
        build(path, args.cases, args.tests)
        size = path.stat().st_size / 1e6
        load = best(args.repeat, lambda: json.loads(path.read_text(encoding="utf-8")))
        compare = best(args.repeat, lambda: compare_runs([path]).text())
    print(f"run document: {args.cases} cases, {args.tests} tests x 2 models, {size:.1f} MB")
    print(f"load (json only)  {load:7.3f} CPU s")
    print(f"rmcheck compare   {compare:7.3f} CPU s   ({compare / load:.2f}x the load; target < 2 s: "
          f"{'met' if compare < 2 else 'NOT met'})")


if __name__ == "__main__":
    main()
