# Copyright (c) mmris contributors. All rights reserved.
"""The two stack incompatibilities absorbed by ``mmris.compat``."""
import os
import pickle
import sys

import pytest
import torch
import torch.nn as nn
from mmengine.runner import load_checkpoint, save_checkpoint

import mmris  # noqa: F401
from mmris import compat
from mmris.compat import (UnsafeCheckpointError, safe_torch_load,
                          unsafe_checkpoint_loading)


def test_mmcv_ext_placeholder_only_without_compiled_ops():
    import mmseg.models  # noqa: F401  (imports mmcv.ops at module level)
    ext = sys.modules['mmcv._ext']
    if compat.MMCV_OPS_AVAILABLE:
        pytest.skip('full mmcv installed: the placeholder must not be used')
    assert ext.__spec__ is not None and ext.__spec__.name == 'mmcv._ext'
    with pytest.raises(RuntimeError, match='nms.*full "mmcv"'):
        ext.nms()
    # pure-torch helpers keep working
    from mmcv.ops import point_sample
    out = point_sample(torch.ones(1, 1, 4, 4), torch.rand(1, 3, 2))
    assert out.shape == (1, 1, 3)


class _Payload:
    """Unpickling this writes a file: a stand-in for malicious code."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / 'pwned'
    ckpt = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': _Payload(str(marker))}, ckpt)
    assert not marker.exists()
    with pytest.raises(UnsafeCheckpointError, match='evil.pth.*open'):
        safe_torch_load(str(ckpt))
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint(nn.Linear(1, 1), str(ckpt))
    assert not marker.exists()
    # The explicit, named opt-in does unpickle it.
    with unsafe_checkpoint_loading():
        safe_torch_load(str(ckpt))
    assert marker.exists()


def test_mmengine_checkpoint_roundtrip(tmp_path):
    from mmengine.logging import HistoryBuffer
    import numpy as np
    model = nn.Linear(3, 2)
    path = str(tmp_path / 'ckpt.pth')
    meta = dict(hist=HistoryBuffer([1.0, 2.0], [1, 1]), arr=np.arange(3),
                seed=np.int64(3), dtype=np.dtype('float32'))
    save_checkpoint(dict(state_dict=model.state_dict(), meta=meta), path)
    other = nn.Linear(3, 2)
    ckpt = load_checkpoint(other, path)
    assert torch.equal(other.weight, model.weight)
    assert isinstance(ckpt['meta']['hist'], HistoryBuffer)
    assert ckpt['meta']['seed'] == 3


def test_runner_save_then_resume(tmp_path):
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class ToyModel(BaseModel):

        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 1)

        def forward(self, inputs, labels=None, mode='tensor'):
            out = self.linear(inputs)
            if mode == 'loss':
                return dict(loss=((out - labels)**2).mean())
            return out

    data = [dict(inputs=torch.randn(2), labels=torch.randn(1))
            for _ in range(8)]

    def make_runner(resume):
        return Runner(
            model=ToyModel(),
            work_dir=str(tmp_path),
            train_dataloader=dict(
                dataset=data, sampler=dict(type='DefaultSampler',
                                           shuffle=False),
                batch_size=2, collate_fn=dict(type='default_collate')),
            optim_wrapper=dict(optimizer=dict(type='Adam', lr=0.1)),
            train_cfg=dict(by_epoch=True, max_epochs=2 if not resume else 3),
            default_hooks=dict(logger=dict(type='LoggerHook', interval=1)),
            resume=resume,
            default_scope='mmengine')

    runner = make_runner(False)
    runner.train()
    assert os.path.exists(tmp_path / 'epoch_2.pth')
    w = runner.model.linear.weight.detach().clone()
    resumed = make_runner(True)
    resumed.train()
    assert resumed.epoch == 3
    assert not torch.equal(resumed.model.linear.weight.detach(), w)
