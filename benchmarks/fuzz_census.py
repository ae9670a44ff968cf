"""Count what the standing fuzzer finds, without stopping at the first crash (issues 17 and 27's figures).

    PYTHONPATH=. python benchmarks/fuzz_census.py [--examples 10000] [--files 2000] [--documents 300] [--seed 0]

Generates mutated suites, data files and run documents with tests/fuzzing.py's strategies (hypothesis,
generation only), checks each exactly as tests/test_fuzz.py does, and prints per kind the number of examples,
how many suites loaded and reached the engine, and every crash signature with its count. Run it with another
checkout first on PYTHONPATH to measure that checkout (the "before" figure); tests/fuzzing.py is always this one's.
"""
from __future__ import annotations

import argparse
import collections
import importlib.util
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings

HERE = Path(__file__).resolve().parent.parent


def _fuzzing():
    spec = importlib.util.spec_from_file_location("rmcheck_fuzzing", HERE / "tests" / "fuzzing.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000, help="mutated suites (default 10,000)")
    parser.add_argument("--files", type=int, default=2_000, help="mutated data files (default 2,000)")
    parser.add_argument("--documents", type=int, default=300, help="mutated run documents (default 300)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    fuzzing = _fuzzing()
    folder = Path(tempfile.mkdtemp(prefix="rmcheck-census-"))
    import rmcheck

    print(f"rmcheck from {Path(rmcheck.__file__).parent}")
    crashed = 0
    for kind, count, strategy, check in (
            ("suites", args.examples, fuzzing.mutants(), fuzzing.check),
            ("data files", args.files, fuzzing.data_files(), fuzzing.check_data),
            ("run documents", args.documents, fuzzing.run_documents(), fuzzing.check_document)):
        reached = dict(fuzzing.REACHED)
        found, ran, started = _census(count, args.seed, strategy, check, folder)
        crashed += sum(found.values())
        print(f"{kind}: {ran} examples in {time.time() - started:.0f} s: "
              f"{fuzzing.REACHED['loaded'] - reached.get('loaded', 0)} suites loaded, "
              f"{fuzzing.REACHED['judged'] - reached.get('judged', 0)} had tests judged by the engine; "
              f"{sum(found.values())} crashed ({100 * sum(found.values()) / max(1, ran):.1f}%), "
              f"{len(found)} signatures")
        for signature, times in found.most_common():
            print(f"  {times:6d}  {signature}")
    return 1 if crashed else 0


def _census(count: int, at: int, strategy: Any, check: Any, folder: Path) -> tuple[collections.Counter[str], int, float]:
    """Crash signatures over ``count`` examples of ``strategy``, the examples run, and when it started."""
    found: collections.Counter[str] = collections.Counter()
    ran = [0]
    started = time.time()

    @seed(at)
    @settings(max_examples=count, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(example: Any) -> None:
        ran[0] += 1
        crash = check(example, folder)
        if crash is not None:
            found[crash] += 1

    if count:
        run()
    return found, ran[0], started


if __name__ == "__main__":
    sys.exit(main())
