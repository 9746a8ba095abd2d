# Copyright (c) mmris contributors. All rights reserved.
"""``RISTrainStateHook``: what exact resuming needs in and out of the
checkpoints, through MMEngine's public hook points."""
import random
from typing import Any, Iterator, Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from ..loops.ris_epoch_based_train_loop import (RISEpochBasedTrainLoop,
                                                epoch_size, global_batch_size)

__all__ = ['RISTrainStateHook', 'iter_datasets']


def iter_datasets(dataset: Any) -> Iterator[Any]:
    """Yield ``dataset`` and every dataset wrapped inside it
    (``ConcatDataset.datasets``, ``RepeatDataset.dataset``, ...)."""
    yield dataset
    for child in getattr(dataset, 'datasets', None) or []:
        yield from iter_datasets(child)
    inner = getattr(dataset, 'dataset', None)
    if inner is not None and inner is not dataset:
        yield from iter_datasets(inner)


@HOOKS.register_module()
class RISTrainStateHook(Hook):
    """Training state that makes a resumed run continue exactly
    (registered by ``configs/_base_/default_runtime.py`` in
    ``default_hooks``, so that configs replacing ``custom_hooks`` keep it).

    - ``before_save_checkpoint``: records the numpy / torch / python RNG
      states (``meta['rng_state']``) and, with a
      :class:`~mmris.engine.loops.RISEpochBasedTrainLoop`, the samples
      trained in the current epoch and the batch size
      (``meta['train_progress']``: ``epoch_samples``, ``batch_size``,
      ``world_size``, ``global_batch_size``).
    - ``after_load_checkpoint``: keeps the loaded checkpoint's meta.
    - ``before_train`` of a resumed run (``resume=True`` in the config):
      restores the RNG states (here, after MMEngine's ``Runner.resume``,
      which re-seeds the RNGs when the checkpoint's seed differs from the
      config's) and hands the epoch position to the loop
      (:meth:`~mmris.engine.loops.RISEpochBasedTrainLoop.restore_progress`).
    - ``before_train_epoch``: tells the datasets the epoch
      (``set_sentence_epoch(epoch, seed)``), which keys the random training
      sentence of each object in the main process.
    """

    # before_train runs first, right after the resume as it were: the
    # iteration counter (moved when the batch size changed) must be final
    # before RuntimeInfoHook and IterTimerHook read it, and no other hook
    # may draw from the RNGs before they are restored
    priority = 'HIGHEST'

    def __init__(self) -> None:
        self._loaded_meta: Optional[dict] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Record the RNG states and the position in the epoch."""
        meta = checkpoint.setdefault('meta', {})
        meta['rng_state'] = dict(
            numpy=np.random.get_state(),
            torch=torch.get_rng_state(),
            python=random.getstate())
        loop = runner.train_loop
        if not isinstance(loop, RISEpochBasedTrainLoop):
            return
        # saved inside the epoch (by iteration, meta epoch = the current
        # one) or at its end (by epoch, meta epoch = the next one)
        inside = meta.get('epoch') == loop.epoch
        batch = global_batch_size(runner)
        meta['train_progress'] = dict(
            batch_size=batch // runner.world_size,
            world_size=runner.world_size,
            global_batch_size=batch,
            epoch_samples=min(loop.epoch_samples, epoch_size(loop.dataloader))
            if inside else 0)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep the meta of the checkpoint just loaded."""
        meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
        self._loaded_meta = meta if isinstance(meta, dict) else None

    def before_train(self, runner) -> None:
        """After a resume: restore the RNG states and the epoch position.

        Raises:
            RuntimeError: The loop cannot continue the checkpoint's epoch
                (``RISRunner.resume`` refuses such a checkpoint before
                loading it; this is for other runners).
        """
        meta, self._loaded_meta = self._loaded_meta, None
        if meta is None or not runner.cfg.get('resume', False):
            return  # nothing loaded, or load_from without resume
        rng = meta.get('rng_state')
        if rng:
            np.random.set_state(rng['numpy'])
            torch.set_rng_state(rng['torch'])
            random.setstate(rng['python'])
            runner.logger.info('Restored the numpy/torch/python RNG states '
                               'of the checkpoint')
        loop = runner.train_loop
        if isinstance(loop, RISEpochBasedTrainLoop):
            try:
                loop.restore_progress(meta)
            except ValueError as exc:
                raise RuntimeError(
                    f'Cannot resume from the checkpoint: {exc}') from None

    def before_train_epoch(self, runner) -> None:
        """Tell the datasets the epoch of their sentence draw."""
        dataset = getattr(runner.train_dataloader, 'dataset', None)
        for ds in iter_datasets(dataset):
            if hasattr(ds, 'set_sentence_epoch'):
                ds.set_sentence_epoch(runner.epoch, runner.seed)
