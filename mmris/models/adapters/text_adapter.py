# Copyright (c) mmris contributors. All rights reserved.
"""DETRIS Text Adapter (jiaqihuang01/DETRIS, model/adapter.py), parallel to the
FFN of CLIP text blocks."""
from typing import Optional, Sequence

import torch
from mmseg.registry import MODELS
from torch import Tensor

from .dense_conv import DenseConvAdapter


@MODELS.register_module()
class TextAdapter(DenseConvAdapter):
    """The DETRIS Text Adapter: a bottleneck with a 1-D dense mixture of
    convolutions over the word sequence.

    Attach it as an ``ffn_parallel`` hook of the text tower
    (``dict(point='ffn_parallel', tower='text', layers=[1, 3, 5, 7, 9, 11],
    scale=0.2, input='residual', module=dict(type='TextAdapter', ...))``):
    it reads the un-normalised residual stream after the attention branch
    and its output, times 0.2, is added next to the MLP output. Computation
    on ``x`` (B, L, C)::

        x0 = ReLU(D_fc1(x))                          # (B, L, m)
        y  = dense_mixture_1d(x0[:, P:])             # SOT (P=1) excluded
        y  = concat[x0[:, :P], y] + x0               # SOT becomes 2 * x0
        out = D_fc2(y)

    The kernel-3/5 convolutions mix later (and padding) positions into
    earlier ones, and BatchNorm statistics are taken over (B, L - 1), as in
    the official code. All layers keep PyTorch's default initialisation.

    Args:
        in_channels (int): Text width C. Defaults to 512.
        hidden_channels (int): Bottleneck width a. Defaults to 64.
        branch_channels (Sequence[int], optional): (ch1x1, ch3x3red, ch3x3,
            ch5x5red, ch5x5). Defaults to None = (a/2, a/16, a/4, a/16, a/4).
        num_prefix_tokens (int): Leading tokens kept out of the convolutions
            (the SOT token). Defaults to 1.
        skip_connect (bool): Add ``x`` to the output. Defaults to False.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 in_channels: int = 512,
                 hidden_channels: int = 64,
                 branch_channels: Optional[Sequence[int]] = None,
                 num_prefix_tokens: int = 1,
                 skip_connect: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(
            in_channels,
            hidden_channels,
            conv_dims=1,
            branch_channels=branch_channels,
            skip_connect=skip_connect,
            init_cfg=init_cfg)
        self.num_prefix_tokens = num_prefix_tokens

    def forward(self, x: Tensor, ctx: Optional[object] = None) -> Tensor:
        """Adapt word tokens.

        Args:
            x (Tensor): (B, L, C) residual stream.
            ctx (StepContext, optional): Not used.

        Returns:
            Tensor: (B, L, C).
        """
        p = self.num_prefix_tokens
        x0 = self.down(x)
        y = self.mix(x0[:, p:].transpose(1, 2)).transpose(1, 2)
        y = torch.cat([x0[:, :p], y], dim=1) + x0
        return self.up(y, x)
