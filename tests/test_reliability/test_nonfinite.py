# Copyright (c) mmris contributors. All rights reserved.
"""A non-finite loss stops training with the iteration and the sample ids
of the batch, before the optimizer step (no NaN in the weights)."""
import os

import pytest
import torch
from mmengine.config import Config

import mmris  # noqa: F401
from mmris.engine import build_runner
from mmris.engine.hooks import NonFiniteLossError, NonFiniteLossHook
from ._helpers import TINY_CONFIG


def _cfg(data_root, work_dir, **extra):
    cfg = Config.fromfile(TINY_CONFIG)
    cfg.work_dir = work_dir
    for split in ('train', 'val', 'test'):
        dl = cfg[f'{split}_dataloader']
        dl.dataset.data_root = data_root
        dl.num_workers = 0
        dl.persistent_workers = False
    cfg.train_dataloader.batch_size = 4
    cfg.train_cfg.max_epochs = 1
    cfg.default_hooks.checkpoint.interval = 1
    cfg.merge_from_dict(extra)
    return cfg


def test_nan_loss_stops_with_iteration_and_samples(synthetic_root, tmp_path):
    cfg = _cfg(synthetic_root, str(tmp_path / 'work'))
    assert dict(type='NonFiniteLossHook') in cfg.custom_hooks
    runner = build_runner(cfg)
    model = runner.model
    calls = []
    loss_fn = model.loss

    def poisoned_loss(inputs, data_samples):
        losses = loss_fn(inputs, data_samples)
        calls.append([ds.ref_id for ds in data_samples])
        if len(calls) == 3:  # the third iteration diverges
            losses = {k: v * float('nan') for k, v in losses.items()}
        return losses

    model.loss = poisoned_loss
    with pytest.raises(NonFiniteLossError) as info:
        runner.train()
    msg = str(info.value)
    assert 'Non-finite loss (loss=nan)' in msg
    assert 'at iteration 3 (epoch 1, batch 2)' in msg
    assert 'before the optimizer step' in msg
    for ref_id in calls[2]:
        assert f'ref_id={ref_id}, sent_id=' in msg
    assert msg.count('img_path=') == len(calls[2]) == 4
    assert 'COCO_train2014_' in msg
    # stopped before stepping: the weights are finite, nothing was saved
    for name, p in model.named_parameters():
        assert torch.isfinite(p).all(), name
    assert runner.iter == 2
    assert not any(f.endswith('.pth') for f in os.listdir(cfg.work_dir))


class _FakeRunner:
    iter = 41
    epoch = 2

    class logger:

        @staticmethod
        def error(msg):
            pass


def test_logged_losses_checked_after_iteration():
    from mmengine.structures import BaseDataElement
    hook = NonFiniteLossHook(check_before_step=False, max_samples=2)
    samples = [
        BaseDataElement(
            metainfo=dict(ref_id=i, sent_id=10 + i, img_path=f'im{i}.jpg'))
        for i in range(3)
    ]
    batch = dict(inputs=[], data_samples=samples)
    hook.after_train_iter(
        _FakeRunner, 5, batch, outputs=dict(loss=torch.tensor(0.5)))
    with pytest.raises(NonFiniteLossError) as info:
        hook.after_train_iter(
            _FakeRunner,
            5,
            batch,
            outputs=dict(
                loss=torch.tensor(float('inf')), acc=torch.tensor(1.)))
    msg = str(info.value)
    assert 'loss=inf' in msg and 'iteration 42 (epoch 3, batch 5)' in msg
    assert 'ref_id=0, sent_id=10, img_path=im0.jpg' in msg
    assert 'ref_id=1' in msg and 'ref_id=2' not in msg and '(+1 more)' in msg


def _huge_lr_cfg(data_root, work_dir, **extra):
    """SGD with lr=1e38: the loss of iteration 1 is finite, its update
    overflows some weights to +-inf (fp32) and the loss of iteration 2 is
    NaN. Checkpoints after every iteration."""
    return _cfg(
        data_root, work_dir, **{
            'optim_wrapper.optimizer': dict(type='SGD', lr=1e38),
            'default_hooks.checkpoint.by_epoch': False,
            'default_hooks.checkpoint.save_best': None,
            **extra
        })


def test_nonfinite_update_named_at_its_iteration(synthetic_root, tmp_path):
    from mmris.engine.hooks import NonFiniteParametersError
    cfg = _huge_lr_cfg(synthetic_root, str(tmp_path / 'work'))
    runner = build_runner(cfg)
    batches = []
    loss_fn = runner.model.loss

    def recorded_loss(inputs, data_samples):
        batches.append([ds.ref_id for ds in data_samples])
        return loss_fn(inputs, data_samples)

    runner.model.loss = recorded_loss
    with pytest.raises(NonFiniteParametersError) as info:
        runner.train()
    msg = str(info.value)
    params = [p for p in runner.model.parameters() if p.requires_grad]
    bad = sum(not torch.isfinite(p).all() for p in params)
    assert 0 < bad <= len(params)
    assert ('Non-finite parameters after the optimizer step of iteration 1 '
            '(epoch 1, batch 0)') in msg
    assert f'{bad} of {len(params)} trainable tensors hold NaN/inf' in msg
    assert 'The loss of iteration 1 was finite (loss=' in msg
    assert 'optim_wrapper.optimizer.lr' in msg
    # the samples named are those of iteration 1, the only one run
    assert len(batches) == 1
    for ref_id in batches[0]:
        assert f'ref_id={ref_id}, sent_id=' in msg
    # no checkpoint with the broken weights
    assert not any('.pth' in f for f in os.listdir(cfg.work_dir))


@pytest.mark.slow
def test_nonfinite_state_never_saved(synthetic_root, tmp_path):
    """Periodic check off: the save after iteration 1 is refused, and the
    NaN loss of iteration 2 blames the earlier update, not its batch."""
    from mmris.engine.hooks import NonFiniteParametersError
    cfg = _huge_lr_cfg(
        synthetic_root,
        str(tmp_path / 'work'),
        custom_hooks=[dict(type='NonFiniteLossHook', param_interval=0)])
    runner = build_runner(cfg)
    with pytest.raises(NonFiniteParametersError) as info:
        runner.train()
    msg = str(info.value)
    assert 'Refusing to save a checkpoint at iteration 1 (epoch 1)' in msg
    assert 'floating-point tensors of its state_dict hold NaN/inf' in msg
    assert not any('.pth' in f for f in os.listdir(cfg.work_dir))

    cfg = _huge_lr_cfg(
        synthetic_root,
        str(tmp_path / 'work2'),
        custom_hooks=[dict(type='NonFiniteLossHook', param_interval=0)],
        **{'default_hooks.checkpoint.interval': 100})
    runner = build_runner(cfg)
    with pytest.raises(NonFiniteParametersError) as info:
        runner.train()
    msg = str(info.value)
    assert 'Non-finite loss at iteration 2 (epoch 1, batch 1)' in msg
    assert 'trainable tensors already hold NaN/inf' in msg
    assert 'an optimizer step after iteration 0' in msg
    assert 'not the samples of this batch' in msg


def test_param_interval_argument_checked():
    with pytest.raises(ValueError, match='param_interval must be an int'):
        NonFiniteLossHook(param_interval=-1)
