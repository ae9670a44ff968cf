"""Count what the standing fuzzer finds, without stopping at the first crash (issue 17's figures).

    PYTHONPATH=. python benchmarks/fuzz_census.py --examples 10000 [--seed 0]

Generates mutants with tests/fuzzing.py's strategy (hypothesis, generation only), checks each exactly as
tests/test_fuzz.py does, and prints the number of examples, how many loaded and reached the engine, and
every crash signature with its count. Run it with another checkout first on PYTHONPATH to measure that
checkout (the "before" figure); tests/fuzzing.py is always this one's.
"""
from __future__ import annotations

import argparse
import collections
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings

HERE = Path(__file__).resolve().parent.parent


def _fuzzing():
    spec = importlib.util.spec_from_file_location("rmcheck_fuzzing", HERE / "tests" / "fuzzing.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    fuzzing = _fuzzing()
    folder = Path(tempfile.mkdtemp(prefix="rmcheck-census-"))
    found: collections.Counter[str] = collections.Counter()
    loaded = [0, 0]
    started = time.time()

    @seed(args.seed)
    @settings(max_examples=args.examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(fuzzing.mutants())
    def run(data: bytes) -> None:
        loaded[0] += 1
        crash = fuzzing.check(data, folder)
        if crash is not None:
            found[crash] += 1

    run()
    import rmcheck

    print(f"rmcheck from {Path(rmcheck.__file__).parent}")
    print(f"{loaded[0]} examples in {time.time() - started:.0f} s: {fuzzing.REACHED['loaded']} loaded, "
          f"{fuzzing.REACHED['judged']} had tests judged by the engine")
    print(f"{sum(found.values())} crashed "
          f"({100 * sum(found.values()) / max(1, loaded[0]):.1f}%), {len(found)} signatures")
    for signature, count in found.most_common():
        print(f"  {count:6d}  {signature}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
