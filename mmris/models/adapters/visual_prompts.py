# Copyright (c) mmris contributors. All rights reserved.
"""Deep visual prompt tuning (Jia et al., "Visual Prompt Tuning", ECCV
2022), as a ``tokens`` hook."""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor

from ..utils.step_context import StepContext


@MODELS.register_module()
class DeepVisualPrompts(BaseModule):
    """Learned tokens inserted after the class token before every block,
    each block its own, replacing the previous block's (VPT-deep)::

        dict(point='tokens', tower='visual', replace=True, name='prompts',
             module=dict(type='DeepVisualPrompts', num_tokens=10,
                         embed_dims=768, num_layers=12, patch_size=16))

    With ``layers`` listing only the first block it is VPT-shallow (the
    prompts then stay through the whole tower). The prompts are initialised
    uniformly in ``[-v, v]`` with ``v = sqrt(6 / (3 * patch_size**2 +
    embed_dims))`` (VPT's Xavier initialisation over the patch
    embedding's fan-in and fan-out). Key: ``prompt_embeddings`` (num_layers,
    num_tokens, embed_dims).

    Args:
        num_tokens (int): Prompt tokens per block. Defaults to 10.
        embed_dims (int): Token width. Defaults to 768.
        num_layers (int): Blocks with their own prompts. Defaults to 12.
        patch_size (int): Patch side of the host ViT (for the
            initialisation). Defaults to 16.
        dropout (float): Dropout on the prompts. Defaults to 0.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 num_tokens: int = 10,
                 embed_dims: int = 768,
                 num_layers: int = 12,
                 patch_size: int = 16,
                 dropout: float = 0.0,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.num_layers = num_layers
        self.dropout = dropout
        self.prompt_embeddings = nn.Parameter(
            torch.empty(num_layers, num_tokens, embed_dims))
        bound = math.sqrt(6.0 / (3 * patch_size**2 + embed_dims))
        nn.init.uniform_(self.prompt_embeddings, -bound, bound)

    def forward(self, x: Tensor, ctx: StepContext) -> Tensor:
        """The prompts of stage ``ctx.stage`` for the batch of ``x``."""
        if not 0 <= ctx.stage < self.num_layers:
            raise ValueError(f'DeepVisualPrompts holds {self.num_layers} '
                             f'prompt sets, asked for stage {ctx.stage}')
        prompts = self.prompt_embeddings[ctx.stage].to(x.dtype)
        prompts = F.dropout(prompts, p=self.dropout, training=self.training)
        return prompts.expand(x.shape[0], -1, -1)
