# Copyright (c) mmris contributors. All rights reserved.
"""BroadcastBuffersHook: under 2 gloo processes every rank gets rank 0's
buffers before validation and testing, and rank 0's are left as they
were."""
import os.path as osp
import types

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

import mmris  # noqa: F401
from mmris.engine.hooks import BroadcastBuffersHook


def _model(rank):
    """A BatchNorm whose statistics differ per rank (its own batches)."""
    bn = nn.BatchNorm1d(3)
    bn.running_mean.fill_(rank + 1.0)
    bn.running_var.fill_(10.0 * (rank + 1))
    bn.num_batches_tracked.fill_(5 + rank)
    return nn.Sequential(bn)


def _worker(rank, init_file, out_dir, hook_point):
    dist.init_process_group(
        'gloo', init_method=f'file://{init_file}', rank=rank, world_size=2)
    try:
        runner = types.SimpleNamespace(model=_model(rank))
        getattr(BroadcastBuffersHook(), hook_point)(runner)
        state = runner.model.state_dict()
        torch.save({
            k: v.clone()
            for k, v in state.items()
        }, osp.join(out_dir, f'{hook_point}_{rank}.pt'))
    finally:
        dist.destroy_process_group()


def test_every_rank_gets_rank0_buffers(tmp_path):
    for hook_point in ('before_val_epoch', 'before_test_epoch'):
        mp.start_processes(
            _worker,
            args=(str(tmp_path / f'init_{hook_point}'), str(tmp_path),
                  hook_point),
            nprocs=2,
            start_method='fork')
        expected = _model(0).state_dict()
        for rank in (0, 1):
            got = torch.load(str(tmp_path / f'{hook_point}_{rank}.pt'))
            assert got.keys() == expected.keys()
            for key, value in expected.items():
                assert torch.equal(got[key], value), (hook_point, rank, key)


def test_no_op_outside_distributed_runs():
    runner = types.SimpleNamespace(model=_model(1))
    BroadcastBuffersHook().before_val_epoch(runner)
    assert torch.equal(runner.model[0].running_mean, torch.full((3, ), 2.0))
