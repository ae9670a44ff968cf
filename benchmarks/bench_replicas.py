"""Throughput over 1, 2 and 4 loopback ``rmcheck serve`` replicas of a python RM that takes 20 ms per batch.

    python benchmarks/bench_replicas.py                       # 1, 2, 4 replicas; 1,600 pairs (400 prompts x 4)
    python benchmarks/bench_replicas.py --prompts 200 --batch-size 4 --repeats 3

Each replica serves ``python:fixtures.replica_rms:fixed_batch_time`` (a fixed ``BATCH_SECONDS`` per batch of
up to ``--batch-size`` pairs, whatever its size), so one replica peaks at batch-size / 20 ms pairs per second
and N replicas should give N times that. For each N it prints pairs per second (best of ``--repeats``), the
speed-up over one replica against the target 0.9 * N, and the share of pairs answered by their prompt's own
replica (prompt affinity), and the CPU each pair cost this client and the servers. A last row kills one of the replicas mid-run (SIGKILL): the run still completes,
and the affinity share shows how many pairs failed over. The client and the servers share this machine's
CPUs, so a loaded machine understates the speed-up.
"""
from __future__ import annotations

import argparse
import os
import resource
import signal
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fixtures.replica_rms import BATCH_SECONDS  # noqa: E402
from fixtures.replicas import multi_spec, replicas  # noqa: E402
from rmcheck import Pair, load_model  # noqa: E402

RM = "python:fixtures.replica_rms:fixed_batch_time"
TARGET = 0.9


def pairs_for(prompts: int, responses: int, tag: str) -> list[Pair]:
    return [Pair(f"{tag} question {q}: what should I know about topic {q}?", "word " * (r + 1))
            for q in range(prompts) for r in range(responses)]


def cpu_seconds(pids: list[int] | None = None) -> float:
    """CPU seconds of this process, or of the given processes (Linux: /proc/PID/stat utime + stime)."""
    if pids is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    ticks = [Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split() for pid in pids]
    return sum(int(fields[11]) + int(fields[12]) for fields in ticks) / os.sysconf("SC_CLK_TCK")


def measure(count: int, args: argparse.Namespace, *, kill: bool = False) -> tuple[float, float, float, float]:
    """Best pairs/s over the repeats, the affinity share of the last repeat, and the CPU milliseconds per pair
    of this client and of the servers over the timed runs (without the replica that gets killed)."""
    with replicas(RM, count, "--batch-size", str(args.batch_size)) as running:
        spec = multi_spec([url for _, url in running], f"concurrency={args.concurrency}&backoff=1&timeout=30")
        model = load_model(spec)
        warm_up = pairs_for(args.prompts // 4, 2, "warm-up")
        model.score(warm_up)  # connections open, limits raised
        watched = [process.pid for process, _ in (running[:-1] if kill else running)]  # the last may be killed
        best, scored, client, servers = 0.0, 0, cpu_seconds(), cpu_seconds(watched)
        for repeat in range(args.repeats):
            work = pairs_for(args.prompts, args.responses, f"run {repeat}")
            model.routing.pairs = model.routing.kept = 0
            if kill and repeat == args.repeats - 1:
                victim = running[-1][0]
                threading.Timer(0.3, os.kill, (victim.pid, signal.SIGKILL)).start()
            start = time.perf_counter()
            scores = model.score(work)
            elapsed = time.perf_counter() - start
            assert [s["score"] for s in scores] == [float(len(p.response.split())) for p in work]
            best, scored = max(best, len(work) / elapsed), scored + len(work)
        client = (cpu_seconds() - client) * 1000 / scored
        servers = (cpu_seconds(watched) - servers) * 1000 / scored * count / max(1, len(watched))
        return best, model.routing.affinity, client, servers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--prompts", type=int, default=400)
    parser.add_argument("--responses", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=16, help="the most requests in flight per replica")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    print(f"{args.prompts * args.responses} pairs ({args.prompts} prompts x {args.responses}); {BATCH_SECONDS * 1000:g} "
          f"ms per batch of up to {args.batch_size}; concurrency {args.concurrency} per replica; "
          f"best of {args.repeats}; {os.cpu_count()} CPUs")
    print("| replicas | pairs/s | speed-up | target | affinity kept | CPU ms/pair client + servers |")
    print("| --- | --- | --- | --- | --- | --- |")
    base = None
    ok = True
    for count in args.replicas:
        rate, affinity, client, servers = measure(count, args)
        base = base or rate
        speedup = rate / base
        ok &= speedup >= TARGET * count
        print(f"| {count} | {rate:.0f} | {speedup:.2f}x | >= {TARGET * count:.1f}x | {affinity:.1%} | "
              f"{client:.2f} + {servers:.2f} |", flush=True)
    count = max(args.replicas)
    rate, affinity, client, servers = measure(count, args, kill=True)
    print(f"| {count}, one killed mid-run | {rate:.0f} | {rate / base:.2f}x | (completes) | {affinity:.1%} | "
          f"{client:.2f} + {servers:.2f} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
