# Copyright (c) mmris contributors. All rights reserved.
"""DETRIS Dense Aligner (jiaqihuang01/DETRIS, model/adapter.py), parallel to
the FFN of DINOv2 blocks."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmseg.registry import MODELS
from torch import Tensor

from ..utils.step_context import StepContext
from .cross_modal_attention import CrossModalAttention
from .dense_conv import DenseConvAdapter


@MODELS.register_module()
class DenseAligner(DenseConvAdapter):
    """The DETRIS Dense Aligner: a bottleneck with a 2-D dense mixture of
    convolutions over the patch grid followed by cross-attention to the
    word features.

    Attach it as an ``ffn_parallel`` hook of the visual tower of an
    ``AdaptedEncoderPair(order='text_first')`` (``dict(point='ffn_parallel',
    tower='visual', layers=[1, 3, 5, 7, 9, 11], scale=0.2, input='norm',
    module=dict(type='DenseAligner', ...))``): it reads ``norm2(x)`` and its
    output, times 0.2 and the block's LayerScale, is added next to the MLP
    output. Computation on ``x`` (B, P + h*w, C)::

        x0 = ReLU(D_fc1(x))                                  # (B, N, m)
        s  = x0[:, P:] as (B, m, h, w)                       # P prefix tokens
        y  = dense_mixture_2d(s) + s
        y  = back_proj(MHA(image_proj(y), text_proj(T)))     # (B, h*w, m)
        y  = concat[x0[:, :P], y] + x0                       # prefix: 2 * x0
        out = D_fc2(y)

    The word sequence T (B, L, text_channels), the patch grid (h, w), the
    number P of tokens before the patches and the padding mask come from the
    call's :class:`~mmris.models.utils.StepContext` (``word``, ``grid``,
    ``patch_start``, ``pad_mask``), so the same module works on DINOv2 (P =
    CLS + 4 registers = 5, the official case) and on CLIP ViTs (P = 1), on
    non-square grids too (the official code assumes a square one).

    Initialisation is the one the official model ends up with: every Linear
    (``D_fc1``, ``D_fc2``, the projections and the attention's ``out_proj``)
    trunc_normal(std 0.02) with zero bias, because DINOv2's initialiser runs
    after the adapter's own; convolutions kaiming_normal (fan_in, ReLU) with
    zero bias; attention ``in_proj`` xavier_uniform; BatchNorm gamma 1, beta 0.

    Args:
        in_channels (int): Visual width C. Defaults to 768.
        hidden_channels (int): Bottleneck width m. Defaults to 128.
        text_channels (int): Width of the word features. Defaults to 512.
        embed_dims (int): Cross-attention width. Defaults to 128.
        num_heads (int): Cross-attention heads. Defaults to 8.
        dropout (float): Attention dropout. Defaults to 0.1.
        num_prefix_tokens (int, optional): Leading tokens kept out of the
            convolutions and the attention. Defaults to None: the host's
            ``ctx.patch_start`` (5 on DINOv2 with registers).
        use_padding_mask (bool): Mask padded words in the cross-attention
            with ``ctx.pad_mask`` (the official code attends to them).
            Defaults to False.
        branch_channels (Sequence[int], optional): (ch1x1, ch3x3red, ch3x3,
            ch5x5red, ch5x5). Defaults to None = (m/2, m/16, m/4, m/16, m/4).
        skip_connect (bool): Add ``x`` to the output. Defaults to False.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 in_channels: int = 768,
                 hidden_channels: int = 128,
                 text_channels: int = 512,
                 embed_dims: int = 128,
                 num_heads: int = 8,
                 dropout: float = 0.1,
                 num_prefix_tokens: Optional[int] = None,
                 use_padding_mask: bool = False,
                 branch_channels: Optional[Sequence[int]] = None,
                 skip_connect: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(
            in_channels,
            hidden_channels,
            conv_dims=2,
            branch_channels=branch_channels,
            skip_connect=skip_connect,
            init_cfg=init_cfg)
        self.num_prefix_tokens = num_prefix_tokens
        self.use_padding_mask = use_padding_mask
        self.cross = CrossModalAttention(hidden_channels, text_channels,
                                         embed_dims, num_heads, dropout)
        self._init_layers()

    def _init_layers(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(
                    m.weight, mode='fan_in', nonlinearity='relu')
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def _patch_grid(self, num_patches: int,
                    grid: Optional[Tuple[int, int]]) -> Tuple[int, int]:
        if grid is None:
            raise ValueError('DenseAligner needs the patch grid (ctx.grid): '
                             'attach it to a visual tower')
        h, w = (int(g) for g in grid)
        if h * w != num_patches:
            raise ValueError(
                f'DenseAligner got {num_patches} patch tokens for a {h}x{w} '
                'grid')
        return h, w

    def forward(self, x: Tensor, ctx: StepContext) -> Tensor:
        """Adapt visual tokens.

        Args:
            x (Tensor): (B, P + h*w, C) normalised tokens.
            ctx (StepContext): ``word`` (B, L, text_channels), ``grid``,
                ``patch_start`` (P) and ``pad_mask``.

        Returns:
            Tensor: (B, P + h*w, C).
        """
        word, pad_mask = ctx.word, ctx.pad_mask
        if word is None:
            raise ValueError('DenseAligner needs the word features (ctx.word)'
                             ": run the pair with order='text_first'")
        p = self.num_prefix_tokens
        if p is None:
            p = ctx.patch_start
        x0 = self.down(x)
        b, n, m = x0.shape
        h, w = self._patch_grid(n - p, ctx.grid)
        s = x0[:, p:].transpose(1, 2).reshape(b, m, h, w)
        y = (self.mix(s) + s).flatten(2).transpose(1, 2)
        mask = None
        if self.use_padding_mask:
            if pad_mask is None:
                raise ValueError('use_padding_mask=True needs ctx.pad_mask')
            mask = pad_mask
        y = self.cross(y, word.to(y.dtype), key_padding_mask=mask)
        y = torch.cat([x0[:, :p], y], dim=1) + x0
        return self.up(y, x)
