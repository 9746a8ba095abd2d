# Copyright (c) mmris contributors. All rights reserved.
"""``RISRunner``: MMEngine's Runner plus the few things its public hooks,
loops and config cannot do (select it with ``runner_type = 'RISRunner'``,
set in ``configs/_base_/default_runtime.py``).

What mmris adds to MMEngine is done the MMEngine way wherever it can be
(``configs/_base_/default_runtime.py`` and ``schedules/*.py`` select
them):

- exact resume in the middle of an epoch:
  :class:`~mmris.engine.loops.RISEpochBasedTrainLoop` (``train_cfg``) and
  :class:`~mmris.engine.hooks.RISTrainStateHook` (RNG states and epoch
  position in the checkpoint meta, restored after a resume);
- atomic checkpoints: :class:`~mmris.engine.hooks.RISCheckpointHook`
  writing through :class:`~mmris.engine.atomic_local_backend.
  AtomicLocalBackend`;
- every rank evaluating the checkpointed model:
  :class:`~mmris.engine.hooks.BroadcastBuffersHook`;
- refusing random frozen encoders:
  :class:`~mmris.engine.hooks.PretrainedCheckHook`.

``RISRunner`` overrides only these methods, each because MMEngine 0.10.7
offers no hook or option for it:

- :meth:`setup_env` and :meth:`wrap_model`: ``--launcher pytorch`` on a
  CPU-only machine. MMEngine's launcher always calls
  ``torch.cuda.set_device`` and wraps the model in DDP with
  ``device_ids=[LOCAL_RANK]``, which fail without CUDA; here a gloo process
  group and DDP without ``device_ids`` are used instead.
- :meth:`load_checkpoint`: ``load_from`` / ``resume`` load **strictly**:
  a checkpoint that does not fit the model raises
  :class:`~mmris.checkpoint.CheckpointMismatchError` listing the missing,
  unexpected and shape-mismatched keys, before anything is loaded
  (MMEngine's ``strict=True`` only warns about shapes, after loading the
  rest). Opt out with ``strict_load = False`` in the config.
- :meth:`load_or_resume`: ``resume=True`` without ``load_from`` takes the
  newest checkpoint of the work dir that opens and holds finite weights,
  skipping (with a message) broken ones (MMEngine takes the file named by
  ``last_checkpoint``, whatever its state).
- :meth:`resume`: refuses, before loading anything, a checkpoint that
  cannot be resumed from (NaN / inf weights, no training meta, the state
  of another optimizer, an epoch position the current batch size cannot
  continue).

The runner reads the ``resume`` and ``load_from`` settings from its config
(``self.cfg``), as ``Runner.from_cfg`` / ``RUNNERS.build(cfg)`` build it.
"""
from typing import Callable, Optional, Union

import torch
from mmengine.registry import RUNNERS
from mmengine.runner import CheckpointLoader, Runner

from mmris.checkpoint import (UnsafeCheckpointError, check_optimizer_state,
                              extract_state_dict, load_state_dict_strict)
from .loops import RISEpochBasedTrainLoop
from .resume import checkpoint_problem, find_resumable_checkpoint

__all__ = ['RISRunner', 'build_runner']


def _read_checkpoint(filename: str,
                     map_location: Union[str, Callable] = 'cpu') -> dict:
    """``filename`` read by MMEngine's checkpoint loader (local files go
    through :func:`mmris.checkpoint.safe_torch_load`, registered by
    ``mmris.compat``)."""
    return CheckpointLoader.load_checkpoint(filename, map_location)


