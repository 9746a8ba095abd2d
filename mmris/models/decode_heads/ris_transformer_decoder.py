# Copyright (c) mmris contributors. All rights reserved.
"""The vision-language transformer decoder of the RIS head
(``TransformerDecoder`` of kkakkkka/ETRIS, model/layers.py)."""
from typing import Dict, Tuple

import torch.nn as nn
from torch import Tensor

from ..utils import MultiheadAttention, sine_encoding_1d, sine_encoding_2d


class RISDecoderLayer(nn.Module):
    """Pre-norm layer: self-attn and cross-attn (each followed by its own
    LayerNorm), then an FFN with an inner LayerNorm. Official key names.

    Args:
        d_model (int): Width. Defaults to 512.
        nhead (int): Heads. Defaults to 8.
        dim_feedforward (int): FFN width. Defaults to 512.
        dropout (float): Dropout. Defaults to 0.1.
    """

    def __init__(self,
                 d_model: int = 512,
                 nhead: int = 8,
                 dim_feedforward: int = 512,
                 dropout: float = 0.1):
        super().__init__()
        self.self_attn_norm = nn.LayerNorm(d_model)
        self.cross_attn_norm = nn.LayerNorm(d_model)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout)
        self.ffn = nn.Sequential(
            nn.Linear(d_model, dim_feedforward), nn.ReLU(True),
            nn.Dropout(dropout), nn.LayerNorm(dim_feedforward),
            nn.Linear(dim_feedforward, d_model))
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, vis: Tensor, txt: Tensor, vis_pos: Tensor,
                txt_pos: Tensor, pad_mask: Tensor) -> Tensor:
        """vis (B, HW, C), txt (B, L, C), positions broadcastable, pad_mask
        (B, L) bool."""
        a = self.norm1(vis)
        q = a + vis_pos
        a = self.self_attn(q, q, a)
        vis = vis + self.dropout1(self.self_attn_norm(a))
        a = self.norm2(vis)
        a = self.multihead_attn(
            a + vis_pos, txt + txt_pos, txt, key_padding_mask=pad_mask)
        vis = vis + self.dropout2(self.cross_attn_norm(a))
        return vis + self.dropout3(self.ffn(self.norm3(vis)))


class RISTransformerDecoder(nn.Module):
    """Stack of :class:`RISDecoderLayer` + final LayerNorm, with fixed 2-D /
    1-D sine positional encodings (cached per shape and device).

    Args:
        num_layers (int): Defaults to 3.
        d_model (int): Defaults to 512.
        nhead (int): Defaults to 8.
        dim_ffn (int): Defaults to 512.
        dropout (float): Defaults to 0.1.
    """

    def __init__(self,
                 num_layers: int = 3,
                 d_model: int = 512,
                 nhead: int = 8,
                 dim_ffn: int = 512,
                 dropout: float = 0.1):
        super().__init__()
        self.layers = nn.ModuleList(
            RISDecoderLayer(d_model, nhead, dim_ffn, dropout)
            for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model)
        self._pos: Dict[Tuple, Tuple[Tensor, Tensor]] = {}

    def positions(self, h: int, w: int, length: int, text_channels: int,
                  ref: Tensor) -> Tuple[Tensor, Tensor]:
        key = (h, w, length, text_channels, ref.device, ref.dtype)
        if key not in self._pos:
            d = self.norm.normalized_shape[0]
            self._pos[key] = (sine_encoding_2d(d, h, w)[None].to(
                ref.device, ref.dtype), sine_encoding_1d(
                    text_channels, length)[None].to(ref.device, ref.dtype))
        return self._pos[key]

    def forward(self, vis: Tensor, txt: Tensor, pad_mask: Tensor) -> Tensor:
        """vis (B, C, H, W), txt (B, L, C), pad_mask (B, L) -> (B, C, H, W)."""
        b, c, h, w = vis.shape
        vis_pos, txt_pos = self.positions(h, w, txt.shape[1], txt.shape[2],
                                          vis)
        x = vis.flatten(2).transpose(1, 2)
        for layer in self.layers:
            x = layer(x, txt, vis_pos, txt_pos, pad_mask)
        return self.norm(x).transpose(1, 2).reshape(b, c, h, w)
