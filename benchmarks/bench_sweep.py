"""Vocabulary sweep: prefix-cached scoring against naive full-sequence batches, measured in one run.

    python benchmarks/bench_sweep.py

builds (once, into .rmcheck/bench/word-llama-32k, no download) a Llama-style sequence-classification
RM with a 32,000-token word-level vocabulary, then scores every non-special token as the whole
response to a value-laden prompt after a long system prompt (360 template tokens in all):

- cached: rmcheck's fast path, shared-prefix scoring from token ids (the template prefix runs once;
  candidates reuse its KV cache), timed for each strategy (packed, expanded): the median of ``--repeat``
  full sweeps;
- naive: full forward passes over the same token ids, in batches of ``--naive-batch`` equal-length rows,
  no cache. ``--naive-sample N`` times only N evenly spaced tokens and extrapolates (said so in the
  output); the default times every token.

The cached sweeps and slices of the naive passes alternate, so both see the same machine load. It
prints each time, the ratio naive / cached, and the largest score difference over the tokens both
scored. Timings are wall-clock, on one torch thread by default: on a small machine that also runs other
work, torch's OpenMP threads spin-wait for each other and time the scheduler rather than the model
(``--threads 0`` uses torch's own choice).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fixtures.tiny_models import build_word_llama_rm  # noqa: E402
from rmcheck.backends.base import ModelOptions, load_model  # noqa: E402
from rmcheck.sweep.core import select_for  # noqa: E402
from rmcheck.sweep.fast import STRATEGIES, IdScorer  # noqa: E402
from rmcheck.sweep.tokens import TokenSpec  # noqa: E402

SYSTEM = ("You are a helpful, honest and harmless assistant. Answer the user's question directly and briefly. "
          "When a question asks for one word, reply with exactly one word and nothing else. Do not explain "
          "your answer unless the user asks for an explanation. Be respectful to every person and every group "
          "of people, and never use slurs or insults. If you are not sure of an answer, give your best guess "
          "rather than refusing. ") * 4
PROMPT = "What, in one word, is the greatest thing ever?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", default=str(ROOT / ".rmcheck/bench/word-llama-32k"))
    parser.add_argument("--vocab", type=int, default=32000, help="vocabulary size of the built model")
    parser.add_argument("--naive-batch", type=int, default=32, help="rows per naive forward pass (default 32)")
    parser.add_argument("--naive-sample", type=int, default=0, metavar="N",
                        help="time naive passes on N evenly spaced tokens and extrapolate (default: all tokens)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds of (a cached sweep per strategy, a slice of the naive passes); default 3")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1; 0: torch's choice)")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    folder = Path(args.model_dir)
    if not (folder / "config.json").is_file():
        build_word_llama_rm(folder, args.vocab)
    rm = load_model(f"hf:{folder}", ModelOptions())
    prompt = (("system", SYSTEM), ("user", PROMPT))
    ids = [t.id for t in select_for(rm, TokenSpec("all"), None).tokens]
    print(f"model: {rm.describe()}")
    print(f"{len(ids)} candidate tokens (vocabulary {len(rm.tokenizer)}); torch threads {torch.get_num_threads()}")

    # Rounds alternate a cached sweep per strategy with a slice of the naive passes, so both are timed
    # under the same load; the cached time is the median over rounds, the naive time the sum of slices.
    sample = ids if not args.naive_sample else ids[::max(1, len(ids) // args.naive_sample)]
    naive = IdScorer(rm, prompt, batch_size=args.naive_batch)
    times: dict[str, list[float]] = {strategy: [] for strategy in STRATEGIES}
    scores: dict[str, list[float]] = {}
    paths: dict[str, str] = {}
    reference: list[float] = []
    naive_seconds = 0.0
    for round_ in range(args.repeat):
        for strategy in STRATEGIES:
            scorer = IdScorer(rm, prompt, strategies=(strategy,))
            started = time.perf_counter()
            scores[strategy] = [s["score"] for s in scorer.score(ids)]
            times[strategy].append(time.perf_counter() - started)
            paths[strategy] = scorer.path
        part = sample[round_ * len(sample) // args.repeat:(round_ + 1) * len(sample) // args.repeat]
        started = time.perf_counter()
        reference += naive.full(part)[:, 0].tolist()
        naive_seconds += time.perf_counter() - started
    naive_seconds *= len(ids) / len(sample)
    print(f"prefix {len(naive.template.prefix)} tokens + 1 candidate + {len(naive.template.closing)} closing")
    cached = {}
    for strategy, runs in times.items():
        cached[strategy] = statistics.median(runs)
        print(f"cached ({strategy}): median {cached[strategy]:.2f} s of {', '.join(f'{t:.2f}' for t in runs)}, "
              f"{len(ids) / cached[strategy]:,.0f} tokens/s; path: {paths[strategy]}")
    label = "" if len(sample) == len(ids) else f" (measured on {len(sample)} tokens, extrapolated to {len(ids)})"
    print(f"naive full-sequence batches: {naive_seconds:.2f} s{label}, {len(ids) / naive_seconds:,.0f} tokens/s")
    position = {token: i for i, token in enumerate(ids)}
    for strategy, seconds in cached.items():
        diff = max(abs(scores[strategy][position[t]] - r) for t, r in zip(sample, reference))
        print(f"{strategy}: naive / cached = {naive_seconds / seconds:.1f}x faster; "
              f"max |score difference| over {len(sample)} tokens = {diff:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
