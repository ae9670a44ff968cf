#!/usr/bin/env bash
# GPU checks, one prepared script for a machine with a CUDA device (run from the repository root).
#
#   bash benchmarks/gpu_check.sh [--tiny]
#
# Worst case under 8 minutes: every section has its own time limit (10 + 180 + 3 x 75 s, plus 5 s each to
# be killed: 440 s) and none may run past BUDGET seconds from the start (default 450). A section that fails or
# runs out of time does not stop the others; the exit status is 1 if any did. --tiny smoke-runs every
# section on CPU with small sizes. The prefix sections read HH-RLHF from ../shared/data, or from
# RMCHECK_HH_RLHF (on a device machine, copy the file into an ignored folder of the checkout and carry it).
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
BUDGET=${BUDGET:-450}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
TINY=()
REPEATS=2
PREFIX=(--device cuda --cases 60)
if [ "${1:-}" = "--tiny" ]; then
  TINY=(--tiny)
  REPEATS=1
  PREFIX=(--device cpu --cases 8 --threads 1)
fi
status=0

# within LIMIT COMMAND...: run COMMAND for at most LIMIT seconds, and never past BUDGET.
within() {
  local limit=$1 left=$((BUDGET - SECONDS))
  shift
  ((left < limit)) && limit=$left
  if ((limit < 10)); then
    echo "   skipped: the ${BUDGET} s budget is spent"
    status=1
    return
  fi
  timeout -k 5 "$limit" "$@"
  local code=$?
  if ((code != 0)); then
    ((code == 124 || code == 137)) && echo "   stopped at its ${limit} s limit" || echo "   failed (exit $code)"
    status=1
  fi
}

echo "== a ~1.2B-parameter Llama RM (Llama-3.2-1B's config, random weights): hf: pairs/s in bfloat16, float32 vs"
echo "   bfloat16/float16 parity, the vocabulary sweep's fast path (issue 12); JSON in \$OUT or .rmcheck/gpu_check"
[ ${#TINY[@]} -eq 0 ] && within 10 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
within 180 "$PY" benchmarks/gpu_check.py --out "${OUT:-.rmcheck/gpu_check}" "${TINY[@]}"

echo "== shared-prefix scoring against full passes (issue 16), tiny Llama, bfloat16 and float32, best of $REPEATS"
for dtype in bfloat16 float32; do
  within 75 "$PY" benchmarks/bench_prefix.py --dtype "$dtype" --repeats "$REPEATS" "${PREFIX[@]}"
done
echo "== the same for dpo: (a tiny Llama policy and reference), bfloat16"
within 75 "$PY" benchmarks/bench_prefix.py --dpo --dtype bfloat16 --repeats "$REPEATS" "${PREFIX[@]}"

echo "== done in ${SECONDS} s (budget ${BUDGET} s)"
exit $status
