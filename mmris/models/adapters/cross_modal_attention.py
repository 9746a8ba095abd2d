# Copyright (c) mmris contributors. All rights reserved.
"""Cross-modal attention of the DETRIS Dense Aligner (jiaqihuang01/DETRIS,
model/adapter.py)."""
from typing import Optional

import torch.nn as nn
from torch import Tensor

from ..utils import MultiheadAttention


class CrossModalAttention(nn.Module):
    """Image tokens attend to text tokens in a narrow shared space::

        q = image_proj(img); k = v = text_proj(txt)
        out = back_proj(MHA(q, k, v))        # no internal residual

    Key names as in the official ``CrossModalAttention``
    (``multihead_attn.{in_proj_weight, in_proj_bias, out_proj}``,
    ``image_proj``, ``text_proj``, ``back_proj``).

    Args:
        image_dims (int): Width of the image tokens.
        text_dims (int): Width of the text tokens.
        embed_dims (int): Attention width. Defaults to 128.
        num_heads (int): Defaults to 8.
        dropout (float): Dropout on the attention weights. Defaults to 0.1.
    """

    def __init__(self,
                 image_dims: int,
                 text_dims: int,
                 embed_dims: int = 128,
                 num_heads: int = 8,
                 dropout: float = 0.1):
        super().__init__()
        self.multihead_attn = MultiheadAttention(
            embed_dims, num_heads, dropout=dropout)
        self.image_proj = nn.Linear(image_dims, embed_dims)
        self.text_proj = nn.Linear(text_dims, embed_dims)
        self.back_proj = nn.Linear(embed_dims, image_dims)

    def forward(self,
                image: Tensor,
                text: Tensor,
                key_padding_mask: Optional[Tensor] = None) -> Tensor:
        """Attend.

        Args:
            image (Tensor): (B, N, image_dims).
            text (Tensor): (B, L, text_dims).
            key_padding_mask (Tensor, optional): (B, L) bool, True = ignore.
                Defaults to None (the official code attends to padding).

        Returns:
            Tensor: (B, N, image_dims).
        """
        q = self.image_proj(image)
        kv = self.text_proj(text)
        out = self.multihead_attn(q, kv, kv, key_padding_mask=key_padding_mask)
        return self.back_proj(out)
