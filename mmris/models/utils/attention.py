# Copyright (c) mmris contributors. All rights reserved.
"""Multi-head attention on fused ``scaled_dot_product_attention``.

The parameters are laid out exactly like :class:`torch.nn.MultiheadAttention`
(``in_proj_weight``, ``in_proj_bias``, ``out_proj``), so official CLIP and RIS
checkpoints load key for key, but the module is batch-first and dispatches to
PyTorch's fused attention kernels (flash / memory-efficient on GPU).

With attention dropout in training, PyTorch's CPU kernels fall back to the
explicit formula and keep three (N_q, N_k) tensors per head for the backward
pass, where the CUDA kernels keep none. :func:`dropout_attention` keeps what
the CUDA kernels keep (q, k, v and the output) plus the dropout mask as one
byte per weight, and recomputes the softmax weights in the backward pass.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class _DropoutAttention(torch.autograd.Function):
    """softmax(q k^T / sqrt(d) + mask) with dropout, times v; see
    :func:`dropout_attention`."""

    @staticmethod
    def _weights(q: Tensor, k: Tensor, mask: Optional[Tensor]) -> Tensor:
        s = (q * q.shape[-1]**-0.5) @ k.transpose(-2, -1)
        if mask is not None:
            s = s.add_(mask)
        return torch.softmax(s, dim=-1)

    @staticmethod
    def forward(ctx, q, k, v, mask, p, generator):
        # Contiguous once: batched products of the (B, N, H, d) views of
        # the projections would otherwise copy them at every use.
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        w = _DropoutAttention._weights(q, k, mask)
        drop = torch.empty(w.shape, dtype=torch.bool, device=w.device)
        drop.bernoulli_(p, generator=generator)
        out = (w.masked_fill_(drop, 0) @ v).mul_(1 / (1 - p))
        ctx.save_for_backward(q, k, v, mask, out, drop)
        ctx.p = p
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        q, k, v, mask, out, drop = ctx.saved_tensors
        grad = grad.contiguous()
        inv_keep = 1 / (1 - ctx.p)
        w = _DropoutAttention._weights(q, k, mask)
        grad_v = (
            w.masked_fill(drop, 0).transpose(-2, -1) @ grad).mul_(inv_keep)
        grad_w = (grad @ v.transpose(-2, -1)).masked_fill_(drop,
                                                           0).mul_(inv_keep)
        # softmax backward; sum_j grad_w_j w_j = <grad, out> row by row.
        grad_s = grad_w.sub_((grad * out).sum(-1, keepdim=True)).mul_(w)
        scale = q.shape[-1]**-0.5
        grad_q = (grad_s @ k).mul_(scale)
        grad_k = grad_s.transpose(-2, -1) @ (q * scale)
        return grad_q, grad_k, grad_v, None, None, None


def dropout_attention(q: Tensor,
                      k: Tensor,
                      v: Tensor,
                      mask: Optional[Tensor],
                      p: float,
                      generator: Optional[torch.Generator] = None) -> Tensor:
    """Attention with dropout on the weights that keeps q, k, v, the output
    and the dropout mask (one byte per weight) for the backward pass and
    recomputes the softmax weights there (as fused GPU kernels do), instead
    of keeping the weights, the dropped weights and the mask as float
    tensors.

    Args:
        q (Tensor): (B, H, N_q, d) queries.
        k (Tensor): (B, H, N_k, d) keys.
        v (Tensor): (B, H, N_k, d_v) values.
        mask (Tensor, optional): Additive float mask broadcastable to
            (B, H, N_q, N_k); it gets no gradient.
        p (float): Dropout probability, in [0, 1).
        generator (torch.Generator, optional): Draws the dropout mask.
            Defaults to torch's default generator of the device.

    Returns:
        Tensor: (B, H, N_q, d_v).
    """
    if not 0 <= p < 1:
        raise ValueError(f'dropout p must be in [0, 1), got {p}')
    if mask is not None and mask.requires_grad:
        raise ValueError('dropout_attention: the attention mask must not '
                         'require a gradient')
    return _DropoutAttention.apply(q, k, v, mask, p, generator)


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
        self.in_proj_weight = nn.Parameter(
            torch.empty(3 * embed_dim, embed_dim))
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
        """Attend ``query`` (B, Nq, C) to ``key``/``value`` (B, Nk, C) and
        project: ``out_proj(attend(...))``; arguments as :meth:`attend`."""
        return self.out_proj(
            self.attend(query, key, value, key_padding_mask, attn_mask,
                        is_causal))

    def attend(self,
               query: Tensor,
               key: Optional[Tensor] = None,
               value: Optional[Tensor] = None,
               key_padding_mask: Optional[Tensor] = None,
               attn_mask: Optional[Tensor] = None,
               is_causal: bool = False) -> Tensor:
        """The heads' outputs, concatenated, before the output projection.

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
            return self.attend_projected(
                self.project(query), key_padding_mask, attn_mask, is_causal)
        if key is value:
            q = F.linear(query, w[:c], b[:c])
            k, v = F.linear(key, w[c:], b[c:]).chunk(2, dim=-1)
        else:
            q = F.linear(query, w[:c], b[:c])
            k = F.linear(key, w[c:2 * c], b[c:2 * c])
            v = F.linear(value, w[2 * c:], b[2 * c:])
        return self._attend(q, k, v, key_padding_mask, attn_mask, is_causal)

    def project(self, x: Tensor) -> Tensor:
        """Self-attention q, k, v of ``x`` (B, N, C) in one product:
        (B, N, 3C)."""
        return F.linear(x, self.in_proj_weight, self.in_proj_bias)

    def attend_projected(self,
                         qkv: Tensor,
                         key_padding_mask: Optional[Tensor] = None,
                         attn_mask: Optional[Tensor] = None,
                         is_causal: bool = False) -> Tensor:
        """Self-attention of projected ``qkv`` (B, N, 3C) (:meth:`project`,
        possibly adapted), before the output projection: (B, N, C)."""
        q, k, v = qkv.chunk(3, dim=-1)
        return self._attend(q, k, v, key_padding_mask, attn_mask, is_causal)

    def _attend(self, q: Tensor, k: Tensor, v: Tensor,
                key_padding_mask: Optional[Tensor],
                attn_mask: Optional[Tensor], is_causal: bool) -> Tensor:
        batch, length = q.shape[0], q.shape[1]
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
        p = self.dropout if self.training else 0.0
        if p > 0 and q.device.type != 'cuda' and torch.is_grad_enabled():
            # No fused kernel with dropout here: do what the CUDA one does.
            if is_causal and mask is None:
                mask = torch.full((q.shape[2], k.shape[2]),
                                  float('-inf'),
                                  dtype=q.dtype,
                                  device=q.device).triu_(1)
            out = dropout_attention(q, k, v, mask, p)
        else:
            out = F.scaled_dot_product_attention(
                q,
                k,
                v,
                attn_mask=mask,
                dropout_p=p,
                is_causal=is_causal and mask is None)
        return out.transpose(1, 2).reshape(batch, length, self.embed_dim)
