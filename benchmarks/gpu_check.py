"""The body of benchmarks/gpu_check.sh: a ~1B-parameter Llama RM on CUDA (random weights, no download).

Sections (each prints one line and adds to the JSON): ``build``, ``throughput`` (hf: pairs/s in bfloat16
over mixed lengths), ``parity`` (float32 against bfloat16, max |delta| over the same conversations), and
``sweep`` (the vocabulary sweep's prefix-cached fast path against full passes). Other checks add sections.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fixtures.zoo import conversations, llama3_tokenizer, to_pair  # noqa: E402
from rmcheck.backends.base import ModelOptions, load_model  # noqa: E402

#: meta-llama/Llama-3.2-1B's published config.json (architecture numbers only).
LLAMA_3_2_1B = dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                    num_attention_heads=32, num_key_value_heads=8, head_dim=64, max_position_embeddings=131072,
                    rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=True, hidden_act="silu",
                    rope_scaling={"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                  "original_max_position_embeddings": 8192, "rope_type": "llama3"})

SECTIONS: list[tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = []


def section(name: str) -> Callable[[Callable[[dict[str, Any]], dict[str, Any]]], Callable[[dict[str, Any]], dict[str, Any]]]:
    """Register a check; it gets the shared state (``state["path"]``: the model directory) and returns figures."""
    def register(fn: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[dict[str, Any]], dict[str, Any]]:
        SECTIONS.append((name, fn))
        return fn
    return register


@section("build")
def build(state: dict[str, Any]) -> dict[str, Any]:
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    started = time.perf_counter()
    tokenizer = llama3_tokenizer()
    shape = dict(LLAMA_3_2_1B)
    if state["tiny"]:  # a CPU smoke run of this script: the same code on a 2-layer model
        shape.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, head_dim=16)
    config = LlamaConfig(**shape, num_labels=1, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    with torch.device(state["device"]):
        model = LlamaForSequenceClassification(config).to(torch.bfloat16).eval()
    path = Path(state["out"]) / "llama-1b-rm"
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    state["path"] = path
    params = sum(p.numel() for p in model.parameters())
    del model
    _sync()
    return {"parameters": params, "seconds": round(time.perf_counter() - started, 1)}


def _sync() -> None:
    """Wait for the GPU (and free its cached blocks), so that timings and memory are real."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def _scores(rm: Any, pairs: list[Any], batch: int) -> list[float]:
    return [s["score"] for i in range(0, len(pairs), batch) for s in rm.score(pairs[i:i + batch])]


@section("throughput")
def throughput(state: dict[str, Any]) -> dict[str, Any]:
    import torch

    from rmcheck.scoring.scheduler import Scorer

    pairs = [to_pair(c) for c in conversations(128 if state["tiny"] else 1024, scale=2)]
    rm = load_model(f"hf:{state['path']}", ModelOptions(device=state["device"], dtype="bfloat16"))
    Scorer(rm).score(pairs[:64])  # warm-up
    _sync()
    started = time.perf_counter()
    Scorer(rm).score(pairs)
    _sync()
    seconds = time.perf_counter() - started
    tokens = sum(rm.token_lengths(pairs))
    state["pairs"] = pairs
    return {"pairs": len(pairs), "tokens": tokens, "seconds": round(seconds, 2),
            "pairs_per_s": round(len(pairs) / seconds, 1), "device": rm.provenance()["device"]}


@section("parity")
def parity(state: dict[str, Any]) -> dict[str, Any]:
    import torch

    pairs = state["pairs"][:128]
    out: dict[str, Any] = {"pairs": len(pairs)}
    full = load_model(f"hf:{state['path']}", ModelOptions(device=state["device"], dtype="float32"))
    reference = _scores(full, pairs, 16)
    del full
    _sync()
    for dtype in ("bfloat16", "float16"):
        rm = load_model(f"hf:{state['path']}", ModelOptions(device=state["device"], dtype=dtype))
        got = _scores(rm, pairs, 32)
        out[f"max_abs_delta_{dtype}"] = max(abs(a - b) for a, b in zip(got, reference))
        del rm
        _sync()
    out["score_spread_float32"] = max(reference) - min(reference)
    return out


@section("sweep")
def sweep(state: dict[str, Any]) -> dict[str, Any]:
    import torch

    from rmcheck.sweep.fast import IdScorer

    rm = load_model(f"hf:{state['path']}", ModelOptions(device=state["device"], dtype="bfloat16"))
    prompt = "What, in one word, is the greatest thing ever? " * 8
    ids = list(range(1000, 1000 + (2048 if state["tiny"] else 32768)))
    scorer = IdScorer(rm, prompt)
    scorer.score(ids[:512])  # warm-up and strategy choice
    _sync()
    started = time.perf_counter()
    fast = scorer.score(ids)
    _sync()
    cached = time.perf_counter() - started
    sample = ids[::256]
    started = time.perf_counter()
    full = scorer.full(sample).float().cpu()[:, 0].tolist()
    _sync()
    naive_per_id = (time.perf_counter() - started) / len(sample)
    fast_by_id = dict(zip(ids, (s["score"] for s in fast)))
    return {"ids": len(ids), "path": scorer.path, "seconds": round(cached, 2),
            "ids_per_s": round(len(ids) / cached, 1), "full_pass_ids_per_s": round(1 / naive_per_id, 1),
            "max_abs_delta_vs_full": max(abs(fast_by_id[i] - f) for i, f in zip(sample, full))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=".rmcheck/gpu_check")
    parser.add_argument("--only", nargs="*", default=None, help="section names to run (build always runs)")
    parser.add_argument("--tiny", action="store_true", help="a smoke run of the script on a 2-layer model (CPU works)")
    args = parser.parse_args(argv)
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.tiny:
        print("gpu_check: no CUDA device; nothing measured (--tiny runs a smoke test on CPU)", file=sys.stderr)
        return 2
    state: dict[str, Any] = {"out": args.out, "device": device, "tiny": args.tiny}
    results: dict[str, Any] = {}
    for name, fn in SECTIONS:
        if args.only is not None and name != "build" and name not in args.only:
            continue
        started = time.perf_counter()
        try:
            results[name] = fn(state)
        except Exception as exc:  # report and go on: one failing section must not hide the others
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"{name} ({time.perf_counter() - started:.0f} s): {json.dumps(results[name])}", flush=True)
        Path(args.out, "gpu_check.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0 if all("error" not in r for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
