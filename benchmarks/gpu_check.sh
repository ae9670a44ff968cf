#!/usr/bin/env bash
# GPU checks, one prepared script for a machine with a CUDA device (run from the repository root).
# Each section prints its own table; a section that fails does not stop the others.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
status=0

echo "== shared-prefix scoring against full passes (issue 16), tiny Llama, float32 and bfloat16, best of 3"
for dtype in float32 bfloat16; do
  timeout 240 "$PY" benchmarks/bench_prefix.py --device cuda --dtype "$dtype" --cases 100 --repeats 3 || status=1
done

exit $status
