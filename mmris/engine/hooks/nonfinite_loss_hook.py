# Copyright (c) mmris contributors. All rights reserved.
"""Stop training on a non-finite loss, naming the iteration and the batch."""
import math
from typing import Any, Dict, List, Optional, Sequence

import torch
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

__all__ = ['NonFiniteLossHook', 'NonFiniteLossError', 'batch_sample_ids']

#: Metainfo keys that identify a referring sample.
SAMPLE_ID_KEYS = ('ref_id', 'sent_id', 'img_path')


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


def batch_sample_ids(data_batch: Any,
                     keys: Sequence[str] = SAMPLE_ID_KEYS) -> List[Dict]:
    """The identifiers (``ref_id``, ``sent_id``, ``img_path``) of the
    samples of a batch, read from the data samples' metainfo."""
    samples = []
    if isinstance(data_batch, dict):
        samples = data_batch.get('data_samples') or []
    out = []
    for ds in samples:
        meta = getattr(ds, 'metainfo', None) or {}
        out.append({k: meta[k] for k in keys if k in meta})
    return out


def _as_float(value: Any) -> Optional[float]:
    if isinstance(value, torch.Tensor):
        if value.numel() == 0:
            return None
        if value.numel() > 1:
            return float('nan') if not torch.isfinite(
                value).all() else float(value.sum())
        return float(value.detach())
    if isinstance(value, (int, float)):
        return float(value)
    return None


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Raise :class:`NonFiniteLossError` when a loss becomes NaN / inf.

    The total loss is checked **before** the backward pass and the optimizer
    step (the optimizer wrapper's ``update_params`` is wrapped), so the
    parameters never receive a NaN update; the logged loss terms are checked
    again after the iteration. The message gives the iteration, the epoch,
    the loss terms and the identifiers of the batch samples (``ref_id``,
    ``sent_id``, ``img_path`` from their metainfo).

    Args:
        check_before_step (bool): Check the loss inside ``update_params``,
            before ``backward``. Defaults to True.
        max_samples (int): How many sample identifiers the message lists.
            Defaults to 32.
    """

    priority = 'ABOVE_NORMAL'  # before CheckpointHook saves anything

    def __init__(self, check_before_step: bool = True,
                 max_samples: int = 32) -> None:
        self.check_before_step = check_before_step
        self.max_samples = max_samples
        self._batch = None
        self._batch_idx = None
        self._wrapped = None

    # -- wrap the optimizer wrapper ---------------------------------------------
    def before_train(self, runner) -> None:
        if not self.check_before_step:
            return
        wrapper = runner.optim_wrapper
        update = getattr(wrapper, 'update_params', None)
        if update is None or getattr(update, '_mmris_nonfinite', False):
            return
        hook = self

        def checked_update_params(loss, *args, **kwargs):
            value = _as_float(loss)
            if value is not None and not math.isfinite(value):
                hook._raise(runner, dict(loss=value))
            return update(loss, *args, **kwargs)

        checked_update_params._mmris_nonfinite = True
        wrapper.update_params = checked_update_params
        self._wrapped = wrapper

    def after_train(self, runner) -> None:
        if self._wrapped is not None:
            self._wrapped.__dict__.pop('update_params', None)
            self._wrapped = None

    # -- per iteration -------------------------------------------------------------
    def before_train_iter(self, runner, batch_idx: int,
                          data_batch: Any = None) -> None:
        self._batch = data_batch
        self._batch_idx = batch_idx

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Any = None,
                         outputs: Optional[dict] = None) -> None:
        losses = {}
        for key, value in (outputs or {}).items():
            if 'loss' in key:
                v = _as_float(value)
                if v is not None:
                    losses[key] = v
        if any(not math.isfinite(v) for v in losses.values()):
            self._batch, self._batch_idx = data_batch, batch_idx
            self._raise(runner, losses)
        self._batch = None

    def _raise(self, runner, losses: dict) -> None:
        ids = batch_sample_ids(self._batch)
        shown = ids[:self.max_samples]
        more = len(ids) - len(shown)
        terms = ', '.join(f'{k}={v}' for k, v in losses.items())
        lines = [
            f'Non-finite loss ({terms}) at iteration {runner.iter + 1} '
            f'(epoch {runner.epoch + 1}, batch {self._batch_idx}); training '
            'stopped before the optimizer step. Samples of the batch:'
        ]
        lines += [
            '  ' + ', '.join(f'{k}={v}' for k, v in s.items()) for s in shown
        ]
        if more > 0:
            lines.append(f'  ... (+{more} more)')
        if not ids:
            lines.append('  (no data_samples metainfo in the batch)')
        message = '\n'.join(lines)
        runner.logger.error(message)
        raise NonFiniteLossError(message)
