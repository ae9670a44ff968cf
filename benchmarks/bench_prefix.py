"""Shared-prefix scoring against full forward passes, on multi-turn HH-RLHF cases from ../shared/data.

    python benchmarks/bench_prefix.py                     # 60 cases, the tiny Llama RM, best of 3
    python benchmarks/bench_prefix.py --cases 100 --repeats 5 --threads 1
    python benchmarks/bench_prefix.py --device cuda --dtype bfloat16 --model DIR   # benchmarks/gpu_check.sh
    python benchmarks/bench_prefix.py --dpo --cases 40 --min-turns 3 --threads 1    # dpo: policy + reference

The benchmark suite's built-in perturbation tests (benchmarks/hh_suite.py) run over multi-turn cases
(two human turns or more) with both scoring paths, interleaved, each run in a fresh process so that
its peak RSS is its own. It prints tokens computed against tokens submitted, the wall-time ratio
against today's batched path (best of ``--repeats``), the largest |score difference| over every pair
both paths scored, whether verdicts and minimal pairs agree, and the peak RSS of each path.
With ``--dpo`` the model is ``dpo:`` (a tiny Llama policy and reference, causal LMs built from a config;
every token runs through both), and the difference is the largest over the reward and both log-probabilities.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.hh_suite import HH_RLHF, TESTS  # noqa: E402

#: Cases whose prompt and longer response exceed this many characters are left out, so that every pair fits
#: the tiny Llama's positions (:data:`POSITIONS`) and nothing is truncated.
MAX_CHARS = 2400
POSITIONS = 2048
TARGETS = {"tokens": 3.0, "wall": 2.0, "delta": 1e-4, "rss": 1.5}
PATHS = ("shared", "full")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=60, help="multi-turn HH-RLHF cases (default 60)")
    parser.add_argument("--min-turns", type=int, default=2, help="human turns a case's prompt has at least (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each path, interleaved; the best is kept")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per run (default torch's; 1 is steadier on a busy machine)")
    parser.add_argument("--device", default=None, help="torch device (default cpu)")
    parser.add_argument("--dtype", default=None, help="torch dtype (default float32)")
    parser.add_argument("--model", default=None, metavar="DIR",
                        help="an hf: sequence-classification model directory (default: a tiny Llama built from a config);"
                             " with --dpo, POLICY,REFERENCE causal LM directories")
    parser.add_argument("--dpo", action="store_true", help="benchmark the dpo: implicit reward instead of an hf: RM")
    parser.add_argument("--worker", nargs=3, metavar=("PATH", "MODEL", "SUITE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(*args.worker, threads=args.threads, options={"device": args.device, "dtype": args.dtype})
    if not HH_RLHF.is_file():
        print(f"bench_prefix: {HH_RLHF} not found (the shared data ships beside the checkout)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="rmcheck-bench-prefix-") as tmp:
        work = Path(tmp)
        from fixtures.tiny_models import build_tiny_llama_rm, build_tiny_lm

        if args.dpo:
            model = args.model or ",".join(str(build_tiny_lm(work / name, seed, positions=POSITIONS))
                                           for name, seed in (("policy", 1), ("reference", 2)))
        else:
            model = args.model or str(build_tiny_llama_rm(work / "tiny-llama", positions=POSITIONS))
        spec = f"{'dpo' if args.dpo else 'hf'}:{model}"
        suite = write_multi_turn_suite(work, args.cases, args.min_turns)
        runs: dict[str, list[dict[str, Any]]] = {path: [] for path in PATHS}
        for _ in range(args.repeats):
            for path in PATHS:
                runs[path].append(run_worker(path, spec, suite, work, args))
        report(runs, f"{args.cases} HH-RLHF cases of {args.min_turns}+ human turns", args.threads)
    return 0


def write_multi_turn_suite(folder: Path, cases: int, turns: int = 2) -> Path:
    """The benchmark tests over the first ``cases`` HH-RLHF cases whose prompt has ``turns`` human turns or more."""
    from rmcheck.suite.datasets import hh_rlhf_case

    rows = []
    with gzip.open(HH_RLHF, "rt", encoding="utf-8") as handle:
        for line in handle:
            case = hh_rlhf_case(json.loads(line))
            if not case or sum(t["role"] == "user" for t in case["prompt"]) < turns:
                continue
            if sum(len(t["content"]) for t in case["prompt"]) + max(len(case["chosen"]), len(case["rejected"])) \
                    <= MAX_CHARS:
                rows.append({"id": f"hh-{len(rows)}", **case})
            if len(rows) == cases:
                break
    (folder / "hh.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    path = folder / "prefix.rmcheck.yaml"
    path.write_text(f"rmcheck: 1\nsuite: prefix\ncases:\n  - file: hh.jsonl\ntests:\n{TESTS}", encoding="utf-8")
    return path


def run_worker(path: str, spec: str, suite: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One path in a fresh process: its timings, counts, verdicts and scores."""
    command = [sys.executable, __file__, "--worker", path, spec, str(suite)]
    for flag in ("threads", "device", "dtype"):
        if getattr(args, flag):
            command += [f"--{flag}", str(getattr(args, flag))]
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # the same set and dict orders in every run
    out = subprocess.run(command, cwd=work, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def worker(path: str, spec: str, suite_path: str, threads: int | None, options: dict[str, Any]) -> int:
    """Load the model, run the suite with one path, print one JSON line."""
    warnings.simplefilter("ignore")
    if threads:
        import torch

        torch.set_num_threads(threads)
    from rmcheck.backends.base import ModelOptions
    from rmcheck.engine import Engine, Request
    from rmcheck.suite import load_suite

    engine = Engine(ModelOptions(prefix_sharing=path == "shared", **options))
    engine.model(spec)
    suite = load_suite(suite_path)
    requests = [Request(suite, test, spec) for test in suite.tests]
    loaded = _rss_mib()
    start = time.perf_counter()
    outcomes = engine.evaluate(requests)
    wall = time.perf_counter() - start
    scorer = engine.used_scorer(spec)
    results = [outcomes[r.key].to_json() for r in requests]
    model = engine.model(spec)
    device = model.policy.device if spec.startswith("dpo:") else model.device
    print(json.dumps({
        "wall": wall, "rss": _rss_mib(), "rss_loaded": loaded, "path": scorer.path,
        "model": model.describe().split(";")[0] + f", {model.dtype} on {device}",
        "stats": scorer.stats.__dict__,
        "verdicts": [(r["test"], r["counts"]) for r in results],
        "minimal": [_minimal(r) for r in results],
        "scores": [[repr(pair), s] for pair, s in scorer.memo.items()],
    }))
    return 0


def _minimal(result: dict[str, Any]) -> list[Any]:
    return [(case["id"], case["verdict"], case.get("minimal")) for case in result.get("cases", [])]


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report(runs: dict[str, list[dict[str, Any]]], cases: str, threads: int | None) -> None:
    shared, full = (min(runs[p], key=lambda r: r["wall"]) for p in PATHS)
    stats = shared["stats"]
    scores = {pair: value for pair, value in full["scores"]}
    delta = max((abs(value[k] - scores[pair][k]) for pair, value in shared["scores"] if pair in scores for k in value),
                default=0.0)
    same = all(a["verdicts"] == b["verdicts"] and a["minimal"] == b["minimal"]
               for a, b in zip(runs["shared"], runs["full"]))
    tokens = stats["tokens"] / max(stats["computed_tokens"], 1)
    wall = full["wall"] / shared["wall"]
    rss = (shared["rss"] - shared["rss_loaded"] + 1) / (full["rss"] - full["rss_loaded"] + 1)
    print(f"shared-prefix scoring, {shared['model']}, {cases} x {len(shared['verdicts'])} tests "
          f"(best of {len(runs['shared'])} interleaved runs per path"
          f"{f', {threads} torch thread(s)' if threads else ''})")
    print(f"  path: {shared['path']}")
    rows = [("", "wall s", "pairs", "tokens submitted", "tokens computed", "forward passes", "peak RSS MiB (after load)"),
            *((name, f"{r['wall']:.2f}", r["stats"]["forward_pairs"], r["stats"]["tokens"] or f"({stats['tokens']})",
               r["stats"]["computed_tokens"] or f"({stats['tokens']})", r["stats"]["batches"],
               f"{r['rss']:.0f} (+{r['rss'] - r['rss_loaded']:.0f})")
              for name, r in (("shared prefixes", shared), ("full passes (--no-prefix-sharing)", full)))]
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  " + "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    checks = [("tokens computed, fewer", tokens, tokens >= TARGETS["tokens"], f">= {TARGETS['tokens']}x"),
              ("wall time, faster", wall, wall >= TARGETS["wall"], f">= {TARGETS['wall']}x"),
              ("max |score difference|", delta, delta <= TARGETS["delta"], f"<= {TARGETS['delta']:g}"),
              ("peak RSS growth, shared / full", rss, rss <= TARGETS["rss"], f"<= {TARGETS['rss']}x")]
    for name, value, met, target in checks:
        print(f"  {name}: {value:.3g} (target {target}: {'met' if met else 'MISSED'})")
    if not full["stats"]["tokens"]:
        print("  (the full path counts no tokens for this model: in brackets, the tokens the shared run submitted)")
    print(f"  verdicts and minimal pairs equal between the paths in every round: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    raise SystemExit(main())
