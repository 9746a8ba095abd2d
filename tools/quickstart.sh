#!/usr/bin/env bash
# Quick start on a fresh machine (CPU, ~10 minutes on 2 cores):
#   1. set up .venv with the pinned stack and mmris (tools/setup_env.sh),
#   2. generate the synthetic REFER-format dataset in data/synthetic if absent,
#   3. score the sentence-blind baseline (union of all objects) and the
#      untrained model on the synthetic val split,
#   4. train the tiny ETRIS-style model and evaluate it (benchmark table).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
PY=.venv/bin/python
CFG=configs/quickstart/etris-tiny_synthetic.py
WORK=${WORK_DIR:-work_dirs/quickstart}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
if [ ! -f data/synthetic/refcoco/instances.json ]; then
    $PY tools/dataset_converters/make_synthetic_refer.py data/synthetic --datasets refcoco
fi
echo "== baseline: union of all objects (ignores the sentence)"
$PY tools/analysis_tools/union_baseline.py data/synthetic --split val
echo "== before training: randomly initialised model"
$PY tools/test.py $CFG none --work-dir $WORK/before 2>&1 | grep -A 3 "mIoU |" | head -4
echo "== training"
$PY tools/train.py $CFG --work-dir $WORK
echo "== after training"
$PY tools/test.py $CFG $WORK/epoch_34.pth --work-dir $WORK/after 2>&1 | grep -A 3 "mIoU |" | head -4
