# Copyright (c) mmris contributors. All rights reserved.
"""Cross-modal interaction layers shared by the Bridger and the RIS neck."""
from typing import Optional

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .attention import MultiheadAttention


class GatedCrossAttention(nn.Module):
    """``q * Attn(q, m, m)``: cross-attention used as a multiplicative gate.

    This is the official ``InteractorT`` (key ``multihead_attn``): no residual,
    no normalisation, no FFN. With a single memory token the softmax is 1 and
    it reduces to ``q * out_proj(v_proj(m))`` (kkakkkka/ETRIS,
    model/layers.py).

    Args:
        d_model (int): Width.
        nhead (int): Heads.
        dropout (float): Attention dropout. Defaults to 0.
    """

    def __init__(self, d_model: int, nhead: int, dropout: float = 0.0):
        super().__init__()
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout)

    def forward(self,
                query: Tensor,
                memory: Tensor,
                memory_key_padding_mask: Optional[Tensor] = None) -> Tensor:
        """query (B, Nq, C), memory (B, Nk, C) -> (B, Nq, C)."""
        return query * self.multihead_attn(
            query, memory, memory, key_padding_mask=memory_key_padding_mask)


class PostNormInteractor(nn.Module):
    """Post-norm decoder layer: self-attn, cross-attn, FFN (ETRIS
    ``Interactor``).

    ``x = LN1(x + SA(x)); x = LN2(x + CA(x, m)); x = LN3(x + FFN(x))``.

    Args:
        d_model (int): Width.
        nhead (int): Heads.
        dim_feedforward (int): FFN hidden width. Defaults to 128.
        dropout (float): Dropout everywhere. Defaults to 0.1.
    """

    def __init__(self,
                 d_model: int,
                 nhead: int,
                 dim_feedforward: int = 128,
                 dropout: float = 0.1):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self,
                query: Tensor,
                memory: Tensor,
                memory_key_padding_mask: Optional[Tensor] = None) -> Tensor:
        x = self.norm1(query + self.dropout1(self.self_attn(query)))
        x = self.norm2(x + self.dropout2(
            self.multihead_attn(
                x, memory, memory, key_padding_mask=memory_key_padding_mask)))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(x))))
        return self.norm3(x + self.dropout3(ffn))
