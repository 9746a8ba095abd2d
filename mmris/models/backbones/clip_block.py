# Copyright (c) mmris contributors. All rights reserved.
"""CLIP's residual attention block with the mmris adapter hooks."""
from collections import OrderedDict
from typing import Optional

import torch.nn as nn
from torch import Tensor

from ..utils.attention import MultiheadAttention
from ..utils.layer_norm import LayerNormFp32
from ..utils.quick_gelu import QuickGELU
from ..utils.step_context import StepContext
from .base_block import AdaptableBlock


class CLIPResidualBlock(AdaptableBlock):
    """OpenAI CLIP's residual attention block (key names ``ln_1``, ``attn``,
    ``ln_2``, ``mlp.c_fc``, ``mlp.c_proj`` of openai/CLIP, clip/model.py),
    batch first, QuickGELU, fp32 LayerNorm (which keeps its input in the
    input dtype: :mod:`~mmris.models.utils.layer_norm`), with the hook
    points of :class:`AdaptableBlock`.

    The attention is :class:`~mmris.models.utils.MultiheadAttention`: the
    parameters of ``torch.nn.MultiheadAttention`` (``attn.in_proj_weight``,
    ``attn.in_proj_bias``, ``attn.out_proj``), created in the same order so a
    seeded initialisation is identical, but the input projection is one GEMM
    on the contiguous batch-first tokens followed by
    ``scaled_dot_product_attention``. ``nn.MultiheadAttention(batch_first=
    True)`` instead transposes the tokens into a strided view and, when its
    weights are frozen, projects them with a batched matmul over that view,
    which on CPU is split into many small GEMMs. QuickGELU keeps only its
    input for the backward pass (:mod:`~mmris.models.utils.quick_gelu`).

    Args:
        width (int): Model width.
        heads (int): Attention heads.
        mlp_ratio (float): Hidden width of the MLP over ``width``.
            Defaults to 4.
        act (str): MLP activation: 'quick_gelu' (OpenAI CLIP) or 'gelu'
            (exact GELU: EVA02-CLIP's text tower). Defaults to 'quick_gelu'.
    """

    def __init__(self,
                 width: int,
                 heads: int,
                 mlp_ratio: float = 4.0,
                 act: str = 'quick_gelu'):
        nn.Module.__init__(self)
        if act not in ('quick_gelu', 'gelu'):
            raise ValueError(
                f"act must be 'quick_gelu' or 'gelu', got {act!r}")
        self.ln_1 = LayerNormFp32(width)
        self.attn = MultiheadAttention(width, heads)
        self.ln_2 = LayerNormFp32(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(
            OrderedDict([('c_fc', nn.Linear(width, hidden)),
                         ('gelu',
                          QuickGELU() if act == 'quick_gelu' else nn.GELU()),
                         ('c_proj', nn.Linear(hidden, width))]))
        self._init_hooks()

    def norm_attn(self, x: Tensor) -> Tensor:
        return self.ln_1(x)

    def proj_qkv(self, h: Tensor) -> Tensor:
        return self.attn.project(h)

    def attend(self, qkv: Tensor, attn_mask: Optional[Tensor],
               ctx: Optional[StepContext]) -> Tensor:
        if attn_mask is not None:
            attn_mask = attn_mask.to(qkv.dtype)
        return self.attn.attend_projected(qkv, attn_mask=attn_mask)

    def attn_proj(self, x: Tensor) -> Tensor:
        return self.attn.out_proj(x)

    def norm_ffn(self, x: Tensor) -> Tensor:
        return self.ln_2(x)

    def ffn_inner(self, x: Tensor) -> Tensor:
        return self.mlp.gelu(self.mlp.c_fc(x))

    def ffn_proj(self, x: Tensor) -> Tensor:
        return self.mlp.c_proj(x)


class CLIPTransformer(nn.Module):
    """A stack of :class:`CLIPResidualBlock` under the OpenAI key
    ``resblocks``.

    Args:
        width (int): Model width.
        layers (int): Number of blocks.
        heads (int): Attention heads.
        act (str): See :class:`CLIPResidualBlock`. Defaults to
            'quick_gelu'.
    """

    def __init__(self,
                 width: int,
                 layers: int,
                 heads: int,
                 act: str = 'quick_gelu'):
        super().__init__()
        self.width = width
        self.resblocks = nn.ModuleList(
            CLIPResidualBlock(width, heads, act=act) for _ in range(layers))
