# Copyright (c) mmris contributors. All rights reserved.
"""Stop training on a non-finite loss or non-finite parameters, naming the
iteration and the batch; never save a non-finite checkpoint."""
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from ..finite import all_finite, floating_items, nonfinite_names

__all__ = [
    'NonFiniteLossHook', 'NonFiniteLossError', 'NonFiniteParametersError',
    'batch_sample_ids'
]

#: Metainfo keys that identify a referring sample.
SAMPLE_ID_KEYS = ('ref_id', 'sent_id', 'img_path')


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


class NonFiniteParametersError(FloatingPointError):
    """The parameters (or a state dict about to be saved) hold NaN / inf."""


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
            return float('nan') if not torch.isfinite(value).all() else float(
                value.sum())
        return float(value.detach())
    if isinstance(value, (int, float)):
        return float(value)
    return None


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop training on a NaN / inf loss or NaN / inf parameters.

    - The total loss is checked **before** the backward pass and the
      optimizer step (the optimizer wrapper's ``update_params`` is wrapped),
      so a non-finite loss never reaches the weights; the logged loss terms
      are checked again after the iteration
      (:class:`NonFiniteLossError`).
    - A finite loss can still give a non-finite update (e.g. a far too high
      learning rate). Every ``param_interval`` iterations the trainable
      parameters are checked after the step with one fused norm (one host
      sync), and :class:`NonFiniteParametersError` names the iteration whose
      update broke them, instead of blaming the next batch.
    - Every state dict is checked right before it is written
      (``before_save_checkpoint``), so no checkpoint with NaN / inf weights
      is ever saved.

    The messages give the iteration, the epoch, the loss terms and the
    identifiers of the batch samples (``ref_id``, ``sent_id``, ``img_path``
    from their metainfo).

    Args:
        check_before_step (bool): Check the loss inside ``update_params``,
            before ``backward``. Defaults to True.
        max_samples (int): How many sample identifiers the message lists.
            Defaults to 32.
        param_interval (int): Check the trainable parameters after every
            ``param_interval``-th optimizer step; 0 switches the periodic
            check off (the check before saving stays). Defaults to 1.
        max_names (int): How many tensor names the messages list.
            Defaults to 8.
    """

    priority = 'ABOVE_NORMAL'  # before CheckpointHook saves anything

    def __init__(self,
                 check_before_step: bool = True,
                 max_samples: int = 32,
                 param_interval: int = 1,
                 max_names: int = 8) -> None:
        if not isinstance(param_interval, int) or param_interval < 0:
            raise ValueError('NonFiniteLossHook: param_interval must be an '
                             f'int >= 0, got {param_interval!r}')
        self.check_before_step = check_before_step
        self.max_samples = max_samples
        self.param_interval = param_interval
        self.max_names = max_names
        self._batch = None
        self._batch_idx = None
        self._wrapped = None
        self._params: List[Tuple[str, torch.Tensor]] = []
        self._last_finite_iter = 0  # iterations known to give finite params

    # -- wrap the optimizer wrapper -------------------------------------------
    def before_train(self, runner) -> None:
        model = getattr(runner.model, 'module', runner.model)
        self._params = [(n, p) for n, p in model.named_parameters()
                        if p.requires_grad]
        self._last_finite_iter = runner.iter
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

    # -- per iteration --------------------------------------------------------
    def before_train_iter(self,
                          runner,
                          batch_idx: int,
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
        done = runner.iter + 1
        if self.param_interval and done % self.param_interval == 0:
            self._batch, self._batch_idx = data_batch, batch_idx
            self._check_params(runner, losses)
        self._batch = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Refuse to write a state dict that holds NaN / inf."""
        state = checkpoint.get('state_dict') or {}
        items = floating_items(state)
        if all_finite([t for _, t in items]):
            return
        bad = nonfinite_names(items)
        message = (
            f'Refusing to save a checkpoint at iteration {runner.iter + 1} '
            f'(epoch {runner.epoch + 1}): {len(bad)} of {len(items)} '
            f'floating-point tensors of its state_dict hold NaN/inf ('
            f'{self._names(bad)}). No file was written; the last saved '
            'checkpoint is left as it was.')
        runner.logger.error(message)
        raise NonFiniteParametersError(message)

    # -- messages -------------------------------------------------------------
    def _names(self, names: List[str]) -> str:
        shown = ', '.join(names[:self.max_names])
        more = len(names) - self.max_names
        return shown + (f', ... (+{more} more)' if more > 0 else '')

    def _sample_lines(self) -> List[str]:
        ids = batch_sample_ids(self._batch)
        shown = ids[:self.max_samples]
        more = len(ids) - len(shown)
        lines = [
            '  ' + ', '.join(f'{k}={v}' for k, v in s.items()) for s in shown
        ]
        if more > 0:
            lines.append(f'  ... (+{more} more)')
        if not ids:
            lines.append('  (no data_samples metainfo in the batch)')
        return lines

    def _check_params(self, runner, losses: dict) -> None:
        """Raise if the trainable parameters are no longer finite."""
        done = runner.iter + 1
        if all_finite([p for _, p in self._params]):
            self._last_finite_iter = done
            return
        bad = nonfinite_names(self._params)
        if not bad:  # only a norm overflow, every value finite
            self._last_finite_iter = done
            return
        first = self._last_finite_iter + 1
        when = (f'iteration {done}' if first >= done else
                f'one of iterations {first}-{done} (parameters last checked '
                f'finite after iteration {first - 1})')
        terms = ', '.join(f'{k}={v}' for k, v in losses.items())
        lines = [
            f'Non-finite parameters after the optimizer step of {when} '
            f'(epoch {runner.epoch + 1}, batch {self._batch_idx}): '
            f'{len(bad)} of {len(self._params)} trainable tensors hold NaN/'
            f'inf ({self._names(bad)}). The loss of iteration {done} was '
            f'finite ({terms or "not logged"}): the update itself diverged '
            '(learning rate too high? lower optim_wrapper.optimizer.lr or '
            'set optim_wrapper.clip_grad). Training stopped; no checkpoint '
            f'was saved after iteration {first - 1}. Samples of the batch '
            f'of iteration {done}:'
        ]
        message = '\n'.join(lines + self._sample_lines())
        runner.logger.error(message)
        raise NonFiniteParametersError(message)

    def _raise(self, runner, losses: dict) -> None:
        if self._params and not all_finite([p for _, p in self._params]):
            # the weights broke in an earlier update, not on this batch
            bad = nonfinite_names(self._params)
            message = (
                f'Non-finite loss at iteration {runner.iter + 1} (epoch '
                f'{runner.epoch + 1}, batch {self._batch_idx}) because '
                f'{len(bad)} of {len(self._params)} trainable tensors '
                f'already hold NaN/inf ({self._names(bad)}): an optimizer '
                f'step after iteration {self._last_finite_iter} (the last '
                'one checked finite) diverged, not the samples of this '
                'batch. Check the parameters more often with '
                'NonFiniteLossHook(param_interval=1) to name it; lower the '
                'learning rate or clip the gradients.')
            runner.logger.error(message)
            raise NonFiniteParametersError(message)
        terms = ', '.join(f'{k}={v}' for k, v in losses.items())
        lines = [
            f'Non-finite loss ({terms}) at iteration {runner.iter + 1} '
            f'(epoch {runner.epoch + 1}, batch {self._batch_idx}); training '
            'stopped before the optimizer step. Samples of the batch:'
        ]
        message = '\n'.join(lines + self._sample_lines())
        runner.logger.error(message)
        raise NonFiniteLossError(message)
