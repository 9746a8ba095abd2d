# Copyright (c) mmris contributors. All rights reserved.
"""Runtime-info hook without a host synchronisation on every iteration."""
from typing import Optional

import torch
from mmengine.hooks import RuntimeInfoHook
from mmseg.registry import HOOKS


@HOOKS.register_module()
class LazyRuntimeInfoHook(RuntimeInfoHook):
    """MMEngine's :class:`RuntimeInfoHook`, but the loss tensors of each
    iteration are kept on the device and pushed to the message hub (one
    ``.item()`` each) only every ``interval`` iterations and at the end of an
    epoch, so the GPU is not synchronised on every step. Set ``interval`` to
    the logger interval: the logged smoothed values are then identical.

    Args:
        interval (int): Flush period in iterations. Defaults to 50.
    """

    priority = 'VERY_HIGH'

    def __init__(self, interval: int = 50):
        super().__init__()
        self.interval = interval
        self._pending = []

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if outputs is not None:
            self._pending.append({
                k:
                v.detach() if isinstance(v, torch.Tensor) else v
                for k, v in outputs.items()
            })
        end_of_epoch = (
            runner.train_loop is not None
            and hasattr(runner.train_loop, 'dataloader')
            and batch_idx + 1 == len(runner.train_loop.dataloader))
        if (runner.iter + 1) % self.interval == 0 or end_of_epoch:
            self.flush(runner)

    def flush(self, runner) -> None:
        for outputs in self._pending:
            for key, value in outputs.items():
                runner.message_hub.update_scalar(f'train/{key}', value)
        self._pending = []

    def after_train_epoch(self, runner) -> None:
        self.flush(runner)
        super().after_train_epoch(runner)

    def after_train(self, runner) -> None:
        self.flush(runner)
        super().after_train(runner)
