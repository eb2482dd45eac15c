#!/usr/bin/env bash
# One prepared GPU check of kavi's kernels, under 8 minutes on one H100:
#   versions (driver, CUDA, torch, triton, cupy); the correctness gate on the GPU for every shipped kernel and
#   every adversarial candidate (tests/gpu/); `kavi bench-kernel --all` (ms, speedup with its 95% interval,
#   roofline fraction) and the issue's speed goals; the CuPy path. Everything goes into OUT_DIR/report.md.
#
#   usage: benchmarks/gpu_check.sh OUT_DIR        (from anywhere; KAVI_PYTHON picks the interpreter)
#
# Without a CUDA GPU it measures nothing: it says why, writes that into the report and exits 3.
# Each step has its own time limit (seconds: CORRECTNESS_S, BENCH_S, CUPY_S) and a step that fails or runs out
# of time is reported as such; the script exits 1 if any step did.
set -uo pipefail

if [ "$#" -ne 1 ]; then
    echo "usage: $0 OUT_DIR  (the folder the report is written into)" >&2
    exit 2
fi
mkdir -p "$1" || { echo "gpu_check: cannot create $1" >&2; exit 2; }
OUT=$(cd "$1" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
if [ -n "${KAVI_PYTHON:-}" ]; then PY=$KAVI_PYTHON
elif [ -x .venv/bin/python ]; then PY=.venv/bin/python
else PY=python3; fi
REPORT="$OUT/report.md"
CORRECTNESS_S=${CORRECTNESS_S:-180}
BENCH_S=${BENCH_S:-240}
CUPY_S=${CUPY_S:-40}
# The table times the 16-bit dtypes (every spec has both; the goals are about them): fp32 at the largest
# matmul and attention sizes alone would take minutes. BENCH_DTYPES="" times every dtype of every spec.
BENCH_DTYPES=${BENCH_DTYPES-"bfloat16 float16"}
export COLUMNS=160
failed=0

section() { printf '\n## %s\n\n```\n' "$1" | tee -a "$REPORT"; }
end_section() { printf '```\n' | tee -a "$REPORT"; }
step() {  # step LIMIT_S LABEL COMMAND...: run with a time limit, its output into the report
    local limit=$1 label=$2 started=$SECONDS code
    shift 2
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$REPORT"
    code=${PIPESTATUS[0]}
    if [ "$code" -eq 124 ] || [ "$code" -eq 137 ]; then
        echo "$label: STOPPED after ${limit}s (time limit)" | tee -a "$REPORT"; failed=1
    elif [ "$code" -ne 0 ]; then
        echo "$label: FAILED (exit $code)" | tee -a "$REPORT"; failed=1
    else
        echo "$label: ok in $((SECONDS - started))s" | tee -a "$REPORT"
    fi
}

printf '# kavi GPU check\n\n%s, commit %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" | tee "$REPORT"

section "Versions"
"$PY" benchmarks/gpu_check.py versions 2>&1 | tee -a "$REPORT"
end_section

if ! reason=$("$PY" benchmarks/gpu_check.py gpu 2>&1); then
    printf '\ngpu_check: NOT RUN: %s\nThis check needs a CUDA GPU; nothing was measured.\n' "$reason" | tee -a "$REPORT" >&2
    exit 3
fi

section "Correctness gate on the GPU: shipped kernels and adversarial candidates"
step "$CORRECTNESS_S" correctness "$PY" -m pytest -p no:cacheprovider -n 6 --dist load -q -rA \
    --junitxml="$OUT/correctness.xml" tests/gpu/test_kernels.py tests/gpu/test_adversarial.py
end_section

section "kavi bench-kernel --all (torch eager baseline in the same run; 95% bootstrap intervals)"
dtype_options=()
for dtype in $BENCH_DTYPES; do dtype_options+=(--dtype "$dtype"); done
step "$BENCH_S" bench "$PY" -m kavi bench-kernel --all --no-compile "${dtype_options[@]}" --out "$OUT/bench.json"
end_section

section "The issue's speed goals"
if [ -f "$OUT/bench.json" ]; then
    "$PY" benchmarks/gpu_check.py goals "$OUT/bench.json" 2>&1 | tee -a "$REPORT"
else
    echo "no bench.json: nothing to compare" | tee -a "$REPORT"
fi
end_section

section "The CuPy path (vector_scale_cupy, from its recording)"
step "$CUPY_S" cupy "$PY" benchmarks/gpu_check.py cupy "$OUT"
end_section

printf '\nTotal %ss. Report: %s\n' "$SECONDS" "$REPORT" | tee -a "$REPORT"
exit "$failed"
