# Copyright (c) mmris contributors. All rights reserved.
"""tools/analysis_tools/benchmark.py --mode train on the tiny quick-start
config: the counted numbers are printed, parse, and match the model."""
import os.path as osp
import re
import subprocess
import sys

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import mmris  # noqa: F401

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'quickstart', 'etris-tiny_synthetic.py')
NUM = r'([0-9.]+)'


def _grab(pattern, text):
    m = re.search(pattern, text)
    assert m, f'{pattern!r} not in:\n{text}'
    return [float(g) for g in m.groups()]


@pytest.mark.slow
def test_train_mode_prints_counted_memory_and_flops():
    proc = subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools', 'analysis_tools',
                 'benchmark.py'), CONFIG, '--device', 'cpu', '--batch', '2',
        '--iters', '1', '--warmup', '0', '--memory-at-batch', '32'
    ],
                          cwd=ROOT,
                          capture_output=True,
                          text=True,
                          timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    print(out)
    act_mib, act_bytes, storages, gf_fwd, gf_bwd = _grab(
        r'per training image \(batch 2\): activations saved for backward '
        rf'{NUM} MiB \({NUM} bytes; {NUM} storages in the step\); GFLOP '
        rf'forward {NUM}, backward {NUM}', out)
    params, grads, state, static, static_bytes = _grab(
        rf'parameters {NUM} MiB \+ gradients {NUM} MiB \+ optimizer state '
        rf'{NUM} MiB = {NUM} MiB \({NUM} bytes\)', out)
    const, per, const_b, per_b = _grab(
        rf'counted activations vs batch \(batches 2 and 3\): {NUM} MiB \+ '
        rf'batch x {NUM} MiB \({NUM} \+ batch x {NUM} bytes\)', out)
    (at32, ) = _grab(rf'counted memory at batch 32 .*: {NUM} GiB', out)
    (tflop, ) = _grab(rf'counted TFLOP/step: {NUM}', out)
    _grab(rf'median ms/iter: {NUM}', out)

    cfg = Config.fromfile(CONFIG)
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)
    n_all = sum(p.numel() for p in model.parameters())
    trainable = [p for p in model.parameters() if p.requires_grad]
    n_train = sum(p.numel() for p in trainable)
    mib = 2**20
    assert abs(params - 4 * n_all / mib) < 0.01
    assert abs(grads - 4 * n_train / mib) < 0.01
    # Adam: two moments per trainable parameter + a float32 step per tensor.
    assert static_bytes == 4 * n_all + 4 * n_train + 8 * n_train + 4 * len(
        trainable)
    assert abs(static - (params + grads + state)) < 0.02
    assert act_bytes > 0 and storages > 10
    assert abs(act_mib - act_bytes / mib) < 0.01
    # Everything saved scales with the batch here (all weights train in
    # fp32: nothing is cast once per step).
    assert abs(const_b) < 0.01 * per_b
    assert abs(per_b - act_bytes) < 0.01 * act_bytes
    assert abs(at32 - (static_bytes + const_b + 32 * per_b) / 2**30) < 0.01
    # The backward of a network whose weights all train costs about twice
    # the forward.
    assert 1.5 < gf_bwd / gf_fwd < 2.5
    assert abs(tflop - 2 * (gf_fwd + gf_bwd) / 1e3) < 2e-4
