# Copyright (c) mmris contributors. All rights reserved.
"""``tools/quickstart.sh``: shows every step's own output, fails loudly."""
import os
import os.path as osp
import subprocess

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(ROOT, 'tools', 'quickstart.sh')


def _run(tmp_path, cfg_options: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        QS_SKIP_SETUP='1',
        QS_DATA=str(tmp_path / 'data'),
        QS_SPLITS='train=6 val=2 testA=1 testB=1',
        QS_CFG_OPTIONS=cfg_options,
        WORK_DIR=str(tmp_path / 'work'),
        OMP_NUM_THREADS='1',
        CUDA_VISIBLE_DEVICES='')
    return subprocess.run(['bash', SCRIPT],
                          cwd=ROOT,
                          env=env,
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT,
                          text=True,
                          timeout=600)


@pytest.mark.slow
def test_failing_evaluation_stops_with_its_error(tmp_path):
    proc = _run(tmp_path, 'test_evaluator.type=NoSuchMetric')
    assert proc.returncode != 0, proc.stdout[-3000:]
    # the evaluation's own error is shown, not filtered away
    assert 'NoSuchMetric' in proc.stdout
    # the script stopped there
    assert '== training' not in proc.stdout
    # the step before it ran and printed its table in full
    assert '== baseline: union of all objects' in proc.stdout


@pytest.mark.slow
def test_success_prints_each_table_once_with_its_border(tmp_path):
    proc = _run(
        tmp_path, 'train_cfg.max_epochs=1 train_dataloader.batch_size=3 '
        'train_dataloader.num_workers=0 train_dataloader.persistent_workers='
        'False val_dataloader.num_workers=0 val_dataloader.persistent_workers='
        'False test_dataloader.num_workers=0 '
        'test_dataloader.persistent_workers=False')
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:]
    ckpt = osp.join(str(tmp_path / 'work'), 'epoch_1.pth')
    assert f'== after training: {ckpt}' in out
    assert 'eta: ' in out  # training progress with its ETA
    # two evaluations (before / after), no extra table from training-time
    # validation; each table is printed whole (top border above the header)
    lines = out.splitlines()
    headers = [
        i for i, line in enumerate(lines)
        if line.startswith('|') and 'mIoU' in line and 'oIoU' in line
    ]
    after_union = [
        i for i in headers if i > lines.index('== before training: randomly '
                                              'initialised model')
    ]
    assert len(after_union) == 2, out[-3000:]
    for i in after_union:
        assert lines[i - 1].startswith('+-'), lines[i - 1]


def test_thread_rule_and_eta_interval_as_stated():
    """The script takes the thread count from the library rule
    (mmris/utils/tool_env.py, run by path) and states the logger interval
    of the config it trains."""
    import sys

    from mmengine.config import Config
    script = open(SCRIPT).read()
    assert '"$PY" mmris/utils/tool_env.py' in script
    env = {k: v for k, v in os.environ.items() if k != 'OMP_NUM_THREADS'}
    out = subprocess.run(
        [sys.executable,
         osp.join(ROOT, 'mmris', 'utils', 'tool_env.py')],
        capture_output=True,
        text=True,
        timeout=60,
        env=env).stdout
    assert 1 <= int(out) <= len(os.sched_getaffinity(0))
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', 'quickstart', 'etris-tiny_synthetic.py'))
    every = cfg.default_hooks.logger.interval
    assert f'the ETA every {every} iterations' in script
    assert 'every 50 iterations' not in script or every == 50