@RUNNERS.register_module()
class RISRunner(Runner):
    """MMEngine's ``Runner`` with strict checkpoint loading, a resume that
    falls back to the newest usable checkpoint and CPU-only distributed
    runs (module doc). Same arguments as ``Runner``.

    The config key ``strict_load`` (default True) controls strictness.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._preloaded = None  # (filename, checkpoint) already read
        self._checkpoint_loaded = False

    # -- CPU-only distributed runs --------------------------------------------
    def setup_env(self, env_cfg: dict) -> None:
        """MMEngine's ``setup_env``; on a machine without CUDA, the process
        group of a launcher is initialised here with gloo (MMEngine's
        ``init_dist`` calls ``torch.cuda.set_device``)."""
        import torch.distributed as torch_dist
        if (self.launcher != 'none' and not torch.cuda.is_available()
                and not torch_dist.is_initialized()):
            backend = (env_cfg or {}).get('dist_cfg', {}).get('backend')
            torch_dist.init_process_group(
                backend='gloo' if backend in (None, 'nccl') else backend)
        super().setup_env(env_cfg)

    def wrap_model(self, model_wrapper_cfg: Optional[dict],
                   model: torch.nn.Module):
        """MMEngine's ``wrap_model``; without CUDA, DDP gets no
        ``device_ids`` (MMEngine passes ``[LOCAL_RANK]``, which DDP refuses
        for CPU modules)."""
        if (self.distributed and not torch.cuda.is_available()
                and model_wrapper_cfg is None):
            from mmengine.model import MMDistributedDataParallel
            return MMDistributedDataParallel(
                module=model,
                device_ids=None,
                broadcast_buffers=False,
                find_unused_parameters=self.cfg.get('find_unused_parameters',
                                                    False))
        return super().wrap_model(model_wrapper_cfg, model)

    # -- loading --------------------------------------------------------------
    @property
    def strict_load(self) -> bool:
        """Whether checkpoints must match the model exactly."""
        return bool(self.cfg.get('strict_load', True))

    def _take_checkpoint(self,
                         filename: str,
                         map_location: Union[str, Callable] = 'cpu') -> dict:
        """The content of ``filename``: the copy already read to check it
        (once), else read now."""
        preloaded, self._preloaded = self._preloaded, None
        if preloaded is not None and preloaded[0] == filename:
            return preloaded[1]
        return _read_checkpoint(filename, map_location)

    def load_checkpoint(self,
                        filename: str,
                        map_location: Union[str, Callable] = 'cpu',
                        strict: Optional[bool] = None,
                        revise_keys: list = [(r'^module.', '')]) -> dict:
        """Load ``filename`` into the model, strictly unless ``strict_load``
        is False in the config (or ``strict=False`` is passed).

        Calls the ``after_load_checkpoint`` hooks first, as MMEngine does.

        Returns:
            dict: The checkpoint.

        Raises:
            CheckpointMismatchError: The checkpoint does not fit the model.
        """
        if strict is None:
            strict = self.strict_load
        checkpoint = self._take_checkpoint(filename, map_location)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        state = extract_state_dict(checkpoint, revise_keys)
        load_state_dict_strict(
            self.model,
            state,
            strict=strict,
            source=f'Checkpoint "{filename}"',
            logger=self.logger)
        self._checkpoint_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint

    def load_or_resume(self) -> None:
        """As MMEngine's, but ``resume=True`` without ``load_from`` takes the
        newest checkpoint of the work dir that opens and holds finite
        weights (see :func:`~mmris.engine.resume.find_resumable_checkpoint`).
        A refused malicious file is an error, never skipped. A checkpoint
        loaded already (by a call of :meth:`load_checkpoint`) is kept."""
        if self._checkpoint_loaded:
            return
        if not (self.cfg.get('resume', False)
                and self.cfg.get('load_from') is None):
            return super().load_or_resume()
        path, checkpoint = find_resumable_checkpoint(
            self.work_dir,
            load=_read_checkpoint,
            log=self.logger.warning,
            never_skip=(UnsafeCheckpointError, ))
        if path is None:
            self.logger.info(f'No checkpoint in {self.work_dir} to resume '
                             'from: training from the start.')
            return
        self.logger.info(f'Auto resumed from the latest checkpoint {path}.')
        self._preloaded = (path, checkpoint)
        self.resume(path)

    def resume(self, filename: str, *args, **kwargs) -> None:
        """MMEngine's ``resume``, after refusing a checkpoint that cannot be
        resumed from. The RNG states and the position inside the epoch are
        restored by :class:`~mmris.engine.hooks.RISTrainStateHook` in
        ``before_train``.

        Raises:
            RuntimeError: ``filename`` cannot be resumed from (non-finite
                weights, no training meta, or an epoch position that the
                current batch size cannot continue).
            OptimizerMismatchError: It holds the state of another optimizer.
        """
        if self._preloaded is None or self._preloaded[0] != filename:
            self._preloaded = (filename, _read_checkpoint(filename))
        checkpoint = self._preloaded[1]
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            loop = self.train_loop
            if isinstance(loop, RISEpochBasedTrainLoop):
                try:
                    loop.resume_position(checkpoint['meta'])
                except ValueError as exc:
                    problem = str(exc)
        if problem is not None:
            self._preloaded = None
            end = '' if problem.endswith('.') else '.'
            raise RuntimeError(
                f'Cannot resume from {filename}: {problem}{end}')
        self._check_optimizer(filename, checkpoint)
        super().resume(filename, *args, **kwargs)

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


def build_runner(cfg) -> Runner:
    """Build the runner of ``cfg``: ``RUNNERS.build`` when ``runner_type``
    is set (e.g. ``RISRunner``), else ``Runner.from_cfg``."""
    if cfg.get('runner_type') is not None:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)
