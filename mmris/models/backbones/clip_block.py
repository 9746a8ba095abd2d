# Copyright (c) mmris contributors. All rights reserved.
"""CLIP's residual attention block with the mmris adapter hooks."""
from typing import Optional

import torch.nn as nn
from open_clip.transformer import LayerNormFp32, QuickGELU
from open_clip.transformer import ResidualAttentionBlock
from torch import Tensor

from .base_block import AdaptableBlock


class CLIPResidualBlock(AdaptableBlock, ResidualAttentionBlock):
    """open_clip's ``ResidualAttentionBlock`` (OpenAI key names ``ln_1``,
    ``attn``, ``ln_2``, ``mlp.c_fc``, ``mlp.c_proj``), batch first, QuickGELU,
    fp32 LayerNorm, stepped through :class:`AdaptableBlock`'s hooks.

    Args:
        width (int): Model width.
        heads (int): Attention heads.
    """

    def __init__(self, width: int, heads: int):
        ResidualAttentionBlock.__init__(
            self,
            width,
            heads,
            act_layer=QuickGELU,
            norm_layer=LayerNormFp32,
            batch_first=True)
        self._init_hooks()

    def norm_attn(self, x: Tensor) -> Tensor:
        return self.ln_1(x)

    def attn_branch(self, x: Tensor, attn_mask: Optional[Tensor]) -> Tensor:
        if attn_mask is not None:
            attn_mask = attn_mask.to(x.dtype)
        return self.attn(
            x, x, x, need_weights=False, attn_mask=attn_mask)[0]

    def norm_ffn(self, x: Tensor) -> Tensor:
        return self.ln_2(x)

    def ffn_branch(self, x: Tensor) -> Tensor:
        return self.mlp(x)

    forward = AdaptableBlock.forward


class CLIPTransformer(nn.Module):
    """A stack of :class:`CLIPResidualBlock` under the OpenAI key
    ``resblocks``.

    Args:
        width (int): Model width.
        layers (int): Number of blocks.
        heads (int): Attention heads.
    """

    def __init__(self, width: int, layers: int, heads: int):
        super().__init__()
        self.width = width
        self.resblocks = nn.ModuleList(
            CLIPResidualBlock(width, heads) for _ in range(layers))
