# Copyright (c) mmris contributors. All rights reserved.
"""``RISEpochBasedTrainLoop``: MMEngine's epoch loop, reproducible and
resumable in the middle of an epoch.

Select it in the schedule config::

    train_cfg = dict(type='RISEpochBasedTrainLoop', max_epochs=50,
                     val_interval=1)

Its checkpoint side (the samples trained in the epoch in
``meta['train_progress']``, the RNG states, the resumed position handed
back to the loop) is :class:`~mmris.engine.hooks.RISTrainStateHook`,
registered by ``configs/_base_/default_runtime.py``.
"""
import itertools
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
from mmengine.dataset import DefaultSampler
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop
from mmseg.registry import LOOPS
from torch.utils.data import DataLoader

from mmris.datasets.samplers import RISEpochSampler

__all__ = [
    'RISEpochBasedTrainLoop', 'global_batch_size', 'epoch_size',
    'reproducible_train_loader'
]

#: ``sampler.type`` values of a train dataloader config that the loop
#: replaces by ``RISEpochSampler`` (same order, keyed indices).
DEFAULT_SAMPLER_TYPES = ('DefaultSampler', 'mmengine.DefaultSampler',
                         DefaultSampler)


def global_batch_size(runner) -> int:
    """Samples per training iteration over all processes (batch size x
    world size) of ``runner``'s train dataloader.

    Raises:
        ValueError: The dataloader has neither ``batch_size`` nor a batch
            sampler with one.
    """
    loader = runner.train_dataloader
    batch = loader.batch_size
    if batch is None:
        batch = getattr(loader.batch_sampler, 'batch_size', None)
    if batch is None:
        raise ValueError('Cannot tell the batch size of the train '
                         'dataloader (no batch_size, no batch_sampler.'
                         'batch_size)')
    return int(batch) * runner.world_size


def epoch_size(loader: DataLoader) -> int:
    """Samples of one epoch of ``loader`` over all ranks (padded to the
    world size when the sampler pads)."""
    sampler = getattr(loader, 'sampler', None)
    total = getattr(sampler, 'total_size', None)
    return int(total) if total is not None else len(loader.dataset)


def reproducible_train_loader(cfg: Any, seed: Optional[int]) -> Any:
    """The train dataloader config with a ``RISEpochSampler`` in place of a
    ``DefaultSampler`` and a private ``torch.Generator`` seeded with
    ``seed`` (0 when None), so that creating the dataloader's iterator does
    not consume the global torch RNG (dropout masks). A built dataloader is
    returned as it is; other samplers are kept.

    Args:
        cfg (dict | DataLoader): The ``train_dataloader`` of the config.
        seed (int, optional): The runner's seed.

    Returns:
        dict | DataLoader: A copy of ``cfg`` (never modified in place).
    """
    if not isinstance(cfg, dict):
        return cfg
    cfg = cfg.copy()
    sampler = cfg.get('sampler')
    if isinstance(sampler,
                  dict) and sampler.get('type') in DEFAULT_SAMPLER_TYPES:
        sampler = sampler.copy()
        sampler['type'] = RISEpochSampler
        cfg['sampler'] = sampler
    if cfg.get('generator') is None:
        cfg['generator'] = torch.Generator().manual_seed(0 if seed is
                                                         None else int(seed))
    return cfg


