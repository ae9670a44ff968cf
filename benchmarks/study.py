"""The batch-size study behind :data:`rmcheck.scoring.DEFAULT_BATCH_SIZE` and ``DEFAULT_BATCH_TOKENS``.

Times the same pairs scored one at a time, in unsorted and length-sorted batches of a fixed
count, and in length-sorted batches filled up to a budget of padded tokens, on long pairs (the
benchmark suite's HH-RLHF dialogues) and short ones (the built-in suites' single-turn answers).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from rmcheck.backends.base import Pair, RewardModel, load_model
from rmcheck.kinds.expectation import plan
from rmcheck.scoring import Scorer
from rmcheck.errors import RmcheckError
from rmcheck.suite import Suite, TestSpec, find_suites, load_suite

SUITES = Path(__file__).resolve().parent.parent / "suites"
COUNTS = (8, 16, 32, 64, 128)
BUDGETS = (2048, 4096, 8192, 16384, 32768)
UNBOUNDED = 10 ** 9


def study(spec: str, suite: Suite, repeats: int) -> None:
    model = load_model(spec)
    print(f"\n=== batch study: {model.describe()}")
    builtin = [load_suite(path) for path in find_suites([SUITES])]
    for label, pairs in (("long: the benchmark suite's HH-RLHF pairs", suite_pairs([suite])[:1200]),
                         ("short: the built-in suites' pairs", suite_pairs(builtin)[:1200])):
        policies = _policies(model, pairs)
        best = {name: float("inf") for name in policies}
        for _ in range(max(repeats, 1)):
            for name, run in policies.items():
                start = time.perf_counter()
                run()
                best[name] = min(best[name], time.perf_counter() - start)
        one = best["one pair at a time"]
        tokens = sum(len(row["input_ids"]) for row, _ in model.encode_many(pairs))  # type: ignore[attr-defined]
        print(f"{label}: {len(pairs)} pairs, {tokens} tokens "
              f"(minimum of {max(repeats, 1)} interleaved runs)")
        for name, seconds in best.items():
            print(f"    {name:<48} {seconds:7.2f} s  {one / seconds:5.2f}x one at a time")


def suite_pairs(suites: list[Suite]) -> list[Pair]:
    """Every distinct pair the suites' tests judge: the originals and each test's perturbed responses."""
    pairs = []
    for suite in suites:
        pairs += [Pair(c.prompt, text) for c in suite.cases for _, text in c.responses]
        for test in suite.tests:
            try:
                trials = plan(suite, test)[0] if isinstance(test, TestSpec) else []
            except RmcheckError:  # e.g. llm_rewrite without its cassette: not needed for timing
                continue
            pairs += [Pair(trial.case.prompt, text) for trial in trials for text in trial.texts().values()]
    return list(dict.fromkeys(pairs))


def _policies(model: RewardModel, pairs: list[Pair]) -> dict[str, Callable[[], Any]]:
    def chunks(size: int) -> Callable[[], Any]:
        return lambda: [model.score(pairs[i:i + size]) for i in range(0, len(pairs), size)]

    def scorer(**kwargs: int) -> Callable[[], Any]:
        return lambda: Scorer(model, **kwargs).score(pairs)

    runs: dict[str, Callable[[], Any]] = {"one pair at a time": chunks(1), "unsorted, 32 a batch": chunks(32)}
    runs.update({f"sorted, {n} a batch": scorer(batch_size=n, batch_tokens=UNBOUNDED) for n in COUNTS})
    runs.update({f"sorted, {b} padded tokens (at most 32 pairs)": scorer(batch_size=32, batch_tokens=b)
                 for b in BUDGETS})
    runs.update({f"sorted, 8192 padded tokens (at most {n} pairs)": scorer(batch_size=n, batch_tokens=8192)
                 for n in (64, 128)})
    return runs
