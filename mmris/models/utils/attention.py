# Copyright (c) mmris contributors. All rights reserved.
"""Multi-head attention on fused ``scaled_dot_product_attention``.

The parameters are laid out exactly like :class:`torch.nn.MultiheadAttention`
(``in_proj_weight``, ``in_proj_bias``, ``out_proj``), so official CLIP and RIS
checkpoints load key for key, but the module is batch-first and dispatches to
PyTorch's fused attention kernels (flash / memory-efficient on GPU).

With attention dropout in training, PyTorch's CPU kernels fall back to the
explicit formula and keep three (N_q, N_k) tensors per head for the backward
pass, where the CUDA kernels keep none. :func:`dropout_attention` does on any
device what the CUDA kernels do: it keeps only q, k, v and the row
log-sum-exp, and recomputes the softmax weights and the dropout mask (from a
seed) in the backward pass.
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
    def _weights(q, k, mask, lse=None):
        s = (q @ k.transpose(-2, -1)) * q.shape[-1]**-0.5
        if mask is not None:
            s = s + mask
        if lse is None:
            lse = torch.logsumexp(s, dim=-1, keepdim=True)
        return torch.exp(s - lse), lse

    @staticmethod
    def _keep(shape, p: float, seed: int, like: Tensor) -> Tensor:
        gen = torch.Generator(device=like.device).manual_seed(seed)
        keep = torch.empty(shape, dtype=like.dtype, device=like.device)
        return keep.bernoulli_(1 - p, generator=gen).div_(1 - p)

    @staticmethod
    def forward(ctx, q, k, v, mask, p, seed):
        w, lse = _DropoutAttention._weights(q, k, mask)
        keep = _DropoutAttention._keep(w.shape, p, seed, q)
        ctx.save_for_backward(q, k, v, mask, lse)
        ctx.p, ctx.seed = p, seed
        return (w * keep) @ v

    @staticmethod
    def backward(ctx, grad):
        q, k, v, mask, lse = ctx.saved_tensors
        w, _ = _DropoutAttention._weights(q, k, mask, lse)
        keep = _DropoutAttention._keep(w.shape, ctx.p, ctx.seed, q)
        grad_v = (w * keep).transpose(-2, -1) @ grad
        grad_w = (grad @ v.transpose(-2, -1)) * keep
        grad_s = w * (grad_w - (grad_w * w).sum(dim=-1, keepdim=True))
        grad_s = grad_s * q.shape[-1]**-0.5
        return grad_s @ k, grad_s.transpose(-2, -1) @ q, grad_v, None, None, \
            None


def dropout_mask(shape, p: float, seed: int, like: Tensor) -> Tensor:
    """The scaled keep mask (0 or ``1 / (1 - p)``) that
    :func:`dropout_attention` draws for ``seed``."""
    return _DropoutAttention._keep(shape, p, seed, like)


def dropout_attention(q: Tensor,
                      k: Tensor,
                      v: Tensor,
                      mask: Optional[Tensor],
                      p: float,
                      seed: Optional[int] = None) -> Tensor:
    """Attention with dropout on the weights, keeping only q, k, v and the
    row log-sum-exp for the backward pass (the softmax weights and the
    dropout mask are recomputed there, as fused GPU kernels do).

    Args:
        q (Tensor): (B, H, N_q, d) queries.
        k (Tensor): (B, H, N_k, d) keys.
        v (Tensor): (B, H, N_k, d_v) values.
        mask (Tensor, optional): Additive float mask broadcastable to
            (B, H, N_q, N_k); it gets no gradient.
        p (float): Dropout probability, in [0, 1).
        seed (int, optional): Seed of the dropout mask. Defaults to one
            drawn from torch's default generator.

    Returns:
        Tensor: (B, H, N_q, d_v).
    """
    if not 0 <= p < 1:
        raise ValueError(f'dropout p must be in [0, 1), got {p}')
    if mask is not None and mask.requires_grad:
        raise ValueError('dropout_attention: the attention mask must not '
                         'require a gradient')
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1, )).item())
    return _DropoutAttention.apply(q, k, v, mask, p, seed)


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
        p = self.dropout if self.training else 0.0
        if p > 0 and q.device.type != 'cuda' and torch.is_grad_enabled():
            # No fused kernel with dropout here: do what the CUDA one does.
            if is_causal and mask is None:
                mask = torch.full((q.shape[2], k.shape[2]), float('-inf'),
                                  dtype=q.dtype, device=q.device).triu_(1)
            out = dropout_attention(q, k, v, mask, p)
        else:
            out = F.scaled_dot_product_attention(
                q, k, v,
                attn_mask=mask,
                dropout_p=p,
                is_causal=is_causal and mask is None)
        return out.transpose(1, 2).reshape(query.shape[0], query.shape[1], c)
