# Copyright (c) mmris contributors. All rights reserved.
"""CLIP ViT vision tower (OpenAI layout) as a steppable frozen encoder."""
from typing import Optional, Tuple

import torch
import torch.nn as nn
from mmseg.registry import MODELS
from torch import Tensor

from mmris.checkpoint import load_clip_state_dict, sub_state_dict
from ..utils.layer_norm import LayerNormFp32
from ..utils.pos_embed import resize_pos_embed
from .base_encoder import VisualEncoder
from .clip_block import CLIPTransformer


@MODELS.register_module()
class CLIPVisionTransformer(VisualEncoder):
    """The OpenAI CLIP ViT image encoder.

    The positional table is built for ``img_size`` and, when pretrained
    weights of another resolution are loaded, resized once with bicubic
    interpolation (``align_corners=False``, class row kept), as the
    official ``build_model(state_dict, txt_length, new_resolution)``
    (kkakkkka/ETRIS, model/clip.py); inputs of any other size are handled
    by resizing on the fly.

    Args:
        img_size (int): Input resolution the table is built for.
            Defaults to 416.
        patch_size (int): Defaults to 16.
        width (int): Defaults to 768.
        layers (int): Defaults to 12.
        heads (int): Defaults to 12.
        output_dim (int): Width after ``proj``. Defaults to 512.
        pretrained (str, optional): Local OpenAI checkpoint (TorchScript
            archive or state dict); its ``visual.*`` entries are loaded
            strictly into the tower's own keys (shortcut flows or adapters
            attached to the blocks keep their initialisation).
            Defaults to None.
        init_cfg (dict, optional): Defaults to None.
    """

    num_prefix_tokens = 1

    def __init__(self,
                 img_size: int = 416,
                 patch_size: int = 16,
                 width: int = 768,
                 layers: int = 12,
                 heads: int = 12,
                 output_dim: int = 512,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.patch_size = patch_size
        self.embed_dims = width
        self.output_dim = output_dim
        self.pretrained = pretrained
        grid = img_size // patch_size
        scale = width**-0.5
        self.conv1 = nn.Conv2d(
            3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(
            scale * torch.randn(grid * grid + 1, width))
        self.ln_pre = LayerNormFp32(width)
        self.transformer = CLIPTransformer(width, layers, heads)
        self.ln_post = LayerNormFp32(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    @property
    def blocks(self) -> nn.ModuleList:
        return self.transformer.resblocks

    def init_weights(self) -> None:
        if self.pretrained is None:
            return super().init_weights()
        state = sub_state_dict(
            load_clip_state_dict(self.pretrained), 'visual.')
        grid = int(round((self.positional_embedding.shape[0] - 1)**0.5))
        if 'positional_embedding' in state:
            state['positional_embedding'] = resize_pos_embed(
                state['positional_embedding'], (grid, grid))
        self.load_pretrained_state_dict(state, self.pretrained)

    def embed(self, img: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        x = self.conv1(img.to(self.conv1.weight.dtype))
        grid = (x.shape[2], x.shape[3])
        x = x.flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1)
        pos = resize_pos_embed(self.positional_embedding, grid)
        x = x + pos.to(x.dtype)
        return self.ln_pre(x), grid

    def final_map(self,
                  x: Tensor,
                  grid: Tuple[int, int],
                  num_extra: int = 0) -> Tensor:
        patches = self.ln_post(x[:, self.num_prefix_tokens + num_extra:])
        out = patches @ self.proj
        return out.transpose(1, 2).reshape(x.shape[0], -1, *grid)
