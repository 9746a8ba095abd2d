# Copyright (c) mmris contributors. All rights reserved.
"""Multi-head attention on fused ``scaled_dot_product_attention``.

The parameters are laid out exactly like :class:`torch.nn.MultiheadAttention`
(``in_proj_weight``, ``in_proj_bias``, ``out_proj``), so official CLIP and RIS
checkpoints load key for key, but the module is batch-first and dispatches to
PyTorch's fused attention kernels (flash / memory-efficient on GPU).
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class MultiheadAttention(nn.Module):
    """Batch-first multi-head attention with ``nn.MultiheadAttention`` keys.

    Args:
        embed_dim (int): Model width.
        num_heads (int): Number of heads.
        dropout (float): Dropout on the attention weights (training only).
            Defaults to 0.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f'embed_dim ({embed_dim}) must be divisible by '
                             f'num_heads ({num_heads})')
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        # Same initialisation as torch.nn.MultiheadAttention.
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def _split_heads(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, -1).transpose(1, 2)

    def forward(self,
                query: Tensor,
                key: Optional[Tensor] = None,
                value: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None,
                attn_mask: Optional[Tensor] = None,
                is_causal: bool = False) -> Tensor:
        """Attend ``query`` (B, Nq, C) to ``key``/``value`` (B, Nk, C).

        Args:
            query (Tensor): Queries, batch first.
            key (Tensor, optional): Keys. Defaults to ``query``.
            value (Tensor, optional): Values. Defaults to ``key``.
            key_padding_mask (Tensor, optional): (B, Nk) bool, True marks keys
                to ignore. Defaults to None.
            attn_mask (Tensor, optional): (Nq, Nk) additive float mask.
                Defaults to None.
            is_causal (bool): Use a causal mask instead of ``attn_mask``.

        Returns:
            Tensor: (B, Nq, C).
        """
        if key is None:
            key = query
        if value is None:
            value = key
        w, b = self.in_proj_weight, self.in_proj_bias
        c = self.embed_dim
        if query is key and key is value:
            q, k, v = F.linear(query, w, b).chunk(3, dim=-1)
        elif key is value:
            q = F.linear(query, w[:c], b[:c])
            k, v = F.linear(key, w[c:], b[c:]).chunk(2, dim=-1)
        else:
            q = F.linear(query, w[:c], b[:c])
            k = F.linear(key, w[c:2 * c], b[c:2 * c])
            v = F.linear(value, w[2 * c:], b[2 * c:])
        q, k, v = map(self._split_heads, (q, k, v))

        mask = attn_mask
        if key_padding_mask is not None:
            pad = torch.zeros(
                key_padding_mask.shape, dtype=q.dtype,
                device=q.device).masked_fill_(key_padding_mask, float('-inf'))
            pad = pad[:, None, None, :]
            mask = pad if mask is None else mask.to(q.dtype) + pad
        elif mask is not None:
            mask = mask.to(q.dtype)
        out = F.scaled_dot_product_attention(
            q, k, v,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=is_causal and mask is None)
        out = out.transpose(1, 2).reshape(query.shape[0], query.shape[1], c)
        return self.out_proj(out)
