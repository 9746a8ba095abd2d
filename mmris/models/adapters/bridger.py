# Copyright (c) mmris contributors. All rights reserved.
"""ETRIS Bridger: the adapter between the CLIP image and text encoders.

At each stage (after CLIP blocks 3, 7, 11 for ViT; after ResNet layer2-4 for
RN) both towers are reduced to ``d_model`` channels (``zoom_in``/``linear1``),
combined with the previous stage through LayerNorm, fused with cross-attention
in both directions (``fusion_v``/``fusion_t``), and projected back
(``zoom_out``/``linear2``) as residual updates of both towers (kkakkkka/ETRIS,
model/bridger.py). The ViT variant fuses with a gated cross-attention
only, the ResNet variant with a post-norm decoder layer (self-attn, cross-attn,
FFN).
"""
from typing import Sequence, Tuple

import torch.nn as nn
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor

from ..utils import (GatedCrossAttention, PostNormInteractor, conv_layer,
                     deconv_layer, init_linear_conv)
from ..utils.step_context import StepContext


class Bridger(BaseModule):
    """Stage-wise bidirectional fusion (shared by the ViT and RN variants).

    Subclasses build ``zoom_in``/``zoom_out`` and the interactors.

    Args:
        d_img (Sequence[int]): Visual channels at each stage.
        text_channels (int): Text width. Defaults to 512.
        d_model (int): Bridger width (``ladder_dim``). Defaults to 64.
        nhead (int): Attention heads. Defaults to 8.
        strides (Sequence[int]): Resampling factor of each stage's zoom.
    """

    def __init__(self,
                 d_img: Sequence[int],
                 text_channels: int = 512,
                 d_model: int = 64,
                 nhead: int = 8,
                 strides: Sequence[int] = (1, 1, 1),
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if len(d_img) != len(strides):
            raise ValueError(f'd_img {list(d_img)} and strides '
                             f'{list(strides)} must have one entry per stage')
        self.num_stages = len(d_img)
        self.d_model = d_model
        self.zoom_in, self.zoom_out = nn.ModuleList(), nn.ModuleList()
        self.linear1, self.linear2 = nn.ModuleList(), nn.ModuleList()
        self.fusion_v, self.fusion_t = nn.ModuleList(), nn.ModuleList()
        self.ln_v, self.ln_t = nn.ModuleList(), nn.ModuleList()
        for s in range(self.num_stages):
            last = s == self.num_stages - 1
            zin, zout = self.build_zoom(d_img[s], d_model, strides[s], last)
            self.zoom_in.append(zin)
            self.zoom_out.append(zout)
            self.linear1.append(nn.Linear(text_channels, d_model))
            self.linear2.append(nn.Linear(d_model, text_channels))
            self.fusion_v.append(self.build_interactor(d_model, nhead))
            self.fusion_t.append(self.build_interactor(d_model, nhead))
            if not last:
                self.ln_v.append(nn.LayerNorm(d_model))
                self.ln_t.append(nn.LayerNorm(d_model))
        init_linear_conv(self)

    def build_zoom(self, d_img: int, d_model: int, stride: int,
                   last: bool) -> Tuple[nn.Module, nn.Module]:
        raise NotImplementedError

    def build_interactor(self, d_model: int, nhead: int) -> nn.Module:
        raise NotImplementedError

    def forward(self, vis: Tensor, txt: Tensor,
                ctx: StepContext) -> Tuple[Tensor, Tensor]:
        """One Bridger stage (a ``bridge`` hook of
        :class:`~mmris.models.backbones.AdaptedEncoderPair`).

        Args:
            vis (Tensor): Visual patch map (B, C, H, W).
            txt (Tensor): Text tokens (B, L, C_t).
            ctx (StepContext): ``ctx.stage`` is the stage index;
                ``ctx.store`` carries the previous stage's reduced features
                within the forward pass.

        Returns:
            tuple: Residual updates (B, C, H, W) and (B, L, C_t).
        """
        stage, memory = ctx.stage, ctx.store
        v = self.zoom_in[stage](vis)
        b, c, h, w = v.shape
        v = v.flatten(2).transpose(1, 2)
        t = self.linear1[stage](txt)
        if stage > 0:
            v = self.ln_v[stage - 1](v + memory['v'])
            t = self.ln_t[stage - 1](t + memory['t'])
        memory['v'], memory['t'] = v, t
        v, t = self.fusion_v[stage](v, t), self.fusion_t[stage](t, v)
        v = v.transpose(1, 2).reshape(b, c, h, w)
        return self.zoom_out[stage](v), self.linear2[stage](t)


@MODELS.register_module()
class BridgerViT(Bridger):
    """Bridger for CLIP ViT: 1x1 conv/deconv zooms with BN-ReLU and gated
    cross-attention fusion (official ``Bridger_ViT``, kkakkkka/ETRIS,
    model/bridger.py; no self-attention or FFN, unlike the paper figure).

    Args:
        d_img (Sequence[int]): Defaults to (768, 768, 768).
        text_channels (int): Defaults to 512.
        d_model (int): ``ladder_dim``; 64 released, 128 gives the paper's
            1.39 M. Defaults to 64.
        nhead (int): Defaults to 8.
        strides (Sequence[int]): Defaults to (1, 1, 1).
    """

    def __init__(self,
                 d_img: Sequence[int] = (768, 768, 768),
                 text_channels: int = 512,
                 d_model: int = 64,
                 nhead: int = 8,
                 strides: Sequence[int] = (1, 1, 1),
                 init_cfg=None):
        super().__init__(d_img, text_channels, d_model, nhead, strides,
                         init_cfg)

    def build_zoom(self, d_img, d_model, stride, last):
        if last:
            return (deconv_layer(d_img, d_model, stride, 0, stride),
                    conv_layer(d_model, d_img, stride, 0, stride))
        return (conv_layer(d_img, d_model, stride, 0, stride),
                deconv_layer(d_model, d_img, stride, 0, stride))

    def build_interactor(self, d_model, nhead):
        return GatedCrossAttention(d_model, nhead)


@MODELS.register_module()
class BridgerRN(Bridger):
    """Bridger for CLIP ResNets: strided conv/deconv zooms without BN and a
    post-norm interactor (official ``Bridger_RN``, kkakkkka/ETRIS,
    model/bridger.py).

    Args:
        d_img (Sequence[int]): Defaults to (512, 1024, 2048).
        text_channels (int): Defaults to 512.
        d_model (int): ``ladder_dim``. Defaults to 64.
        nhead (int): Defaults to 4.
        strides (Sequence[int]): Defaults to (2, 1, 2).
        dim_feedforward (int): Interactor FFN width. Defaults to 128.
    """

    def __init__(self,
                 d_img: Sequence[int] = (512, 1024, 2048),
                 text_channels: int = 512,
                 d_model: int = 64,
                 nhead: int = 4,
                 strides: Sequence[int] = (2, 1, 2),
                 dim_feedforward: int = 128,
                 init_cfg=None):
        self.dim_feedforward = dim_feedforward
        super().__init__(d_img, text_channels, d_model, nhead, strides,
                         init_cfg)

    def build_zoom(self, d_img, d_model, stride, last):
        down = nn.Conv2d
        up = nn.ConvTranspose2d
        if last:
            down, up = up, down
        return (down(d_img, d_model, stride, stride, bias=False),
                up(d_model, d_img, stride, stride, bias=False))

    def build_interactor(self, d_model, nhead):
        return PostNormInteractor(d_model, nhead, self.dim_feedforward)
