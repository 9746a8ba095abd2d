#!/usr/bin/env bash
# Compare the adapter methods on the quick-start data, with the same budget
# and seed (CPU; about 1 hour on 2 idle cores):
#   1. "pretrain" the tiny CLIP-shaped towers: the quick-start towers with
#      the neck and head and no adapter, all trained (PRE_EPOCHS epochs);
#   2. for each method, start from that model (load_from, non-strict: the
#      method's modules keep their initialisation), freeze both towers
#      entirely (model.backbone.trainable=()), train the method's modules and
#      the neck and head for EPOCHS epochs and evaluate on the val split.
# Methods: head only, ETRIS (Bridger), BarLeRIa (flows, Intertwiner, side
# network), DETRIS's Dense Aligner + Text Adapter on these towers, LoRA,
# AdaptFormer, VPT-deep. BarLeRIa runs as barleria-towers96 (its quick-start
# model on these towers; barleria-tiny has smaller ones). The DETRIS
# quick-start config has a DINOv2-shaped image tower, which this pretraining
# does not give: its Dense Aligner + Text Adapter run on these towers.
# Prints a markdown table of trainable parameters and val metrics.
#
# Environment: OMP_NUM_THREADS, WORK_DIR (work_dirs/methods), QS_DATA
# (data/quickstart), SEED (0), PRE_EPOCHS (4), EPOCHS (4), METHODS
# (space-separated config stems).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/find_python.sh
WORK=${WORK_DIR:-work_dirs/methods}
DATA=${QS_DATA:-data/quickstart}
SEED=${SEED:-0}
PRE_EPOCHS=${PRE_EPOCHS:-4}
EPOCHS=${EPOCHS:-4}
METHODS=${METHODS:-"head-only etris barleria-towers96 detris-adapters lora adaptformer vpt-deep"}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$WORK"

if [ ! -d "$DATA" ]; then
    "$PYTHON" tools/dataset_converters/make_synthetic_refer.py "$DATA" \
        --datasets refcoco --splits train=1280 val=80 testA=20 testB=20
fi
data_opts=()
for split in train val test; do
    data_opts+=("${split}_dataloader.dataset.data_root=$DATA")
done

pre="$WORK/pretrain"
if [ ! -f "$pre/epoch_$PRE_EPOCHS.pth" ]; then
    "$PYTHON" tools/train.py configs/quickstart/head-only-tiny_synthetic.py \
        --work-dir "$pre" --cfg-options "${data_opts[@]}" \
        randomness.seed="$SEED" train_cfg.max_epochs="$PRE_EPOCHS" \
        train_cfg.val_begin=100000 default_hooks.checkpoint.interval=1
fi

for method in $METHODS; do
    cfg=configs/quickstart/$method-tiny_synthetic.py
    out="$WORK/$method"
    if [ ! -f "$out/epoch_$EPOCHS.pth" ]; then
        "$PYTHON" tools/train.py "$cfg" --work-dir "$out" --cfg-options \
            "${data_opts[@]}" load_from="$pre/epoch_$PRE_EPOCHS.pth" \
            strict_load=False "model.backbone.trainable=()" \
            randomness.seed="$SEED" train_cfg.max_epochs="$EPOCHS" \
            train_cfg.val_begin=100000 default_hooks.checkpoint.interval=1
    fi
    "$PYTHON" tools/test.py "$cfg" "$out/epoch_$EPOCHS.pth" \
        --work-dir "$out/test" --cfg-options "${data_opts[@]}"
done

"$PYTHON" - "$WORK" "$METHODS" <<'PYEOF'
import glob
import json
import os.path as osp
import sys

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import mmris  # noqa: F401

work, methods = sys.argv[1], sys.argv[2].split()
init_default_scope('mmseg')
print('| method | adapter parameters | trainable parameters | mIoU | oIoU | '
      'Pr@50 | Pr@70 | Pr@90 |')
print('|---|---:|---:|---:|---:|---:|---:|---:|')
for method in methods:
    cfg = Config.fromfile(f'configs/quickstart/{method}-tiny_synthetic.py')
    cfg.model.backbone.trainable = ()
    model = MODELS.build(cfg.model)
    towers = sum(p.numel() for n, p in model.named_parameters()
                 if p.requires_grad and n.startswith('backbone.'))
    total = sum(p.numel() for p in model.parameters() if p.requires_grad)
    metrics = {}
    for log in sorted(glob.glob(osp.join(work, method, 'test', '**',
                                         '*.json'), recursive=True)):
        for line in open(log):
            record = json.loads(line) if line.strip().startswith('{') \
                else {}
            if 'mIoU' in record:
                metrics = record
    vals = [metrics.get(k, float('nan'))
            for k in ('mIoU', 'oIoU', 'Pr@50', 'Pr@70', 'Pr@90')]
    print(f'| {method} | {towers:,} | {total:,} | ' +
          ' | '.join(f'{v:.2f}' for v in vals) + ' |')
PYEOF
