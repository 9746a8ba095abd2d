#!/usr/bin/env bash
# Quick start on a fresh machine (CPU; ~10 minutes on 2 idle cores):
#   1. set up .venv with the pinned stack and mmris (tools/setup_env.sh),
#   2. generate the synthetic REFER-format dataset in data/quickstart if
#      absent (1280 training images, 80 val images),
#   3. score the sentence-blind baseline (union of all objects) and the
#      untrained model on the synthetic val split,
#   4. train the tiny ETRIS-style model (log lines every 25 iterations with
#      the ETA) and evaluate the final checkpoint.
# Any failing step stops the script with its own error message and a
# non-zero exit status.
#
# Environment overrides (all optional):
#   OMP_NUM_THREADS   CPU threads of the training/evaluation process
#                     (default: the cores that are free right now, >= 1)
#   WORK_DIR          output folder (default: work_dirs/quickstart)
#   QS_DATA           data root (default: data/quickstart)
#   QS_SPLITS         split sizes (default: "train=1280 val=80 testA=20 testB=20")
#   QS_CFG_OPTIONS    extra --cfg-options for training and evaluation
#   QS_SKIP_SETUP=1   do not run tools/setup_env.sh (the venv exists)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${QS_SKIP_SETUP:-0}" != 1 ]; then
    bash tools/setup_env.sh
fi
PY=.venv/bin/python
CFG=configs/quickstart/etris-tiny_synthetic.py
WORK=${WORK_DIR:-work_dirs/quickstart}
DATA=${QS_DATA:-data/quickstart}
SPLITS=${QS_SPLITS:-"train=1280 val=80 testA=20 testB=20"}
read -r -a EXTRA <<< "${QS_CFG_OPTIONS:-}"

# Threads: oversubscribing a busy box makes every step several times slower
# (measured: 2 threads on a 2-core box with one core taken by another job
# ran ~6x slower than 1 thread), so use the cores that are idle now: the
# rule every tool applies (mmris/utils/tool_env.py, run by path: it imports
# nothing heavy). One count for all steps, so that they are comparable.
if [ -z "${OMP_NUM_THREADS:-}" ]; then
    OMP_NUM_THREADS=$("$PY" mmris/utils/tool_env.py)
    echo "[quickstart] $(nproc) cores, $OMP_NUM_THREADS idle:" \
        "OMP_NUM_THREADS=$OMP_NUM_THREADS (set it to override)"
fi
export OMP_NUM_THREADS

cfg_options=(--cfg-options "train_dataloader.dataset.data_root=$DATA"
             "val_dataloader.dataset.data_root=$DATA"
             "test_dataloader.dataset.data_root=$DATA")
if [ ${#EXTRA[@]} -gt 0 ]; then
    cfg_options+=("${EXTRA[@]}")
fi

# (re)generate when absent or made with other split sizes
if [ ! -f "$DATA/refcoco/instances.json" ] || \
   [ "$(cat "$DATA/.splits" 2>/dev/null)" != "$SPLITS" ]; then
    echo "== generating the synthetic dataset in $DATA ($SPLITS)"
    # shellcheck disable=SC2086
    "$PY" tools/dataset_converters/make_synthetic_refer.py "$DATA" \
        --datasets refcoco --splits $SPLITS > /dev/null
    echo "$SPLITS" > "$DATA/.splits"
fi
# Run one step with its full output in $WORK/logs/<name>.log; the console
# shows the step's own log lines, tables and progress bars without the
# environment, config and hook dumps. A failing step prints the end of its
# log and stops the script with the step's exit status.
mkdir -p "$WORK/logs"
FILTER='
import re
import sys

stamp = re.compile(r"^\d\d/\d\d [\d:]+ - mmengine - [A-Z]+ - ")
dump = re.compile(r" - (INFO|DEBUG) - (Config:|Hooks will be executed.*)?$")
quiet = False
for line in iter(sys.stdin.readline, ""):
    if stamp.match(line):
        quiet = bool(dump.search(line.rstrip("\n")))
    if line.startswith("Traceback") or "Error" in line:
        quiet = False
    if not quiet:
        sys.stdout.write(line)
        sys.stdout.flush()
'
step() {
    local name=$1
    shift
    local log="$WORK/logs/$name.log"
    set +e
    "$@" 2>&1 | tee "$log" | "$PY" -u -c "$FILTER"
    local rc=${PIPESTATUS[0]}
    set -e
    if [ "$rc" -ne 0 ]; then
        echo "[quickstart] FAILED (exit $rc): $*"
        echo "[quickstart] last lines of $log:"
        tail -n 40 "$log"
        exit "$rc"
    fi
}

echo "== baseline: union of all objects (ignores the sentence)"
step union "$PY" tools/analysis_tools/union_baseline.py "$DATA" --split val
echo "== before training: randomly initialised model"
step test_before "$PY" tools/test.py $CFG none --work-dir "$WORK/before" \
    "${cfg_options[@]}"
echo "== training (the log prints the ETA every 25 iterations)"
# no validation inside training: the evaluation below prints the table once
step train "$PY" tools/train.py $CFG --work-dir "$WORK" "${cfg_options[@]}" \
    train_cfg.val_begin=100000
CKPT=$(cat "$WORK/last_checkpoint")
echo "== after training: $CKPT"
step test_after "$PY" tools/test.py $CFG "$CKPT" --work-dir "$WORK/after" \
    "${cfg_options[@]}"
echo "[quickstart] done; full logs in $WORK/logs/"
