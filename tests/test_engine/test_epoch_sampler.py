# Copyright (c) mmris contributors. All rights reserved.
"""RISEpochSampler / SampleKey: the training sentence draw is a pure
function of (seed, epoch, index) in dataloader workers too, and a resumed
epoch skips exactly the samples seen, whatever the new world size."""
import pickle

import pytest
import torch
from mmengine.dataset import DefaultSampler
from torch.utils.data import DataLoader, Dataset

import mmris  # noqa: F401
from mmris.datasets import RefCOCODataset
from mmris.datasets.samplers import RISEpochSampler, SampleKey
from mmris.engine.finite import all_finite, nonfinite_names


class _Draws(Dataset):
    """Returns (index, sentence drawn by RefCOCODataset._draw_sentence)."""

    def __len__(self):
        return 24

    def __getitem__(self, idx):
        return int(idx), RefCOCODataset._draw_sentence(self, idx, 1000)


def _sampler(n=10, rank=0, world=1, **kwargs):
    sampler = RISEpochSampler(list(range(n)), seed=3, **kwargs)
    sampler.rank, sampler.world_size = rank, world
    sampler.num_samples = -(-n // world)
    sampler.total_size = sampler.num_samples * world
    return sampler


def test_sample_key_is_an_int_carrying_seed_and_epoch():
    key = SampleKey(7, seed=3, epoch=2)
    assert key == 7 and key - 1 == 6 and [0] * 9 == [0] * 9
    assert list(range(10))[key] == 7
    back = pickle.loads(pickle.dumps(key))
    assert (int(back), back.seed, back.epoch) == (7, 3, 2)
    assert repr(back) == 'SampleKey(7, seed=3, epoch=2)'


@pytest.mark.parametrize('shuffle', [True, False])
def test_same_order_as_default_sampler(shuffle):
    ours = RISEpochSampler(list(range(11)), shuffle=shuffle, seed=5)
    ref = DefaultSampler(list(range(11)), shuffle=shuffle, seed=5)
    for epoch in (0, 1):
        ours.set_epoch(epoch)
        ref.set_epoch(epoch)
        keys = list(ours)
        assert keys == list(ref)
        assert {(k.seed, k.epoch) for k in keys} == {(5, epoch)}
        assert len(ours) == len(ref)


def test_skip_by_samples_seen_with_another_world_size():
    order = list(_sampler(12))  # world size 1: the global order
    # 2 ranks trained 2 iterations of 2 samples: the first 8 positions
    seen = [i for r in range(2) for i in list(_sampler(12, r, 2))[:4]]
    assert sorted(seen) == sorted(order[:8])
    # resumed on 3 ranks: the 4 remaining samples, each rank the same count
    rest = []
    for rank in range(3):
        sampler = _sampler(12, rank, 3)
        sampler.skip_next_epoch(8)
        mine = list(sampler)
        assert len(mine) == 2  # 4 samples padded to 6 (round_up)
        rest += mine
        assert len(list(sampler)) == 4  # the skip is for one epoch only
    assert set(rest) == set(order[8:])
    with pytest.raises(ValueError, match=r'num_samples must be in \[0, 12\]'):
        _sampler(12).skip_next_epoch(13)


def test_draw_in_persistent_workers_is_keyed():
    """The same sentences in the main process and in 2 persistent workers,
    different ones in the next epoch."""
    data = _Draws()
    draws = {}
    for workers in (0, 2):
        sampler = RISEpochSampler(data, seed=0)
        loader = DataLoader(
            data,
            batch_size=4,
            sampler=sampler,
            num_workers=workers,
            persistent_workers=workers > 0)
        for epoch in (0, 1):
            sampler.set_epoch(epoch)
            batches = [b for b in loader]
            draws[workers, epoch] = dict(
                zip(
                    torch.cat([b[0] for b in batches]).tolist(),
                    torch.cat([b[1] for b in batches]).tolist()))
    assert draws[0, 0] == draws[2, 0] and draws[0, 1] == draws[2, 1]
    assert draws[0, 0] != draws[0, 1]
    assert len(draws[0, 0]) == 24


def test_all_finite_fused_and_exact():
    good = [torch.ones(3), torch.zeros(2, 2), torch.empty(0)]
    assert all_finite(good)
    # finite but the norm overflows in fp32: still finite
    assert all_finite(good + [torch.full((4, ), 3e38)])
    bad = good + [torch.tensor([1.0, float('nan')])]
    assert not all_finite(bad)
    assert not all_finite([torch.tensor([float('-inf')], dtype=torch.half)])
    assert nonfinite_names([('a', bad[0]), ('b', bad[-1])]) == ['b']
