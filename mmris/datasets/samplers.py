# Copyright (c) mmris contributors. All rights reserved.
"""A training sampler whose indices carry the seed and the epoch.

Dataloader workers (above all persistent ones, ``persistent_workers=True``)
hold a copy of the dataset made when they started, so an epoch set on the
main process's dataset (``set_sentence_epoch``) never reaches them, and
their ``np.random`` streams depend on how many batches each worker loaded
since it started. A resumed run then draws other training sentences than an
uninterrupted one. :class:`RISEpochSampler` yields :class:`SampleKey` indices
(plain ``int`` subclasses) that carry ``(seed, epoch)`` through the worker
index queues, so ``RefCOCODataset`` draws the sentence of sample ``idx`` in
epoch ``e`` from an RNG keyed by ``(seed, e, idx)`` in any process, with any
number of workers.

It also resumes in the middle of an epoch by *samples seen*
(:meth:`RISEpochSampler.skip_next_epoch`): the first ``n`` positions of the
epoch's global order are dropped before the order is dealt to the ranks, so
the rest of the epoch is the same whatever the batch size or world size of
the resumed run.
"""
from typing import Iterator, List, Optional, Sized

import torch
from mmengine.dataset import DefaultSampler
from mmseg.registry import DATA_SAMPLERS

__all__ = ['SampleKey', 'RISEpochSampler']


class SampleKey(int):
    """A dataset index that also carries the sampler's seed and epoch.

    It behaves as the ``int`` it wraps (indexing, arithmetic, comparison);
    ``seed`` and ``epoch`` survive pickling (dataloader worker queues).

    Args:
        index (int): The dataset index.
        seed (int): The sampler's seed.
        epoch (int): The sampler's epoch.
    """

    seed: int
    epoch: int

    def __new__(cls, index: int, seed: int, epoch: int) -> 'SampleKey':
        obj = super().__new__(cls, index)
        obj.seed = int(seed)
        obj.epoch = int(epoch)
        return obj

    def __reduce__(self):
        return (SampleKey, (int(self), self.seed, self.epoch))

    def __repr__(self) -> str:
        return (f'SampleKey({int(self)}, seed={self.seed}, '
                f'epoch={self.epoch})')


@DATA_SAMPLERS.register_module()
class RISEpochSampler(DefaultSampler):
    """MMEngine's ``DefaultSampler`` (same order, same rank split) yielding
    :class:`SampleKey` indices, with a one-epoch skip for resuming.

    ``RISRunner`` uses it for training in place of a ``DefaultSampler``.

    Args:
        dataset (Sized): The dataset.
        shuffle (bool): Shuffle with ``seed + epoch``. Defaults to True.
        seed (int, optional): Shuffle and sentence-draw seed; the runner
            passes its seed. Defaults to None (a random seed shared by the
            ranks).
        round_up (bool): Pad to a multiple of the world size.
            Defaults to True.
    """

    def __init__(self,
                 dataset: Sized,
                 shuffle: bool = True,
                 seed: Optional[int] = None,
                 round_up: bool = True) -> None:
        super().__init__(
            dataset, shuffle=shuffle, seed=seed, round_up=round_up)
        self._skip = 0

    def skip_next_epoch(self, num_samples: int) -> None:
        """Leave out the first ``num_samples`` positions of the global order
        of the next epoch iterated (only that one).

        Args:
            num_samples (int): Samples of the epoch already trained, over all
                ranks (batches x batch size x world size).
        """
        if not 0 <= num_samples <= self.total_size:
            raise ValueError(
                f'RISEpochSampler.skip_next_epoch: num_samples must be in '
                f'[0, {self.total_size}] (the samples of one epoch), got '
                f'{num_samples}')
        self._skip = int(num_samples)

    def _global_order(self) -> List[int]:
        """The epoch's order over all ranks (shuffled and padded)."""
        n = len(self.dataset)
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            order = torch.randperm(n, generator=g).tolist()
        else:
            order = list(range(n))
        if self.round_up:
            order = (order * (self.total_size // n + 1))[:self.total_size]
        return order

    def __iter__(self) -> Iterator[int]:
        order = self._global_order()
        if self._skip:
            order = order[self._skip:]
            self._skip = 0
            if self.round_up and order:
                # every rank gets as many samples (no DDP hang)
                per_rank = -(-len(order) // self.world_size)
                order = (order * (per_rank * self.world_size // len(order) + 1)
                         )[:per_rank * self.world_size]
        mine = order[self.rank::self.world_size]
        return iter(SampleKey(i, self.seed, self.epoch) for i in mine)
