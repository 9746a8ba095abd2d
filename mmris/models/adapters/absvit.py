# Copyright (c) mmris contributors. All rights reserved.
"""The tiny AbS-ViT used by BarLeRIa's global side-tuning network
(NastrondAd/BarLeRIa, model/absvit.py): a plain ViT whose attention accepts a
top-down signal, plus the feedback decoders that produce that signal."""
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import caffe2_xavier_init
from mmengine.model.weight_init import trunc_normal_
from torch import Tensor


class TopDownAttention(nn.Module):
    """Multi-head self-attention; a top-down input adds to the values.

    ``v <- v + V-part of qkv(td)`` (the bias included), as in AbS-ViT. The
    attention is ``scaled_dot_product_attention`` (the official code forms
    the softmax weights explicitly; same values to fp32 rounding).

    Args:
        dim (int): Width.
        num_heads (int): Heads.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'dim {dim} is not divisible by {num_heads}')
        self.num_heads = num_heads
        self.scale = (dim // num_heads)**-0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def _split(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        return self.qkv(x).reshape(b, n, 3, self.num_heads,
                                   c // self.num_heads).permute(2, 0, 3, 1, 4)

    def forward(self, x: Tensor, td: Optional[Tensor] = None) -> Tensor:
        b, n, c = x.shape
        q, k, v = self._split(x).unbind(0)
        if td is not None:
            v = v + self._split(td)[2]
        # softmax(q k^T * scale) v, fused: the (n, n) weights are not kept.
        x = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """Linear -> GELU -> Linear (keys ``fc1``, ``fc2``)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class TopDownBlock(nn.Module):
    """Pre-norm ViT block (LayerNorm eps 1e-6) with a top-down input."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = TopDownAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, td: Optional[Tensor] = None) -> Tensor:
        x = x + self.attn(self.norm1(x), td)
        return x + self.mlp(self.norm2(x))


class FeedbackDecoder(nn.Module):
    """Two bias-free linears: ``x <- linear(x)``, ``td = linear2(x)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, dim, bias=False)
        self.linear2 = nn.Linear(dim, dim, bias=False)

    def forward(self, x: Tensor):
        x = self.linear(x)
        return x, self.linear2(x)


class PatchEmbed(nn.Module):
    """Conv patchify (key ``proj``) -> tokens (B, N, C) and grid (h, w)."""

    def __init__(self, patch_size: int, in_channels: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(
            in_channels, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor):
        x = self.proj(x)
        grid = (x.shape[2], x.shape[3])
        return x.flatten(2).transpose(1, 2), grid


class AbSViT(nn.Module):
    """AbS-ViT without class token, final norm or head (``vit_model``).

    Keys: ``patch_embed.proj``, ``pos_embed`` (1, N, C) for the patch grid
    only, ``blocks.{i}``, ``decoders.{i}.{linear,linear2}``. Initialisation
    follows timm: ``pos_embed`` and every Linear truncated-normal(0.02),
    biases 0; the patch convolution keeps PyTorch's default.

    Args:
        img_size (int): Input size the positional table is built for.
            Defaults to 416.
        patch_size (int): Defaults to 16.
        in_channels (int): Defaults to 3.
        embed_dim (int): Defaults to 144 (AbS-ViT tiny).
        depth (int): Defaults to 8.
        num_heads (int): Defaults to 3.
        mlp_ratio (float): Defaults to 4.
    """

    def __init__(self,
                 img_size: int = 416,
                 patch_size: int = 16,
                 in_channels: int = 3,
                 embed_dim: int = 144,
                 depth: int = 8,
                 num_heads: int = 3,
                 mlp_ratio: float = 4.) -> None:
        super().__init__()
        self.embed_dim = self.num_features = embed_dim
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.patch_embed = PatchEmbed(patch_size, in_channels, embed_dim)
        self.pos_embed = nn.Parameter(
            torch.zeros(1, self.grid_size[0] * self.grid_size[1], embed_dim))
        self.blocks = nn.ModuleList(
            TopDownBlock(embed_dim, num_heads, mlp_ratio)
            for _ in range(depth))
        self.decoders = nn.ModuleList(
            FeedbackDecoder(embed_dim) for _ in range(depth))
        trunc_normal_(self.pos_embed, std=.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def embed(self, img: Tensor):
        """Patch tokens + (bicubically resized) positions, and the grid."""
        x, grid = self.patch_embed(img)
        pos = self.pos_embed
        if tuple(grid) != tuple(self.grid_size):
            pos = F.interpolate(
                pos.reshape(1, *self.grid_size, -1).permute(0, 3, 1, 2),
                size=grid,
                mode='bicubic',
                align_corners=False).flatten(2).transpose(1, 2)
        return x + pos, grid

    def feedback(self, x: Tensor) -> List[Tensor]:
        """Top-down signals for every block, from the last one down."""
        td = [None] * len(self.decoders)
        for depth in range(len(self.decoders) - 1, -1, -1):
            x, td[depth] = self.decoders[depth](x)
        return td

    def reconstruction_loss(self, block_inputs: List[Tensor],
                            block_outputs: List[Tensor]) -> Tensor:
        """Sum over blocks of ``MSE(decoders[d].linear(out_d), in_d)`` with
        both sides detached (only the decoders learn from it)."""
        losses = []
        for depth in range(len(self.decoders) - 1, -1, -1):
            recon = self.decoders[depth].linear(block_outputs[depth].detach())
            losses.append(F.mse_loss(recon, block_inputs[depth].detach()))
        return sum(losses)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of (B, C, H, W) maps."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class AddFusion(nn.Module):
    """Add a projected CLIP map to the side patch tokens.

    ``input_proj`` = LayerNorm2d(C_in) -> Conv2d(C_in, C, 1); the result is
    resized bilinearly to the side grid and added token-wise.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.input_proj = nn.Sequential(
            LayerNorm2d(in_channels),
            nn.Conv2d(in_channels, out_channels, kernel_size=1))
        # detectron2's c2_xavier_fill (kaiming-uniform, a=1, zero bias)
        caffe2_xavier_init(self.input_proj[1])

    def forward(self, x: Tensor, feat: Tensor, grid) -> Tensor:
        y = F.interpolate(
            self.input_proj(feat.contiguous()),
            size=tuple(grid),
            mode='bilinear',
            align_corners=False)
        return x + y.flatten(2).transpose(1, 2)


__all__ = ['AbSViT', 'AddFusion', 'TopDownBlock']
