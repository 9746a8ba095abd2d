#!/usr/bin/env bash
# Quick start on a fresh machine (CPU, ~10 minutes on 2 cores):
#   1. set up .venv with the pinned stack and mmris (tools/setup_env.sh),
#   2. generate the synthetic REFER-format dataset in data/quickstart if
#      absent (1280 training images, 80 val images),
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
DATA=data/quickstart
SPLITS="train=1280 val=80 testA=20 testB=20"
# (re)generate when absent or made with other split sizes
if [ ! -f $DATA/refcoco/instances.json ] || \
   [ "$(cat $DATA/.splits 2>/dev/null)" != "$SPLITS" ]; then
    $PY tools/dataset_converters/make_synthetic_refer.py $DATA --datasets refcoco \
        --splits $SPLITS > /dev/null
    echo "$SPLITS" > $DATA/.splits
fi
echo "== baseline: union of all objects (ignores the sentence)"
$PY tools/analysis_tools/union_baseline.py $DATA --split val
echo "== before training: randomly initialised model"
$PY tools/test.py $CFG none --work-dir $WORK/before 2>&1 | grep -A 3 "mIoU |" | head -4
echo "== training"
$PY tools/train.py $CFG --work-dir $WORK
echo "== after training"
$PY tools/test.py $CFG $WORK/epoch_4.pth --work-dir $WORK/after 2>&1 | grep -A 3 "mIoU |" | head -4
