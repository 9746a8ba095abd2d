# Copyright (c) mmris contributors. All rights reserved.
"""CLIP ModifiedResNet (RN50/RN101) with the CRIS spatial attention pool."""
from typing import List, Optional, Sequence, Tuple

import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS
from open_clip.modified_resnet import AttentionPool2d, ModifiedResNet
from torch import Tensor

from mmris.checkpoint import load_clip_state_dict, sub_state_dict
from ..utils.step_context import StepContext
from .base_encoder import VisualEncoder


class CRISAttentionPool2d(AttentionPool2d):
    """CLIP's attention pool modified by CRIS to keep the spatial map.

    ``out = ReLU(MHA(x + pos) + connect(x))`` over the h*w tokens (no class
    token), with the pretrained 7x7 table (class row dropped) bicubically
    resized to (h, w) on every call, as CRIS / ETRIS (kkakkkka/ETRIS,
    model/clip.py, ``AttentionPool2d``). ``connect`` (1x1 conv + BN) is not
    part of the OpenAI weights.

    Args:
        spacial_dim (int): Side of the pretrained positional grid.
        embed_dim (int): Input channels.
        num_heads (int): Attention heads.
        output_dim (int): Output channels.
    """

    def __init__(self, spacial_dim: int, embed_dim: int, num_heads: int,
                 output_dim: int):
        super().__init__(spacial_dim, embed_dim, num_heads, output_dim)
        self.spacial_dim = spacial_dim
        self.connect = nn.Sequential(
            nn.Conv2d(embed_dim, output_dim, 1, bias=False),
            nn.BatchNorm2d(output_dim))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        res = self.connect(x)
        side = self.spacial_dim
        pos = self.positional_embedding[1:].reshape(1, side, side, c)
        pos = F.interpolate(
            pos.permute(0, 3, 1, 2),
            size=(h, w),
            mode='bicubic',
            align_corners=False)
        tokens = (x + pos.to(x.dtype)).flatten(2).transpose(1, 2)  # B,HW,C

        def heads(t: Tensor) -> Tensor:
            return t.view(b, h * w, self.num_heads, -1).transpose(1, 2)

        q = heads(self.q_proj(tokens))
        k = heads(self.k_proj(tokens))
        v = heads(self.v_proj(tokens))
        out = F.scaled_dot_product_attention(q, k, v)
        out = self.c_proj(out.transpose(1, 2).reshape(b, h * w, c))
        out = out.transpose(1, 2).reshape(b, -1, h, w)
        return F.relu(out + res, inplace=True)


@MODELS.register_module()
class CLIPModifiedResNet(VisualEncoder):
    """OpenAI CLIP ModifiedResNet built from open_clip's layers.

    Stepped as three units ``layer2``, ``layer3``, ``layer4`` (the stem and
    ``layer1`` form :meth:`embed`); :meth:`head` is the CRIS attention pool.

    Args:
        layers (Sequence[int]): Bottlenecks per stage, (3, 4, 6, 3) for RN50,
            (3, 4, 23, 3) for RN101.
        output_dim (int): Attention-pool output (1024 RN50, 512 RN101).
        heads (int): Attention-pool heads. Defaults to 32.
        width (int): Stem width. Defaults to 64.
        image_size (int): Pretraining resolution, sets the 7x7 pool table.
            Defaults to 224.
        pretrained (str, optional): Local OpenAI checkpoint; its ``visual.*``
            entries must match every key of the network except the
            ``attnpool.connect`` branch. Defaults to None.
        init_cfg (dict, optional): Defaults to None.
    """

    #: The CRIS branch is not part of the OpenAI weights: the official code
    #: loads them with strict=False and keeps ``connect`` randomly
    #: initialised (kkakkkka/ETRIS, model/clip.py).
    not_in_pretrained = ('attnpool.connect.', )

    def __init__(self,
                 layers: Sequence[int] = (3, 4, 6, 3),
                 output_dim: int = 1024,
                 heads: int = 32,
                 width: int = 64,
                 image_size: int = 224,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.pretrained = pretrained
        resnet = ModifiedResNet(
            list(layers),
            output_dim,
            heads,
            image_size=image_size,
            width=width)
        resnet.attnpool = CRISAttentionPool2d(image_size // 32, width * 32,
                                              heads, output_dim)
        resnet.init_parameters()
        for name, child in resnet.named_children():
            self.add_module(name, child)
        self.embed_dims = width * 32
        self.stage_channels = (width * 8, width * 16, width * 32)

    @property
    def blocks(self) -> List[nn.Module]:
        return [self.layer2, self.layer3, self.layer4]

    def init_weights(self) -> None:
        if self.pretrained is None:
            return super().init_weights()
        state = sub_state_dict(
            load_clip_state_dict(self.pretrained), 'visual.')
        self.load_pretrained_state_dict(state, self.pretrained)

    def embed(self, img: Tensor) -> Tuple[Tensor, Optional[tuple]]:
        x = img.to(self.conv1.weight.dtype)
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.bn2(self.conv2(x)))
        x = self.act3(self.bn3(self.conv3(x)))
        x = self.layer1(self.avgpool(x))
        return x, None

    def run_block(self,
                  index: int,
                  x: Tensor,
                  ctx: Optional[StepContext] = None) -> Tensor:
        return self.blocks[index](x)

    def patch_map(self, x: Tensor, grid=None, num_extra: int = 0) -> Tensor:
        return x

    def add_to_patches(self,
                       x: Tensor,
                       delta: Tensor,
                       num_extra: int = 0) -> Tensor:
        return x + delta

    def insert_tokens(self, x: Tensor, tokens: Tensor) -> Tensor:
        raise NotImplementedError('a CNN has no token sequence to extend')

    def final_map(self, x: Tensor, grid=None, num_extra: int = 0) -> Tensor:
        return self.attnpool(x)
