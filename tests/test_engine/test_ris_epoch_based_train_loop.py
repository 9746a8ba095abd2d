# Copyright (c) mmris contributors. All rights reserved.
"""RISEpochBasedTrainLoop + RISTrainStateHook on a toy model: the dataloader
config it builds, the progress it saves, an exact mid-epoch resume through
public hooks, and the positions it refuses."""
import glob
import itertools
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.dataset import DefaultSampler
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from torch.utils.data import Dataset

import mmris  # noqa: F401
from mmris.datasets.samplers import RISEpochSampler
from mmris.engine import RISEpochBasedTrainLoop, RISRunner
from mmris.engine.loops.ris_epoch_based_train_loop import \
    reproducible_train_loader

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


class _Items(Dataset):

    def __len__(self):
        return 18

    def __getitem__(self, i):
        return dict(inputs=torch.tensor([float(i)]), data_samples=int(i))


class _Toy(BaseModel):
    """Records the samples of every training batch and a draw of the global
    torch RNG (what dropout would use)."""

    def __init__(self, seen):
        super().__init__()
        self.linear = nn.Linear(1, 1)
        self.seen = seen

    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = torch.stack(inputs)
        if mode == 'loss':
            self.seen.append((list(data_samples), torch.rand(1).item()))
            return dict(loss=self.linear(x).pow(2).mean())
        return self.linear(x)


class _Stop(Exception):
    pass


class _StopBefore(Hook):

    def __init__(self, iteration):
        self.iteration = iteration

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.iteration:
            raise _Stop


_RUNS = itertools.count()


def _runner(work_dir,
            seen,
            batch_size=3,
            resume=False,
            stop_before=0,
            sampler='DefaultSampler'):
    hooks = [dict(type='RISTrainStateHook')]
    if stop_before:
        hooks.append(_StopBefore(stop_before))
    return RISRunner(
        model=_Toy(seen),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=_Items(),
            sampler=dict(type=sampler, shuffle=True),
            batch_size=batch_size,
            num_workers=0),
        train_cfg=dict(type='RISEpochBasedTrainLoop', max_epochs=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(
            checkpoint=dict(
                type='RISCheckpointHook', by_epoch=False, interval=2),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=hooks,
        randomness=dict(seed=7),
        resume=resume,
        # one logger per runner: MMEngine names it after the start second,
        # and two runners of one second would share (and write) one log
        experiment_name=f'{osp.basename(str(work_dir))}-{next(_RUNS)}',
        default_scope='mmseg',
        cfg=dict(resume=resume))


def test_dataloader_config_gets_keyed_sampler_and_own_generator():
    cfg = dict(sampler=dict(type='DefaultSampler', shuffle=True), batch_size=2)
    out = reproducible_train_loader(cfg, seed=5)
    assert out['sampler'] == dict(type=RISEpochSampler, shuffle=True)
    assert cfg['sampler']['type'] == 'DefaultSampler'  # not in place
    expected = torch.Generator().manual_seed(5)
    assert torch.equal(out['generator'].get_state(), expected.get_state())
    by_class = reproducible_train_loader(
        dict(sampler=dict(type=DefaultSampler)), seed=None)
    assert by_class['sampler']['type'] is RISEpochSampler
    assert torch.equal(by_class['generator'].get_state(),
                       torch.Generator().manual_seed(0).get_state())
    other = reproducible_train_loader(
        dict(sampler=dict(type='InfiniteSampler')), seed=None)
    assert other['sampler'] == dict(type='InfiniteSampler')
    assert reproducible_train_loader('built', 0) == 'built'


def test_mid_epoch_resume_continues_exactly(tmp_path):
    """Stopped before iteration 4 of 6 per epoch, resumed from iter_2.pth
    (6 samples of epoch 1 trained): the samples and the RNG draws of every
    iteration after it are those of an uninterrupted run."""
    ref = []
    _runner(tmp_path / 'ref', ref).train()
    assert len(ref) == 12

    first = []
    runner = _runner(tmp_path / 'run', first, stop_before=4)
    assert isinstance(runner.train_loop, RISEpochBasedTrainLoop)
    assert isinstance(runner.train_loop.dataloader.sampler, RISEpochSampler)
    with pytest.raises(_Stop):
        runner.train()
    ckpt = torch.load(str(tmp_path / 'run' / 'iter_2.pth'), weights_only=False)
    assert ckpt['meta']['train_progress'] == dict(
        batch_size=3, world_size=1, global_batch_size=3, epoch_samples=6)
    assert set(ckpt['meta']['rng_state']) == {'numpy', 'torch', 'python'}

    resumed = []
    runner = _runner(tmp_path / 'run', resumed, resume=True)
    runner.train()
    assert resumed == ref[2:]  # iterations 3..12, same samples and draws
    log = open(glob.glob(str(tmp_path / 'run' / '*' / '*.log'))[-1]).read()
    assert 'Restored the numpy/torch/python RNG states' in log
    assert ('Resuming in the middle of epoch 1: skipping its first 2 '
            'batches (6 samples, already trained)') in log


def test_resume_positions(tmp_path):
    loop = _runner(tmp_path, [], batch_size=3).train_loop
    progress = dict(batch_size=2, world_size=1, global_batch_size=2)
    # same batch size: where it stopped
    assert loop.resume_position(
        dict(
            epoch=1,
            iter=8,
            train_progress=dict(
                progress, global_batch_size=3, epoch_samples=6))) == (6, 8)
    # batch 2 -> 3: 8 samples trained, iteration counter recounted
    assert loop.resume_position(
        dict(epoch=1, iter=10,
             train_progress=dict(progress, epoch_samples=8))) == (8, 6 + 2)
    # no train_progress (MMEngine's checkpoint): same batch size assumed
    assert loop.resume_position(dict(epoch=1, iter=8)) == (6, 8)
    with pytest.raises(
            ValueError,
            match='it was saved at iteration 13, '
            'epoch 1, and records no batch size'):
        loop.resume_position(dict(epoch=1, iter=13))

    plain = _runner(tmp_path / 'plain', [], sampler='InfiniteSampler')
    with pytest.raises(
            ValueError,
            match='8 samples of epoch 2 were trained, '
            'not a whole number of the current batches of 3'):
        plain.train_loop.resume_position(
            dict(
                epoch=1,
                iter=10,
                train_progress=dict(progress, epoch_samples=8)))


def test_every_training_config_selects_the_loop_and_the_hooks():
    configs = [
        p for p in glob.glob(
            osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
        if '_base_' not in p
    ]
    assert len(configs) > 20
    for path in configs:
        cfg = Config.fromfile(path)
        if cfg.get('train_cfg') is None:
            continue
        assert cfg.train_cfg.type == 'RISEpochBasedTrainLoop', path
        hooks = {h['type'] for h in cfg.default_hooks.values() if h}
        assert {
            'RISTrainStateHook', 'RISCheckpointHook', 'BroadcastBuffersHook',
            'PretrainedCheckHook'
        } <= hooks, path
        assert cfg.runner_type == 'RISRunner', path
