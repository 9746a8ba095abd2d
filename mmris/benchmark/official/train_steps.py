# Copyright (c) mmris contributors. All rights reserved.
"""Training steps of the official models, as their training loops run them
(engine/engine.py ``train`` of kkakkkka/ETRIS, NastrondAd/BarLeRIa and
jiaqihuang01/DETRIS), with the loss of a builder module of this package."""
from types import ModuleType
from typing import Optional, Tuple

import torch
import torch.nn as nn

from mmris.utils.memory_count import StepCounts, count_train_step

__all__ = ['official_train_step', 'OfficialTrainStep']


def official_train_step(builder: ModuleType,
                        model: nn.Module,
                        img: torch.Tensor,
                        word: torch.Tensor,
                        mask: torch.Tensor,
                        optimizer: torch.optim.Optimizer,
                        count: bool = False) -> Optional[StepCounts]:
    """One fp32 official training step (forward with the loss, backward,
    optimizer update) as the builder module ``builder`` computes the loss,
    counted with :func:`mmris.utils.memory_count.count_train_step` if
    ``count``.

    Returns:
        StepCounts | None: The counts when ``count``, else None.
    """

    def forward():
        return builder.loss(model, img, word, mask)

    def step():
        optimizer.step()
        optimizer.zero_grad()

    if not count:
        forward().backward()
        step()
        return None
    return count_train_step(
        model,
        forward,
        lambda loss: loss.backward(),
        optimizer=optimizer,
        step=step,
        batch=img.shape[0])


class OfficialTrainStep:
    """One official training step of the official recipe: fp16 autocast
    forward with the loss, GradScaler backward and optimizer update.

    Args:
        builder (ModuleType): The method's builder module (``loss``).
        model (nn.Module): The official model.
        optimizer (torch.optim.Optimizer): Its optimizer.
        scaler (torch.amp.GradScaler): The gradient scaler.
        inputs (tuple[Tensor]): ``(img, word, mask)``.
    """

    def __init__(self, builder: ModuleType, model: nn.Module, optimizer,
                 scaler, inputs: Tuple[torch.Tensor, ...]):
        self.builder, self.model = builder, model
        self.optimizer, self.scaler = optimizer, scaler
        self.inputs = inputs

    def forward(self) -> torch.Tensor:
        """The loss, under fp16 autocast."""
        img = self.inputs[0]
        with torch.autocast(img.device.type, dtype=torch.float16):
            return self.builder.loss(self.model, *self.inputs)

    def backward(self, loss: torch.Tensor) -> None:
        """Scaled backward pass."""
        self.scaler.scale(loss).backward()

    def update(self) -> None:
        """Optimizer step through the scaler, then zero the gradients."""
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    def __call__(self) -> None:
        self.backward(self.forward())
        self.update()

    def count(self) -> int:
        """The FLOPs (forward + backward) of one counted step."""
        counts = count_train_step(
            self.model,
            self.forward,
            self.backward,
            optimizer=self.optimizer,
            step=self.update,
            batch=self.inputs[0].shape[0])
        return counts.forward_flops + counts.backward_flops
