# Copyright (c) mmris contributors. All rights reserved.
"""mmris training and inference steps for benchmarks, and their counts."""
from typing import Any, Callable, Optional

import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper, build_optim_wrapper

from mmris.utils.memory_count import StepCounts, count_train_step, flop_counter

__all__ = [
    'build_train_wrapper', 'counted_train_step', 'infer_step', 'count_flops'
]


def build_train_wrapper(model: torch.nn.Module, cfg: Config,
                        amp: str) -> OptimWrapper:
    """The optimizer wrapper of ``cfg`` for ``model`` in precision ``amp``.

    ``'bf16'`` autocasts as ``tools/train.py --amp`` does
    (``AutocastOptimWrapper``); ``'fp16'`` is the official recipe (autocast +
    dynamic GradScaler, ``AmpOptimWrapper``); ``'fp32'`` keeps the config's
    wrapper.
    """
    ow_cfg = dict(cfg.optim_wrapper)
    if amp == 'bf16':  # as `tools/train.py --amp`
        ow_cfg.update(type='AutocastOptimWrapper', dtype='bfloat16')
    elif amp == 'fp16':  # the official recipe: fp16 + GradScaler
        ow_cfg.update(
            type='AmpOptimWrapper', dtype='float16', loss_scale='dynamic')
    return build_optim_wrapper(model, ow_cfg)


def counted_train_step(model, optim_wrapper: OptimWrapper, data: dict,
                       batch: int) -> StepCounts:
    """One optimizer step as ``BaseModel.train_step`` runs it, counted with
    :func:`mmris.utils.memory_count.count_train_step`."""

    def forward():
        with optim_wrapper.optim_context(model):
            inputs = model.data_preprocessor(data, True)
            losses = model._run_forward(inputs, mode='loss')
        loss, _ = model.parse_losses(losses)
        return loss

    def update():
        optim_wrapper.step()
        optim_wrapper.zero_grad()

    return count_train_step(
        model,
        forward,
        optim_wrapper.backward,
        optimizer=optim_wrapper.optimizer,
        step=update,
        batch=batch)


def infer_step(model, device: torch.device,
               dtype: Optional[torch.dtype]) -> Callable[[dict], Any]:
    """A test-mode step of ``model`` (preprocessing + network logits, no
    post-processing) on a batch of :func:`~mmris.benchmark.inputs.
    make_batch`, autocast to ``dtype`` (None: fp32)."""

    def step(data):
        with torch.no_grad(), torch.autocast(
                device.type,
                dtype=dtype or torch.float32,
                enabled=dtype is not None):
            data = model.data_preprocessor(data, False)
            return model._forward(data['inputs'], data['data_samples'])

    return step


def count_flops(step: Callable[[], Any]) -> int:
    """The FLOPs of one call of ``step`` (counted by
    :func:`mmris.utils.memory_count.flop_counter`)."""
    with flop_counter() as counter:
        step()
    return counter.get_total_flops()
