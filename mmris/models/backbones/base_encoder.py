# Copyright (c) mmris contributors. All rights reserved.
"""The interface every frozen encoder offers to :class:`AdaptedEncoderPair`.

An encoder is stepped unit by unit (a transformer block, or a ResNet stage) so
that adapters can act between and inside the units. Between units a visual
encoder carries either tokens ``(B, N, C)`` laid out as
``[prefix tokens, inserted tokens, patch tokens]`` or, for CNNs, a feature map
``(B, C, H, W)``; a text encoder carries tokens ``(B, L, C)``.
"""
from typing import List, Optional, Tuple

import torch
from mmengine.model import BaseModule
from torch import Tensor


class VisualEncoder(BaseModule):
    """Base class of the steppable frozen visual encoders.

    Subclasses implement :meth:`embed`, :attr:`blocks` and :meth:`head`;
    token-based encoders set :attr:`num_prefix_tokens` and inherit the token
    helpers, map-based ones (ResNet) override them.
    """

    #: class token (+ register tokens) in front of the patch tokens.
    num_prefix_tokens: int = 0
    #: width of the tokens/maps produced by every unit.
    embed_dims: int = 0

    def embed(self, img: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        """Stem: image (B, 3, H, W) -> (representation, patch grid (h, w))."""
        raise NotImplementedError

    @property
    def blocks(self) -> torch.nn.ModuleList:
        """The units stepped one by one."""
        raise NotImplementedError

    def run_block(self, index: int, x: Tensor,
                  context: Optional[object] = None) -> Tensor:
        """Run unit ``index``; ``context`` reaches FFN adapters."""
        return self.blocks[index](x, context=context)

    def head(self, x: Tensor, grid: Tuple[int, int],
             num_extra: int = 0) -> Tensor:
        """Final projection after the last unit -> map (B, C', h, w)."""
        raise NotImplementedError

    # -- token helpers (transformers) --------------------------------------
    def patch_map(self, x: Tensor, grid: Tuple[int, int],
                  num_extra: int = 0) -> Tensor:
        """Patch tokens of ``x`` as a map (B, C, h, w)."""
        start = self.num_prefix_tokens + num_extra
        patches = x[:, start:]
        return patches.transpose(1, 2).reshape(x.shape[0], x.shape[2], *grid)

    def add_to_patches(self, x: Tensor, delta: Tensor,
                       num_extra: int = 0) -> Tensor:
        """Add a map ``delta`` (B, C, h, w) to the patch tokens of ``x``."""
        start = self.num_prefix_tokens + num_extra
        delta = delta.flatten(2).transpose(1, 2)
        return torch.cat([x[:, :start], x[:, start:] + delta], dim=1)

    def insert_tokens(self, x: Tensor, tokens: Tensor) -> Tensor:
        """Insert ``tokens`` (B, T, C) right after the prefix tokens."""
        k = self.num_prefix_tokens
        return torch.cat([x[:, :k], tokens.to(x.dtype), x[:, k:]], dim=1)

    def forward(self, img: Tensor) -> List[Tensor]:
        """Plain frozen forward: ``[head map]``."""
        x, grid = self.embed(img)
        for i in range(len(self.blocks)):
            x = self.run_block(i, x)
        return [self.head(x, grid)]


class TextEncoder(BaseModule):
    """Base class of the steppable frozen text encoders."""

    embed_dims: int = 0

    def embed(self, ids: Tensor) -> Tensor:
        """Token ids (B, L) -> input embeddings (B, L, C)."""
        raise NotImplementedError

    @property
    def blocks(self) -> torch.nn.ModuleList:
        raise NotImplementedError

    def run_block(self, index: int, x: Tensor,
                  context: Optional[object] = None) -> Tensor:
        raise NotImplementedError

    def head(self, x: Tensor, ids: Tensor) -> Tuple[Tensor, Tensor]:
        """-> (word features (B, L, C), sentence feature (B, D))."""
        raise NotImplementedError

    def forward(self, ids: Tensor) -> Tuple[Tensor, Tensor]:
        x = self.embed(ids)
        for i in range(len(self.blocks)):
            x = self.run_block(i, x)
        return self.head(x, ids)