@LOOPS.register_module()
class RISEpochBasedTrainLoop(EpochBasedTrainLoop):
    """MMEngine's ``EpochBasedTrainLoop`` (same arguments), reproducible
    across interruptions and resumable in the middle of an epoch.

    - Its dataloader config gets a
      :class:`~mmris.datasets.samplers.RISEpochSampler` in place of a
      ``DefaultSampler`` (indices carrying the seed and the epoch, so the
      training sentence of each object is drawn from an RNG keyed by
      ``(seed, epoch, index)``, in dataloader workers too) and its own
      ``torch.Generator`` (:func:`reproducible_train_loader`).
    - It counts the samples trained in the current epoch
      (:attr:`epoch_samples`, over all ranks; saved in the checkpoint meta
      by :class:`~mmris.engine.hooks.RISTrainStateHook`).
    - After a resume in the middle of an epoch
      (:meth:`restore_progress`, called by that hook), it skips the samples
      already trained: in the sampler when it is a ``RISEpochSampler``
      (nothing is loaded for them, any batch size), else by dropping whole
      batches.

    The loop reads and, when the global batch size changed, moves the
    iteration counter of its base class (``self._iter``; ``self._epoch``
    as ``EpochBasedTrainLoop.run_epoch`` does): this is the subclass using
    its base's state, not access from outside.

    Args:
        runner (Runner): The runner.
        dataloader (DataLoader | dict): The train dataloader or its config.
        max_epochs (int): Total training epochs.
        val_begin (int): The epoch that begins validating. Defaults to 1.
        val_interval (int): Validation interval. Defaults to 1.
        dynamic_intervals (list[tuple[int, int]], optional): Milestones and
            validation intervals after them. Defaults to None.
    """

    def __init__(
            self,
            runner,
            dataloader: Union[DataLoader, Dict],
            max_epochs: int,
            val_begin: int = 1,
            val_interval: int = 1,
            dynamic_intervals: Optional[List[Tuple[int, int]]] = None) -> None:
        super().__init__(
            runner,
            reproducible_train_loader(dataloader, runner.seed),
            max_epochs,
            val_begin=val_begin,
            val_interval=val_interval,
            dynamic_intervals=dynamic_intervals)
        #: Samples (all ranks) trained in the current epoch so far,
        #: counted before each iteration runs.
        self.epoch_samples = 0
        #: Samples to skip at the start of the next epoch run (a resume).
        self.resume_skip = 0
        self._global_batch = 0

    # -- resuming -------------------------------------------------------------
    def resume_position(self, meta: dict) -> Tuple[int, int]:
        """Where the epoch of a checkpoint continues with this loop's
        dataloader.

        Args:
            meta (dict): The checkpoint's ``meta`` (``epoch``, ``iter`` and,
                when saved with :class:`~mmris.engine.hooks.
                RISTrainStateHook`, ``train_progress``).

        Returns:
            tuple[int, int]: The samples of the epoch already trained (to
            skip) and the iteration counter to continue from (``iter`` of
            the meta, recounted in the current batches when the global
            batch size changed).

        Raises:
            ValueError: The position cannot be continued here (the reason,
                to be prefixed with the checkpoint's name).
        """
        per_epoch = len(self.dataloader)
        batch = global_batch_size(self.runner)
        epoch, it = int(meta['epoch']), int(meta['iter'])
        progress = meta.get('train_progress')
        if progress is None:  # saved by MMEngine's runner: same batch assumed
            done = it - epoch * per_epoch
            if not 0 <= done <= per_epoch:
                raise ValueError(
                    f'it was saved at iteration {it}, epoch {epoch}, and '
                    'records no batch size (meta["train_progress"]); with '
                    f'the current {per_epoch} iterations per epoch (batch '
                    f'size x processes = {batch}) iteration {it} is not in '
                    f'epoch {epoch + 1}. The batch size or the number of GPUs '
                    'has changed: resume with the ones of the interrupted '
                    'run.')
            return min(done * batch, epoch_size(self.dataloader)), it
        skip = int(progress['epoch_samples'])
        before = int(progress['global_batch_size'])
        sampler = getattr(self.dataloader, 'sampler', None)
        if skip % batch and not isinstance(sampler, RISEpochSampler):
            raise ValueError(
                f'{skip} samples of epoch {epoch + 1} were trained, not a '
                f'whole number of the current batches of {batch}, and the '
                f'train sampler {type(sampler).__name__} cannot skip single '
                'samples. Use sampler=dict(type="RISEpochSampler") or resume '
                f'with the global batch size {before}.')
        if before != batch:
            it = epoch * per_epoch + skip // batch
        return min(skip, epoch_size(self.dataloader)), it

    def restore_progress(self, meta: dict) -> None:
        """Continue the epoch of a resumed checkpoint after the samples it
        already trained (called by
        :meth:`~mmris.engine.hooks.RISTrainStateHook.before_train`, after
        MMEngine's ``Runner.resume`` set the epoch and the iteration).

        Args:
            meta (dict): The resumed checkpoint's ``meta``.

        Raises:
            ValueError: See :meth:`resume_position`.
        """
        skip, it = self.resume_position(meta)
        progress = meta.get('train_progress')
        batch = global_batch_size(self.runner)
        if progress is not None and int(
                progress['global_batch_size']) != batch:
            world = self.runner.world_size
            self.runner.logger.warning(
                'The global batch size changed from '
                f'{progress["global_batch_size"]} ({progress["batch_size"]} x '
                f'{progress["world_size"]} processes) to {batch} '
                f'({batch // world} x {world}): resuming epoch '
                f'{self._epoch + 1} after the {skip} samples already trained; '
                f'the iteration counter goes from {self._iter} to {it} '
                '(iterations of the new batch size). Learning-rate schedules '
                'by iteration keep their own step count.')
            self._iter = it
        self.resume_skip = skip

    # -- running --------------------------------------------------------------
    def run_epoch(self) -> None:
        """Iterate over one epoch (after a resume: its untrained rest)."""
        skip, self.resume_skip = self.resume_skip, 0
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        self._global_batch = global_batch_size(self.runner)
        self.epoch_samples = skip
        batches, first = self.dataloader, skip // self._global_batch
        if skip:
            sampler = getattr(self.dataloader, 'sampler', None)
            if isinstance(sampler, RISEpochSampler):
                sampler.skip_next_epoch(skip)
            else:  # resume_position made sure skip is whole batches
                batches = itertools.islice(self.dataloader, first, None)
            what = (f'{first} batches ({skip} samples' if skip %
                    self._global_batch == 0 else
                    f'{skip} samples (batch size changed')
            print_log(
                f'Resuming in the middle of epoch {self._epoch + 1}: '
                f'skipping its first {what}, already trained)',
                logger='current')
        for idx, data_batch in enumerate(batches, start=first):
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1
        self.epoch_samples = 0

    def run_iter(self, idx: int, data_batch: Any) -> None:
        """Run one iteration, counting its samples first (a checkpoint saved
        after it includes them)."""
        self.epoch_samples += self._global_batch
        super().run_iter(idx, data_batch)
