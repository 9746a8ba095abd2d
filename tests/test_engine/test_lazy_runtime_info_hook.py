# Copyright (c) mmris contributors. All rights reserved.
"""LazyRuntimeInfoHook logs exactly what RuntimeInfoHook logs."""
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner

import mmris  # noqa: F401


class _Toy(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.linear(inputs)
        if mode == 'loss':
            return dict(loss_mse=((out - labels)**2).mean())
        return out


def _history(tmp_path, hook):
    torch.manual_seed(0)
    data = [
        dict(inputs=torch.randn(2), labels=torch.randn(1)) for _ in range(10)
    ]
    runner = Runner(
        model=_Toy(),
        work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=data,
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2,
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        default_hooks=dict(
            runtime_info=hook,
            logger=dict(type='LoggerHook', interval=2),
            checkpoint=dict(type='CheckpointHook', interval=10)),
        randomness=dict(seed=0),
        experiment_name=f'lazy_hook_{hook["type"]}',  # own message hub
        default_scope='mmseg')
    runner.train()
    buf = runner.message_hub.get_scalar('train/loss_mse')
    return list(buf.data[0]), runner.message_hub


def test_same_logged_values(tmp_path):
    ref, _ = _history(tmp_path / 'a', dict(type='RuntimeInfoHook'))
    lazy, hub = _history(tmp_path / 'b',
                         dict(type='LazyRuntimeInfoHook', interval=2))
    assert len(ref) == len(lazy) == 10
    assert ref == lazy
