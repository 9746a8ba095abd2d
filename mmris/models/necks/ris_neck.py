# Copyright (c) mmris contributors. All rights reserved.
"""Hierarchical text-gated alignment + CoordConv neck (``FPN`` of
kkakkkka/ETRIS, model/layers.py; "Neck" in BarLeRIa and DETRIS)."""
from typing import List, Sequence

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor

from ..utils import CoordConv, GatedCrossAttention, conv_layer, deconv_layer


@MODELS.register_module()
class RISNeck(BaseModule):
    """The CRIS-lineage neck shared by ETRIS, BarLeRIa and DETRIS.

    Three visual maps are projected to ``out_channels`` at a common grid
    (``f3_proj``/``f4_proj`` strided convs, ``f5_proj`` transposed conv), each
    gated by the sentence feature (``fusion3-5``), concatenated, reduced
    (``aggr``) and refined with a CoordConv (``coordconv``).

    Args:
        in_channels (Sequence[int]): Channels of the three visual maps.
        text_channels (int): Width of the sentence feature. ETRIS/BarLeRIa
            use the CLIP embed dim, DETRIS hard-codes 512.
        out_channels (int): Neck width. Defaults to 512.
        stride (Sequence[int]): Kernel = stride of the three projections
            (``[2, 1, 2]`` for ResNets, ``[1, 1, 1]`` for ViTs).
            Defaults to (1, 1, 1).
        nhead (int): Heads of the gates. Defaults to 8.
        residual_coordconv (bool): ``coordconv(x) + x`` (DETRIS) instead of
            ``coordconv(x)`` (ETRIS/BarLeRIa). Defaults to False.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 text_channels: int,
                 out_channels: int = 512,
                 stride: Sequence[int] = (1, 1, 1),
                 nhead: int = 8,
                 residual_coordconv: bool = False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if len(in_channels) != 3 or len(stride) != 3:
            raise ValueError('RISNeck takes three visual maps: in_channels '
                             f'{list(in_channels)}, stride {list(stride)}')
        c = out_channels
        self.residual_coordconv = residual_coordconv
        self.fusion3 = GatedCrossAttention(c, nhead)
        self.fusion4 = GatedCrossAttention(c, nhead)
        self.fusion5 = GatedCrossAttention(c, nhead)
        self.txt_proj = nn.Linear(text_channels, c)
        self.f3_proj = conv_layer(in_channels[0], c, stride[0], 0, stride[0])
        self.f4_proj = conv_layer(in_channels[1], c, stride[1], 0, stride[1])
        self.f5_proj = deconv_layer(in_channels[2], c, stride[2], 0, stride[2])
        self.aggr = conv_layer(3 * c, c, 1, 0)
        self.coordconv = nn.Sequential(
            CoordConv(c, c, 3, 1), conv_layer(c, c, 3, 1))

    def forward(self, feats: List[Tensor], state: Tensor) -> Tensor:
        """feats: three maps (B, C_i, H_i, W_i); state (B, text_channels) ->
        (B, out_channels, H, W)."""
        txt = self.txt_proj(state)[:, None]  # (B, 1, C): a single key token
        gated = []
        projs = (self.f3_proj, self.f4_proj, self.f5_proj)
        gates = (self.fusion3, self.fusion4, self.fusion5)
        for feat, proj, gate in zip(feats, projs, gates):
            v = proj(feat)
            b, c, h, w = v.shape
            v = gate(v.flatten(2).transpose(1, 2), txt)
            gated.append(v.transpose(1, 2).reshape(b, c, h, w))
        fq = self.aggr(torch.cat(gated, dim=1))
        out = self.coordconv(fq)
        return out + fq if self.residual_coordconv else out
