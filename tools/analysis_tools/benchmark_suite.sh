#!/usr/bin/env bash
# Usage: tools/analysis_tools/benchmark_suite.sh [OUT_DIR] [benchmark.py args]
# Runs tools/analysis_tools/benchmark.py on the four paper configs (ETRIS
# ViT-B/16 416, BarLeRIa 416, DETRIS-B 448, DETRIS-L 448): training steps at
# the papers' per-GPU batch (4 = 32 over 8 GPUs) in fp16 (the official
# recipe: autocast + GradScaler) and bf16, with the counted memory at
# batch 4 and 32, and test-mode inference at batch 32. One log per run in
# OUT_DIR (default work_dirs/benchmark_suite). Meant for a GPU; on a CPU add
# e.g. "--device cpu --batch 1 --iters 0" (count only).
# BATCH, AMPS and CONFIGS override the defaults; DRY_RUN=1 only prints the
# commands.
set -eu
OUT=${1:-work_dirs/benchmark_suite}
shift || true
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
source "$ROOT/tools/find_python.sh"
BATCH=${BATCH:-4}
AMPS=${AMPS:-"fp16 bf16"}
CONFIGS=${CONFIGS:-"etris/etris_vit-b16_refcoco barleria/barleria_vit-b16_refcoco detris/detris-b_refcoco detris/detris-l_refcoco"}
BENCH="$ROOT/tools/analysis_tools/benchmark.py"

run() {  # run LOG ARGS...
    local log=$1
    shift
    echo "$PYTHON $BENCH $* > $log"
    if [ "${DRY_RUN:-0}" != 1 ]; then
        "$PYTHON" "$BENCH" "$@" > "$log" 2>&1 || echo "FAILED: see $log"
    fi
}

[ "${DRY_RUN:-0}" = 1 ] || mkdir -p "$OUT"
for c in $CONFIGS; do
    name=$(basename "$c")
    for amp in $AMPS; do
        run "$OUT/${name}_train_${amp}_b${BATCH}.log" "$ROOT/configs/$c.py" \
            --mode train --batch "$BATCH" --amp "$amp" \
            --memory-at-batch 4 32 "$@"
    done
    run "$OUT/${name}_infer_b32.log" "$ROOT/configs/$c.py" --mode infer \
        --batch 32 --amp bf16 "$@"
done
