# Copyright (c) mmris contributors. All rights reserved.
"""Two training iterations and an evaluation of a tiny BarLeRIa model
through tools/train.py and tools/test.py on the synthetic REFER data (CPU)."""
import glob
import json
import os.path as osp

from .test_train_test import ROOT, _run, _small_options

CONFIG = osp.join(ROOT, 'configs', 'quickstart', 'barleria-tiny_synthetic.py')


def test_barleria_train_then_test(synthetic_root, tmp_path):
    work = str(tmp_path / 'work')
    # one epoch over the 36 training objects, batch 16, drop_last: 2 iters
    out = _run(
        [osp.join(ROOT, 'tools', 'train.py'), CONFIG, '--work-dir', work] +
        _small_options(synthetic_root), ROOT)
    assert 'Epoch(train) [1][2/2]' in out
    # the side network's reconstruction loss is logged next to the BCE
    assert 'loss_var' in out and 'loss_bce' in out
    assert 'mIoU' in out and 'oIoU' in out
    ckpt = osp.join(work, 'epoch_1.pth')
    assert osp.exists(ckpt)

    out = _run([
        osp.join(ROOT, 'tools', 'test.py'), CONFIG, ckpt, '--work-dir',
        str(tmp_path / 'test')
    ] + _small_options(synthetic_root), ROOT)
    for key in ('mIoU', 'oIoU', 'Pr@50', 'Pr@90'):
        assert key in out
    results = glob.glob(str(tmp_path / 'test' / '*' / '*.json'))
    assert results, 'test.py wrote no metrics json'
    metrics = json.load(open(results[0]))
    assert 0 <= metrics['mIoU'] <= 100 and 0 <= metrics['oIoU'] <= 100
