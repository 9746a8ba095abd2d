# Copyright (c) mmris contributors. All rights reserved.
"""Two training iterations and an evaluation through tools/train.py and
tools/test.py on the synthetic REFER data (CPU)."""
import glob
import json
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# (config, loss terms that must be logged)
CONFIGS = [
    ('etris-tiny_synthetic.py', ('loss_bce', )),
    ('detris-tiny_synthetic.py', ('loss_bce', )),
    # BarLeRIa adds the side network's reconstruction loss
    ('barleria-tiny_synthetic.py', ('loss_bce', 'loss_var')),
]


def _small_options(data_root):
    return [
        '--cfg-options', f'train_dataloader.dataset.data_root={data_root}',
        f'val_dataloader.dataset.data_root={data_root}',
        f'test_dataloader.dataset.data_root={data_root}',
        'train_dataloader.batch_size=16', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False', 'train_cfg.max_epochs=1',
        'train_cfg.val_interval=1', 'default_hooks.checkpoint.interval=1'
    ]


def _run(args, cwd):
    proc = subprocess.run(
        [sys.executable] + args,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize('name,losses', CONFIGS)
def test_train_then_test(name, losses, synthetic_root, tmp_path):
    config = osp.join(ROOT, 'configs', 'quickstart', name)
    work = str(tmp_path / 'work')
    # one epoch over the 36 training objects, batch 16, drop_last: 2 iters
    out = _run(
        [osp.join(ROOT, 'tools', 'train.py'), config, '--work-dir', work] +
        _small_options(synthetic_root), ROOT)
    assert 'Epoch(train) [1][2/2]' in out
    for loss in losses:
        assert loss in out
    assert 'mIoU' in out and 'oIoU' in out
    ckpt = osp.join(work, 'epoch_1.pth')
    assert osp.exists(ckpt)

    out = _run([
        osp.join(ROOT, 'tools', 'test.py'), config, ckpt, '--work-dir',
        str(tmp_path / 'test')
    ] + _small_options(synthetic_root), ROOT)
    for key in ('mIoU', 'oIoU', 'Pr@50', 'Pr@90'):
        assert key in out
    assert 'task/s' in out and 'ETA' in out  # the evaluation progress bar
    results = glob.glob(str(tmp_path / 'test' / '*' / '*.json'))
    assert results, 'test.py wrote no metrics json'
    metrics = json.load(open(results[0]))
    assert 0 <= metrics['mIoU'] <= 100 and 0 <= metrics['oIoU'] <= 100
