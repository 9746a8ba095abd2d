# Copyright (c) mmris contributors. All rights reserved.
"""``RISRunner``: MMEngine's Runner with strict checkpoint loading and
reproducible resume.

Differences from :class:`mmengine.runner.Runner` (select it with
``runner_type = 'RISRunner'``, set in ``configs/_base_/default_runtime.py``):

- ``load_from`` and ``resume`` load **strictly**: a checkpoint that does not
  fit the config raises :class:`~mmris.engine.checkpoint.CheckpointMismatchError`
  listing the missing, unexpected and shape-mismatched keys. Opt out with
  ``strict_load = False`` in the config (``--cfg-options strict_load=False``).
- Training is reproducible across interruptions, on CPU to the last bit:
  the train ``DefaultSampler`` becomes an
  :class:`~mmris.datasets.samplers.RISEpochSampler`, whose indices carry the
  seed and the epoch, so ``RefCOCODataset`` draws the training sentence of
  each object from an RNG keyed by ``(seed, epoch, index)`` in dataloader
  workers too (persistent ones included); the train dataloader gets its own
  ``torch.Generator``, so creating its iterator does not consume the global
  torch RNG (dropout masks); checkpoints record the numpy / torch / python
  RNG states, restored on resume.
- Checkpoints are written atomically (temporary file, ``fsync``, rename);
  ``--resume`` takes the newest checkpoint of the work dir that opens and
  holds finite weights, skipping (with a message) broken ones, and refuses
  an explicitly named broken one.
- Checkpoints record the samples trained in the current epoch and the
  global batch size (``meta['train_progress']``). Resuming in the middle of
  an epoch skips exactly those samples (in the sampler: nothing is loaded
  for them), also when the batch size or the number of processes changed.
- ``--launcher pytorch`` also works on CPU-only machines (gloo process
  group, DDP without ``device_ids``).
"""
import itertools
import os
import os.path as osp
import random
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
from mmengine.dataset import DefaultSampler
from mmengine.dist import master_only
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import EpochBasedTrainLoop, Runner
from mmengine.runner.checkpoint import _load_checkpoint

from mmris.checkpoint import (UnsafeCheckpointError, check_optimizer_state,
                              commit_file, extract_state_dict,
                              load_state_dict_strict, temporary_name)
from mmris.datasets.samplers import RISEpochSampler
from .pretrained_check import check_required_pretrained
from .resume import checkpoint_problem, find_resumable_checkpoint

__all__ = ['RISRunner', 'build_runner', 'iter_datasets', 'global_batch_size']

#: ``sampler.type`` values of a train dataloader that RISRunner replaces by
#: ``RISEpochSampler`` (same order, keyed indices).
_DEFAULT_SAMPLER_TYPES = ('DefaultSampler', 'mmengine.DefaultSampler',
                          DefaultSampler)


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


def global_batch_size(runner) -> int:
    """Samples per training iteration over all processes (batch size x
    world size) of ``runner``'s train dataloader."""
    loader = runner.train_dataloader
    batch = loader.batch_size
    if batch is None:
        batch = getattr(loader.batch_sampler, 'batch_size', None)
    if batch is None:
        raise ValueError('Cannot tell the batch size of the train '
                         'dataloader (no batch_size, no batch_sampler.'
                         'batch_size)')
    return int(batch) * runner.world_size


def _reproducible_train_loader(cfg: Any, seed: Optional[int]) -> Any:
    """The train dataloader config with a ``RISEpochSampler`` in place of a
    ``DefaultSampler`` and a private ``torch.Generator`` (built loaders and
    other samplers are returned as they are)."""
    if not isinstance(cfg, dict):
        return cfg
    cfg = cfg.copy()
    sampler = cfg.get('sampler')
    if isinstance(sampler, dict) and sampler.get(
            'type') in _DEFAULT_SAMPLER_TYPES:
        sampler = sampler.copy()
        sampler['type'] = RISEpochSampler
        cfg['sampler'] = sampler
    if cfg.get('generator') is None:
        cfg['generator'] = torch.Generator().manual_seed(
            0 if seed is None else int(seed))
    return cfg


class _RISRunnerStateHook(Hook):
    """Internal hook of :class:`RISRunner` (RNG states, sentence epoch,
    training progress in the checkpoint meta)."""

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
        meta = checkpoint.setdefault('meta', {})
        meta['rng_state'] = dict(
            numpy=np.random.get_state(),
            torch=torch.get_rng_state(),
            python=random.getstate())
        loop = getattr(runner, '_train_loop', None)
        if isinstance(loop, _ResumableEpochLoop):
            # saved inside the epoch (by iteration) or at its end
            inside = meta.get('epoch') == loop.epoch
            loader = runner.train_dataloader
            meta['train_progress'] = dict(
                batch_size=global_batch_size(runner) // runner.world_size,
                world_size=runner.world_size,
                global_batch_size=global_batch_size(runner),
                epoch_samples=min(loop.epoch_samples, _epoch_size(loader))
                if inside else 0)


