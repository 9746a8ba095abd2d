# Copyright (c) mmris contributors. All rights reserved.
"""AdaptFormer's parallel bottleneck (Chen et al., "AdaptFormer: Adapting
Vision Transformers for Scalable Visual Recognition", NeurIPS 2022), as an
``ffn_parallel`` hook."""
import math
from typing import Optional

import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor

from ..utils.step_context import StepContext


@MODELS.register_module()
class AdaptMLP(BaseModule):
    """``up(dropout(ReLU(down(x))))`` next to the frozen MLP of a block.

    AdaptFormer feeds it the block's residual stream after the attention
    (not the MLP's normalised input) and adds ``s * AdaptMLP(x)`` to the MLP
    output with a fixed ``s = 0.1``; ``down`` starts from kaiming-uniform
    weights and ``up`` from zeros (their 'lora' initialisation), so
    training starts from the frozen model::

        dict(point='ffn_parallel', tower='visual', input='residual',
             scale=0.1, name='adaptmlp',
             module=dict(type='AdaptMLP', in_channels=768, bottleneck=64))

    Keys: ``down_proj.{weight,bias}``, ``up_proj.{weight,bias}``.

    Args:
        in_channels (int): Token width.
        bottleneck (int): Hidden width. Defaults to 64.
        dropout (float): Dropout after the activation. Defaults to 0.1.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 bottleneck: int = 64,
                 dropout: float = 0.1,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.down_proj = nn.Linear(in_channels, bottleneck)
        self.up_proj = nn.Linear(bottleneck, in_channels)
        self.dropout = dropout
        nn.init.kaiming_uniform_(self.down_proj.weight, a=math.sqrt(5))
        nn.init.zeros_(self.up_proj.weight)
        nn.init.zeros_(self.down_proj.bias)
        nn.init.zeros_(self.up_proj.bias)

    def forward(self, x: Tensor, ctx: Optional[StepContext] = None) -> Tensor:
        h = F.relu(self.down_proj(x))
        h = F.dropout(h, p=self.dropout, training=self.training)
        return self.up_proj(h)
