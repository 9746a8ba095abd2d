# Copyright (c) mmris contributors. All rights reserved.
"""LoRA on the frozen attention projections (Hu et al., "LoRA: Low-Rank
Adaptation of Large Language Models", ICLR 2022), as a ``qkv`` hook.

The update of each targeted projection is mmpretrain's
:class:`~mmpretrain.models.peft.lora.LoRALinear` (``W x + B A x * alpha /
rank``, ``A`` kaiming-uniform, ``B`` zero, so training starts from the frozen
model). mmpretrain's ``LoRAModel`` wraps the frozen ``nn.Linear`` itself,
which renames its weight (``qkv.original_layer.weight``): pretrained files and
official checkpoints would no longer load into the encoder's own keys, and
CLIP's fused ``in_proj_weight`` is no ``nn.Linear`` at all. Here the frozen
projection stays where it is and each ``LoRALinear`` wraps a zero stand-in,
so it computes only the low-rank term, which the block adds to q, k or v.
"""
from typing import Optional, Sequence, Tuple

import torch.nn as nn
from mmengine.model import BaseModule
from mmpretrain.models.peft.lora import LoRALinear
from mmseg.registry import MODELS
from torch import Tensor

from ..utils.step_context import StepContext


class _ZeroProjection(nn.Module):
    """The frozen-layer branch of :class:`LoRALinear`, which the host block
    computes itself: only the shapes, and a zero output."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features

    def forward(self, x: Tensor) -> float:
        return 0.0


@MODELS.register_module()
class LoRAQKV(BaseModule):
    """Low-rank updates of the q, k and/or v projections of one attention
    layer: attach as the ``qkv`` hook of the frozen blocks::

        dict(point='qkv', tower='visual', name='lora',
             module=dict(type='LoRAQKV', dim=768, rank=8, alpha=8))

    Keys: ``<target>.lora_down.weight`` (rank, dim) and
    ``<target>.lora_up.weight`` (dim, rank) for each target.

    Args:
        dim (int): Width of the attention layer.
        rank (int): Rank r of the update. Defaults to 8.
        alpha (float): The update is scaled by ``alpha / rank``.
            Defaults to 8.
        targets (Sequence[str]): Projections to adapt, among 'q', 'k', 'v'.
            Defaults to ('q', 'v') (the LoRA paper's choice).
        drop_rate (float): Dropout on the update's input. Defaults to 0.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 dim: int,
                 rank: int = 8,
                 alpha: float = 8,
                 targets: Sequence[str] = ('q', 'v'),
                 drop_rate: float = 0.0,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        targets = tuple(targets)
        if not targets or set(targets) - {'q', 'k', 'v'} or \
                len(set(targets)) != len(targets):
            raise ValueError("targets must be distinct names among 'q', 'k', "
                             f"'v', got {targets}")
        if rank <= 0:
            raise ValueError(f'rank must be positive, got {rank}')
        self.targets = targets
        for name in targets:
            self.add_module(
                name,
                LoRALinear(
                    _ZeroProjection(dim, dim),
                    alpha=alpha,
                    rank=rank,
                    drop_rate=drop_rate))

    def forward(
            self,
            h: Tensor,
            ctx: Optional[StepContext] = None) -> Tuple[Optional[Tensor], ...]:
        """Updates ``(dq, dk, dv)`` of the normalised tokens ``h`` (None for
        the projections that are not targeted)."""
        return tuple(
            getattr(self, name)(h) if name in self.targets else None
            for name in ('q', 'k', 'v'))
