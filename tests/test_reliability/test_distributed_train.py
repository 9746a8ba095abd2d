# Copyright (c) mmris contributors. All rights reserved.
"""A 2-process gloo run on CPU (torchrun + tools/train.py --launcher pytorch)
trains each quick-start config for two iterations without
``find_unused_parameters`` (every trainable parameter gets a gradient), and
the distributed evaluation gives exactly the metrics of a single-process
tools/test.py run of the same checkpoint."""
import glob
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest

from ._helpers import ROOT, TEST, TINY_CONFIG, TRAIN, small_options


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


#: A rank aborted by the C++ runtime (std::terminate, SIGABRT). Seen
#: rarely (about 1 run in 10 of the BarLeRIa case on the loaded 2-core box,
#: never reproduced in isolation); a real training error ends in a Python
#: traceback instead, which is never retried.
_ABORT = 'terminate called without an active exception'


def _run(args, **env):
    for attempt in range(2):
        proc = subprocess.run(
            [sys.executable] + args,
            cwd=ROOT,
            env=dict(os.environ, OMP_NUM_THREADS='1', **env),
            capture_output=True,
            text=True,
            timeout=300)
        out = proc.stdout + proc.stderr
        if proc.returncode == 0 or _ABORT not in out or attempt:
            break
        print(f'retrying once after a rank abort:\n{out[-2000:]}')
        args = [
            f'--master_port={_free_port()}'
            if a.startswith('--master_port=') else a for a in args
        ]
    assert proc.returncode == 0, out[-4000:]
    return out


# after 2 iterations the probabilities are low: a low threshold gives
# non-trivial masks, so the comparison is not between all-zero metrics
THRESHOLD = 'model.test_cfg.threshold=0.01'
METRICS = ('mIoU', 'oIoU', 'Pr@50', 'Pr@60', 'Pr@70', 'Pr@80', 'Pr@90')


@pytest.mark.slow
def test_two_process_gloo_train_and_eval(synthetic_root, tmp_path):
    work = str(tmp_path / 'dist')
    # 36 objects, 2 ranks x batch 8, drop_last: 2 iterations per epoch
    opts = small_options(
        synthetic_root,
        batch_size=8,
        max_epochs=1,
        extra=[
            # no find_unused_parameters: DDP's default must work
            'env_cfg.dist_cfg.backend=gloo',
            # batch 1: each prediction is computed alone, so kernels chosen
            # for other batch sizes cannot add float noise to the comparison
            'val_dataloader.batch_size=1',
            THRESHOLD
        ])
    out = _run([
        '-m', 'torch.distributed.run', '--nproc_per_node=2',
        f'--master_port={_free_port()}', TRAIN, TINY_CONFIG, '--work-dir',
        work, '--launcher', 'pytorch'
    ] + opts)
    assert 'Distributed launcher: pytorch' in out or 'world_size: 2' in out \
        or "'world_size': 2" in out or 'Distributed training: True' in out
    assert 'Epoch(train) [1][2/2]' in out
    ckpt = osp.join(work, 'epoch_1.pth')
    assert osp.exists(ckpt)
    dist_metrics = {}
    for path in glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json')):
        for line in open(path):
            rec = json.loads(line)
            if 'mIoU' in rec:
                dist_metrics = rec
    assert dist_metrics, 'the distributed run logged no validation metrics'

    single = str(tmp_path / 'single')
    _run([TEST, TINY_CONFIG, ckpt, '--work-dir', single] + small_options(
        synthetic_root, extra=[THRESHOLD, 'test_dataloader.batch_size=1']))
    (path, ) = glob.glob(osp.join(single, '*', '*.json'))
    single_metrics = json.load(open(path))
    compared = [k for k in METRICS if k in single_metrics]
    assert 'mIoU' in compared and 'oIoU' in compared
    diffs = {k: abs(dist_metrics[k] - single_metrics[k]) for k in compared}
    print('2-process vs 1-process metrics:', dist_metrics, single_metrics)
    assert 0 < single_metrics['mIoU'] < 100
    assert max(diffs.values()) == 0, (dist_metrics, single_metrics)


@pytest.mark.slow
@pytest.mark.parametrize(
    'name', ['detris-tiny_synthetic.py', 'barleria-tiny_synthetic.py'])
def test_two_process_gloo_train_other_quickstart_configs(
        name, synthetic_root, tmp_path):
    """The DETRIS and BarLeRIa quick-start configs train under 2 gloo
    processes with DDP's defaults (the ETRIS one: the test above)."""
    config = osp.join(ROOT, 'configs', 'quickstart', name)
    work = str(tmp_path / 'dist')
    opts = small_options(
        synthetic_root,
        batch_size=8,
        max_epochs=1,
        extra=['env_cfg.dist_cfg.backend=gloo', 'train_cfg.val_interval=2'])
    out = _run([
        '-m', 'torch.distributed.run', '--nproc_per_node=2',
        f'--master_port={_free_port()}', TRAIN, config, '--work-dir', work,
        '--launcher', 'pytorch'
    ] + opts)
    assert 'Epoch(train) [1][2/2]' in out
    assert 'find_unused_parameters' not in out  # no DDP reducer error
    assert osp.exists(osp.join(work, 'epoch_1.pth'))
