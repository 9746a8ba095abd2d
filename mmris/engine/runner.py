# Copyright (c) mmris contributors. All rights reserved.
"""``RISRunner``: MMEngine's Runner with strict checkpoint loading and
reproducible resume.

Differences from :class:`mmengine.runner.Runner` (select it with
``runner_type = 'RISRunner'``, set in ``configs/_base_/default_runtime.py``):

- ``load_from`` and ``resume`` load **strictly**: a checkpoint that does not
  fit the config raises :class:`~mmris.engine.checkpoint.CheckpointMismatchError`
  listing the missing, unexpected and shape-mismatched keys. Opt out with
  ``strict_load = False`` in the config (``--cfg-options strict_load=False``).
- Checkpoints record the numpy / torch / python RNG states, restored on
  resume.
- Before every training epoch the train dataset(s) are told the epoch and
  the seed (``set_sentence_epoch``), so ``RefCOCODataset`` draws the
  training sentence of each object from an RNG keyed by
  ``(seed, epoch, index)`` (main-process loading, ``num_workers=0``).
- ``--launcher pytorch`` also works on CPU-only machines (gloo process
  group, DDP without ``device_ids``).
- A plain ``EpochBasedTrainLoop`` resumed from a checkpoint saved in the
  middle of an epoch (``CheckpointHook(by_epoch=False)``) skips the batches
  of that epoch that were already trained, instead of running the whole
  epoch again.
"""
import random
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import EpochBasedTrainLoop, Runner
from mmengine.runner.checkpoint import _load_checkpoint

from .checkpoint import extract_state_dict, load_state_dict_strict

__all__ = ['RISRunner', 'build_runner', 'iter_datasets']


def iter_datasets(dataset: Any):
    """Yield ``dataset`` and every dataset wrapped inside it
    (``ConcatDataset.datasets``, ``RepeatDataset.dataset``, ...)."""
    yield dataset
    for child in getattr(dataset, 'datasets', None) or []:
        yield from iter_datasets(child)
    inner = getattr(dataset, 'dataset', None)
    if inner is not None and inner is not dataset:
        yield from iter_datasets(inner)


def _sync_buffers_from_rank0(model: torch.nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm running statistics).

    DDP broadcasts buffers only inside its own forward, which MMEngine's
    ``val_step``/``test_step`` bypass, and each rank updates its BN
    statistics locally in the last training step. Without this, ranks would
    evaluate slightly different models, none exactly the checkpointed one
    (rank 0's). With SyncBN the buffers are already equal.
    """
    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized()
            and dist.get_world_size() > 1):
        return
    module = getattr(model, 'module', model)
    for buf in module.buffers():
        dist.broadcast(buf.data, src=0)


class _RISRunnerStateHook(Hook):
    """Internal hook of :class:`RISRunner` (RNG states, sentence epoch)."""

    priority = 'NORMAL'

    def before_train_epoch(self, runner) -> None:
        dataset = getattr(runner.train_loop.dataloader, 'dataset', None)
        for ds in iter_datasets(dataset):
            if hasattr(ds, 'set_sentence_epoch'):
                ds.set_sentence_epoch(runner.epoch, runner.seed)

    def before_val_epoch(self, runner) -> None:
        _sync_buffers_from_rank0(runner.model)

    def before_test_epoch(self, runner) -> None:
        _sync_buffers_from_rank0(runner.model)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})['rng_state'] = dict(
            numpy=np.random.get_state(),
            torch=torch.get_rng_state(),
            python=random.getstate())


class _ResumableEpochLoop(EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` that skips the already-trained batches of an
    epoch interrupted after a by-iteration checkpoint."""

    def run_epoch(self) -> None:
        skip = self._iter - self._epoch * len(self.dataloader)
        if skip <= 0:
            return super().run_epoch()
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        print_log(
            f'Resuming in the middle of epoch {self._epoch + 1}: skipping '
            f'its first {skip} batches (already trained)', logger='current')
        for idx, data_batch in enumerate(self.dataloader):
            if idx < skip:
                continue
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1


@RUNNERS.register_module()
class RISRunner(Runner):
    """Runner with strict loading and reproducible resume (module doc).

    The config key ``strict_load`` (default True) controls strictness.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._rng_state_to_restore = None
        self.register_hook(_RISRunnerStateHook())

    def setup_env(self, env_cfg) -> None:
        # MMEngine's pytorch launcher calls torch.cuda.set_device: on a CPU
        # machine, initialise the (gloo) process group here instead.
        import torch.distributed as torch_dist
        if (self._launcher != 'none' and not torch.cuda.is_available()
                and not torch_dist.is_initialized()):
            backend = (env_cfg or {}).get('dist_cfg', {}).get('backend')
            torch_dist.init_process_group(
                backend='gloo' if backend in (None, 'nccl') else backend)
        super().setup_env(env_cfg)

    def wrap_model(self, model_wrapper_cfg, model):
        if (self.distributed and not torch.cuda.is_available()
                and model_wrapper_cfg is None):
            from mmengine.model import MMDistributedDataParallel
            # CPU modules take no device_ids
            return MMDistributedDataParallel(
                module=model,
                device_ids=None,
                broadcast_buffers=False,
                find_unused_parameters=self.cfg.get('find_unused_parameters',
                                                    False))
        return super().wrap_model(model_wrapper_cfg, model)

    @property
    def strict_load(self) -> bool:
        """Whether checkpoints must match the model exactly."""
        return bool(self.cfg.get('strict_load', True))

    def build_train_loop(self, loop):
        loop = super().build_train_loop(loop)
        if type(loop) is EpochBasedTrainLoop:
            loop.__class__ = _ResumableEpochLoop
        return loop

    def load_checkpoint(self,
                        filename: str,
                        map_location: Union[str, Callable] = 'cpu',
                        strict: Optional[bool] = None,
                        revise_keys: list = [(r'^module.', '')]):
        """Load ``filename`` into the model, strictly unless ``strict_load``
        is False in the config (or ``strict=False`` is passed).

        Raises:
            CheckpointMismatchError: The checkpoint does not fit the model.
        """
        if strict is None:
            strict = self.strict_load
        checkpoint = _load_checkpoint(filename, map_location=map_location)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        state = extract_state_dict(checkpoint, revise_keys)
        load_state_dict_strict(
            self.model,
            state,
            strict=strict,
            source=f'Checkpoint "{filename}"',
            logger=self.logger)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        meta = checkpoint.get('meta', {}) if isinstance(checkpoint,
                                                        dict) else {}
        self._rng_state_to_restore = meta.get('rng_state')
        return checkpoint

    def resume(self, filename: str, *args, **kwargs) -> None:
        super().resume(filename, *args, **kwargs)
        rng = self._rng_state_to_restore
        if rng:
            np.random.set_state(rng['numpy'])
            torch.set_rng_state(rng['torch'])
            random.setstate(rng['python'])
            self.logger.info('Restored the numpy/torch/python RNG states '
                             'of the checkpoint')


def build_runner(cfg) -> Runner:
    """Build the runner of ``cfg``: ``RUNNERS.build`` when ``runner_type``
    is set (e.g. ``RISRunner``), else ``Runner.from_cfg``."""
    if cfg.get('runner_type') is not None:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)