def _epoch_size(loader) -> int:
    """Samples of one epoch over all ranks (padded)."""
    sampler = getattr(loader, 'sampler', None)
    total = getattr(sampler, 'total_size', None)
    return int(total) if total is not None else len(loader.dataset)


class _ResumableEpochLoop(EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` that counts the samples trained in the
    current epoch (``epoch_samples``, saved in the checkpoint meta) and,
    after a resume in the middle of an epoch, skips ``resume_skip`` samples:
    in the sampler when it is a ``RISEpochSampler`` (nothing is loaded for
    them), else by dropping whole batches."""

    resume_skip = 0
    epoch_samples = 0

    def run_epoch(self) -> None:
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
            else:  # resume() made sure skip is whole batches
                batches = itertools.islice(self.dataloader, first, None)
            what = (f'{first} batches ({skip} samples'
                    if skip % self._global_batch == 0 else
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

    def run_iter(self, idx, data_batch) -> None:
        # counted first: checkpoints saved after this iteration include it
        self.epoch_samples += self._global_batch
        super().run_iter(idx, data_batch)


@RUNNERS.register_module()
class RISRunner(Runner):
    """Runner with strict loading, atomic checkpoints and reproducible
    resume (module doc).

    The config key ``strict_load`` (default True) controls strictness.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._rng_state_to_restore = None
        self._resumed_meta: dict = {}
        self._preloaded = None  # (filename, checkpoint) already read
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
        self._train_dataloader = _reproducible_train_loader(
            self._train_dataloader, self.seed)
        loop = super().build_train_loop(loop)
        if type(loop) is EpochBasedTrainLoop:
            loop.__class__ = _ResumableEpochLoop
        return loop

    # -- saving ---------------------------------------------------------------
    @master_only
    def save_checkpoint(self,
                        out_dir: str,
                        filename: str,
                        file_client_args: Optional[dict] = None,
                        save_optimizer: bool = True,
                        save_param_scheduler: bool = True,
                        meta: Optional[dict] = None,
                        by_epoch: bool = True,
                        backend_args: Optional[dict] = None) -> None:
        """MMEngine's ``save_checkpoint``, written atomically to local
        folders: into a temporary file of ``out_dir``, ``fsync``-ed, then
        renamed onto ``filename``. A kill at any moment leaves either no file
        or a complete one (never a truncated ``filename``)."""
        kwargs = dict(
            file_client_args=file_client_args,
            save_optimizer=save_optimizer,
            save_param_scheduler=save_param_scheduler,
            meta=meta,
            by_epoch=by_epoch,
            backend_args=backend_args)
        if ('://' in str(out_dir) or file_client_args is not None
                or backend_args is not None):  # remote storage: no rename
            return super().save_checkpoint(out_dir, filename, **kwargs)
        final = osp.join(out_dir, filename)
        tmp = temporary_name(final)
        try:
            super().save_checkpoint(out_dir, osp.relpath(tmp, out_dir),
                                    **kwargs)
            commit_file(tmp, final)
        finally:
            if osp.exists(tmp):
                os.remove(tmp)

    # -- loading --------------------------------------------------------------
    def train(self):
        """Refuse to train random frozen encoders of a paper config
        (:func:`~mmris.engine.pretrained_check.check_required_pretrained`),
        then train as MMEngine's runner."""
        check_required_pretrained(self.cfg)
        return super().train()

    def load_or_resume(self) -> None:
        """As MMEngine's, but ``resume=True`` without ``load_from`` takes the
        newest checkpoint of the work dir that opens and holds finite
        weights (see :func:`~mmris.engine.resume.find_resumable_checkpoint`).
        A refused malicious file is an error, never skipped."""
        if self._has_loaded or not (self._resume and self._load_from is None):
            return super().load_or_resume()
        path, checkpoint = find_resumable_checkpoint(
            self.work_dir,
            load=lambda p: _load_checkpoint(p, map_location='cpu'),
            log=self.logger.warning,
            never_skip=(UnsafeCheckpointError, ))
        if path is None:
            self.logger.info(f'No checkpoint in {self.work_dir} to resume '
                             'from: training from the start.')
            return
        self.logger.info(f'Auto resumed from the latest checkpoint {path}.')
        self._preloaded = (path, checkpoint)
        self.resume(path)
        self._has_loaded = True

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
        preloaded, self._preloaded = self._preloaded, None
        if preloaded is not None and preloaded[0] == filename:
            checkpoint = preloaded[1]
        else:
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
        self._resumed_meta = meta if isinstance(meta, dict) else {}
        self._rng_state_to_restore = self._resumed_meta.get('rng_state')
        return checkpoint

    def resume(self, filename: str, *args, **kwargs) -> None:
        """MMEngine's ``resume``, refusing a checkpoint with NaN / inf
        weights, then restoring the RNG states and the position inside the
        epoch (by samples seen).

        Raises:
            RuntimeError: ``filename`` cannot be resumed from (non-finite
                weights, no training meta, or an epoch position that does
                not fit the current batch size).
        """
        if self._preloaded is None or self._preloaded[0] != filename:
            self._preloaded = (filename,
                               _load_checkpoint(filename, map_location='cpu'))
        problem = checkpoint_problem(self._preloaded[1])
        if problem is not None:
            self._preloaded = None
            raise RuntimeError(f'Cannot resume from {filename}: {problem}.')
        self._check_optimizer(filename, self._preloaded[1])
        super().resume(filename, *args, **kwargs)
        rng = self._rng_state_to_restore
        if rng:
            np.random.set_state(rng['numpy'])
            torch.set_rng_state(rng['torch'])
            random.setstate(rng['python'])
            self.logger.info('Restored the numpy/torch/python RNG states '
                             'of the checkpoint')
        self._resume_epoch_position(filename)

    def _check_optimizer(self, filename: str, checkpoint: dict) -> None:
        """Refuse, before anything is loaded, a checkpoint whose optimizer
        state belongs to another optimizer (MMEngine would load it and fail
        at the first step with a bare ``KeyError``)."""
        from mmengine.optim import OptimWrapper
        if 'optimizer' not in checkpoint:
            return
        self.optim_wrapper = self.build_optim_wrapper(self.optim_wrapper)
        if isinstance(self.optim_wrapper, OptimWrapper):
            check_optimizer_state(self.optim_wrapper.optimizer,
                                  checkpoint['optimizer'],
                                  f'Checkpoint "{filename}"')

    def _resume_epoch_position(self, filename: str) -> None:
        """Tell the train loop how many samples of the resumed epoch were
        already trained (``meta['train_progress']``)."""
        loop = self.train_loop
        if not isinstance(loop, _ResumableEpochLoop):
            return
        per_epoch = len(loop.dataloader)
        batch = global_batch_size(self)
        progress = self._resumed_meta.get('train_progress')
        epoch, it = loop._epoch, loop._iter
        if progress is None:  # not saved by RISRunner: same batch assumed
            done = it - epoch * per_epoch
            if not 0 <= done <= per_epoch:
                raise RuntimeError(
                    f'Cannot resume from {filename}: it was saved at '
                    f'iteration {it}, epoch {epoch}, and records no batch '
                    'size (meta["train_progress"]); with the current '
                    f'{per_epoch} iterations per epoch (batch size x '
                    f'processes = {batch}) iteration {it} is not in epoch '
                    f'{epoch + 1}. The batch size or the number of GPUs has '
                    'changed: resume with the ones of the interrupted run.')
            skip = done * batch
        else:
            skip = int(progress['epoch_samples'])
            before = int(progress['global_batch_size'])
            if before != batch:
                new_iter = epoch * per_epoch + skip // batch
                self.logger.warning(
                    f'The global batch size changed from {before} '
                    f'({progress["batch_size"]} x {progress["world_size"]} '
                    f'processes) to {batch} ({batch // self.world_size} x '
                    f'{self.world_size}): resuming epoch {epoch + 1} after '
                    f'the {skip} samples already trained; the iteration '
                    f'counter goes from {it} to {new_iter} (iterations of '
                    'the new batch size). Learning-rate schedules by '
                    'iteration keep their own step count.')
                loop._iter = new_iter
            sampler = getattr(loop.dataloader, 'sampler', None)
            if (skip % batch and not isinstance(sampler, RISEpochSampler)):
                raise RuntimeError(
                    f'Cannot resume from {filename}: {skip} samples of epoch '
                    f'{epoch + 1} were trained, not a whole number of the '
                    f'current batches of {batch}, and the train sampler '
                    f'{type(sampler).__name__} cannot skip single samples. '
                    'Use sampler=dict(type="RISEpochSampler") or resume with '
                    f'the global batch size {before}.')
        loop.resume_skip = min(skip, _epoch_size(loop.dataloader))


def build_runner(cfg) -> Runner:
    """Build the runner of ``cfg``: ``RUNNERS.build`` when ``runner_type``
    is set (e.g. ``RISRunner``), else ``Runner.from_cfg``."""
    if cfg.get('runner_type') is not None:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)
