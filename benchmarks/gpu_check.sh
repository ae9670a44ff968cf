#!/usr/bin/env bash
# GPU checks, one prepared script for a machine with a CUDA device (run from the repository root).
# Each section prints its own table; a section that fails does not stop the others.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
status=0

echo "== a ~1.2B-parameter Llama RM (Llama-3.2-1B's config, random weights): hf: pairs/s in bfloat16, float32 vs"
echo "   bfloat16/float16 parity, the vocabulary sweep's fast path (issue 12); JSON in \$OUT or .rmcheck/gpu_check"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" timeout 240 "$PY" benchmarks/gpu_check.py --out "${OUT:-.rmcheck/gpu_check}" \
  || status=1

echo "== shared-prefix scoring against full passes (issue 16), tiny Llama, float32 and bfloat16, best of 3"
for dtype in float32 bfloat16; do
  timeout 240 "$PY" benchmarks/bench_prefix.py --device cuda --dtype "$dtype" --cases 100 --repeats 3 || status=1
done
echo "== the same for dpo: (a tiny Llama policy and reference), bfloat16"
timeout 240 "$PY" benchmarks/bench_prefix.py --dpo --device cuda --dtype bfloat16 --cases 100 --repeats 3 || status=1

exit $status
