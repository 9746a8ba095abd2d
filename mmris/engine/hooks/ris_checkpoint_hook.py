# Copyright (c) mmris contributors. All rights reserved.
"""``CheckpointHook`` that never leaves the work dir without a complete
checkpoint, whenever the process is killed."""
import os.path as osp
from typing import List

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmseg.registry import HOOKS

from mmris.checkpoint import remove_stale_temporaries, write_text_atomic
from ..atomic_local_backend import ATOMIC_LOCAL_BACKEND_ARGS

__all__ = ['RISCheckpointHook']


class _DeferredRemoval:
    """File-backend proxy that records ``remove`` / ``rmtree`` calls instead
    of running them (everything else is passed through)."""

    def __init__(self, backend) -> None:
        self._backend = backend
        self.pending: List[str] = []

    def remove(self, path) -> None:
        self.pending.append(str(path))

    def rmtree(self, path) -> None:
        self.pending.append(str(path))

    def __getattr__(self, name):
        return getattr(self._backend, name)


@HOOKS.register_module()
class RISCheckpointHook(CheckpointHook):
    """MMEngine's ``CheckpointHook`` (same arguments) in a crash-safe order.

    MMEngine deletes the outdated checkpoint (``max_keep_ckpts``) and the
    previous ``best_*.pth`` *before* writing the new one, and writes
    ``last_checkpoint`` in place, so a kill while saving leaves a
    half-written file, a ``last_checkpoint`` naming a deleted file and no
    complete checkpoint at all. Here every save is

    1. the new checkpoint, written to a temporary file, ``fsync``-ed and
       renamed into place: for a local folder and no ``backend_args`` /
       ``file_client_args`` of its own, the hook passes
       ``backend_args=dict(backend='atomic_local')`` to
       ``runner.save_checkpoint``
       (:class:`~mmris.engine.atomic_local_backend.AtomicLocalBackend`),
       for the periodic and the best checkpoints alike;
    2. ``last_checkpoint``, replaced atomically the same way;
    3. only then the removal of outdated checkpoints / the previous best.

    Temporary files left by a killed run are removed before training.
    """

    def before_train(self, runner) -> None:
        out_dir = self.out_dir or runner.work_dir
        if (self.backend_args is None and self.file_client_args is None
                and '://' not in str(out_dir)):
            self.backend_args = dict(ATOMIC_LOCAL_BACKEND_ARGS)
        super().before_train(runner)
        if is_main_process() and '://' not in str(self.out_dir):
            for path in remove_stale_temporaries(self.out_dir):
                runner.logger.info(
                    f'Removed {path}, an incomplete checkpoint of an '
                    'interrupted run')

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        stale = []
        kept = list(getattr(self, 'keep_ckpt_ids', []))
        if self.max_keep_ckpts > 0 and not (kept and kept[-1] == step):
            # ids are updated before saving: they are saved in message_hub
            while len(self.keep_ckpt_ids) >= self.max_keep_ckpts:
                stale.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        last_ckpt = getattr(self, 'last_ckpt', None)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        try:
            runner.save_checkpoint(
                self.out_dir,
                ckpt_filename,
                self.file_client_args,
                save_optimizer=self.save_optimizer,
                save_param_scheduler=self.save_param_scheduler,
                meta=meta,
                by_epoch=self.by_epoch,
                backend_args=self.backend_args,
                **self.args)
        except BaseException:
            # not saved: the bookkeeping still describes the files on disk
            if self.max_keep_ckpts > 0:
                self.keep_ckpt_ids.clear()
                self.keep_ckpt_ids.extend(kept)
                runner.message_hub.update_info('keep_ckpt_ids', kept)
            self.last_ckpt = last_ckpt
            if last_ckpt is not None:
                runner.message_hub.update_info('last_ckpt', last_ckpt)
            raise
        if not is_main_process():
            return
        write_text_atomic(
            osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
        for old in stale:
            self._remove(
                self.file_backend.join_path(self.out_dir,
                                            self.filename_tmpl.format(old)))

    def _save_best_checkpoint(self, runner, metrics) -> None:
        backend = self.file_backend
        deferred = _DeferredRemoval(backend)
        self.file_backend = deferred
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            self.file_backend = backend
        current = [getattr(self, 'best_ckpt_path', None)]
        current += list((getattr(self, 'best_ckpt_path_dict', None)
                         or {}).values())
        keep = {str(p) for p in current if p}
        for path in deferred.pending:
            if path not in keep and is_main_process():
                self._remove(path)

    def _remove(self, path: str) -> None:
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):
            # checkpoints saved by deepspeed are directories
            self.file_backend.rmtree(path)
