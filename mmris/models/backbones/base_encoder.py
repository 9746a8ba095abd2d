# Copyright (c) mmris contributors. All rights reserved.
"""The interface every frozen encoder offers to :class:`AdaptedEncoderPair`.

An encoder is stepped unit by unit (a transformer block, or a ResNet stage) so
that adapters can act between and inside the units. Between units a visual
encoder carries either tokens ``(B, N, C)`` laid out as
``[prefix tokens, inserted tokens, patch tokens]`` or, for CNNs, a feature map
``(B, C, H, W)``; a text encoder carries tokens ``(B, L, C)``.

Both base classes share :class:`FrozenEncoderMixin`: the encoder's *own*
state-dict keys (those of the modules attached to its blocks through the
hook points excluded by module identity, not by name), the
strict loading of pretrained weights against exactly those keys, and the
parameters the RIS forward never uses (kept frozen whatever the
``trainable`` rule of :class:`AdaptedEncoderPair` says).
"""
from typing import Dict, Iterable, List, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from ..utils.step_context import StepContext


class FrozenEncoderMixin:
    """Hook-aware key bookkeeping shared by every frozen encoder."""

    #: Parameters that exist in the pretrained files but that no RIS forward
    #: uses (e.g. CLIP's ``logit_scale``): they never become trainable, so
    #: every trainable parameter receives a gradient (distributed training
    #: without ``find_unused_parameters``).
    unused_parameters: Tuple[str, ...] = ()
    #: Key prefixes of the encoder's own modules that the pretrained files do
    #: not hold (e.g. the CRIS ``attnpool.connect`` branch of the ResNet).
    not_in_pretrained: Tuple[str, ...] = ()

    def hook_modules(self) -> List[nn.Module]:
        """Modules attached to the blocks through the hook points."""
        return [
            m for block in self.blocks
            for m in getattr(block, 'hook_modules', list)()
        ]

    def own_state_keys(self) -> List[str]:
        """State-dict keys of the encoder itself (hook modules excluded)."""
        hooks = {id(m) for m in self.hook_modules()}
        prefixes = tuple(name + '.' for name, m in self.named_modules()
                         if name and id(m) in hooks)
        return [k for k in self.state_dict() if not k.startswith(prefixes)]

    def load_pretrained_state_dict(self, state: Dict[str, Tensor],
                                   source: str) -> None:
        """Load pretrained encoder weights strictly against
        :meth:`own_state_keys`.

        Every own key (except :attr:`not_in_pretrained`) must be in
        ``state`` with the same shape, and every key of ``state`` must be
        used; the hook modules keep their own initialisation.

        Args:
            state (dict): Tensors under the encoder's key names.
            source (str): The file the tensors come from (for messages).

        Raises:
            RuntimeError: Naming ``source`` and the missing, unexpected and
                shape-mismatched keys.
        """
        own = self.own_state_keys()
        current = self.state_dict()
        optional = tuple(self.not_in_pretrained)
        missing = [
            k for k in own
            if k not in state and not (optional and k.startswith(optional))
        ]
        unexpected = [k for k in state if k not in set(own)]
        mismatched = [
            f'{k}: file {tuple(state[k].shape)}, model '
            f'{tuple(current[k].shape)}' for k in own
            if k in state and tuple(state[k].shape) != tuple(current[k].shape)
        ]
        if missing or unexpected or mismatched:
            raise RuntimeError(
                f'Error(s) in loading "{source}" into '
                f'{type(self).__name__}: missing keys {missing}, unexpected '
                f'keys {unexpected}, shape mismatches {mismatched}')
        self.load_state_dict(state, strict=False)

    def freeze(self, trainable: Iterable) -> None:
        """Set ``requires_grad`` of the encoder's own parameters: True where
        the name matches one of the compiled regexes ``trainable`` and is
        not in :attr:`unused_parameters`."""
        patterns = list(trainable)
        unused = set(self.unused_parameters)
        for name, param in self.named_parameters():
            param.requires_grad = name not in unused and any(
                p.search(name) for p in patterns)


class VisualEncoder(FrozenEncoderMixin, BaseModule):
    """Base class of the steppable frozen visual encoders.

    Subclasses implement :meth:`embed`, :attr:`blocks` and :meth:`final_map`;
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

    def run_block(self,
                  index: int,
                  x: Tensor,
                  ctx: Optional[StepContext] = None) -> Tensor:
        """Run unit ``index``; ``ctx`` reaches the block's hooks."""
        return self.blocks[index](x, ctx)

    def final_map(self,
                  x: Tensor,
                  grid: Tuple[int, int],
                  num_extra: int = 0) -> Tensor:
        """Final projection after the last unit -> map (B, C', h, w)."""
        raise NotImplementedError

    # -- token helpers (transformers) --------------------------------------
    def patch_map(self,
                  x: Tensor,
                  grid: Tuple[int, int],
                  num_extra: int = 0) -> Tensor:
        """Patch tokens of ``x`` as a map (B, C, h, w)."""
        start = self.num_prefix_tokens + num_extra
        patches = x[:, start:]
        return patches.transpose(1, 2).reshape(x.shape[0], x.shape[2], *grid)

    def add_to_patches(self,
                       x: Tensor,
                       delta: Tensor,
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
        """Plain frozen forward: ``[final map]``."""
        x, grid = self.embed(img)
        for i in range(len(self.blocks)):
            x = self.run_block(i, x)
        return [self.final_map(x, grid)]


class TextEncoder(FrozenEncoderMixin, BaseModule):
    """Base class of the steppable frozen text encoders."""

    embed_dims: int = 0

    def embed(self, ids: Tensor) -> Tensor:
        """Token ids (B, L) -> input embeddings (B, L, C)."""
        raise NotImplementedError

    @property
    def blocks(self) -> torch.nn.ModuleList:
        raise NotImplementedError

    def run_block(self,
                  index: int,
                  x: Tensor,
                  ctx: Optional[StepContext] = None) -> Tensor:
        """Run block ``index``; ``ctx`` reaches the block's hooks."""
        raise NotImplementedError

    def final_features(self, x: Tensor, ids: Tensor) -> Tuple[Tensor, Tensor]:
        """-> (word features (B, L, C), sentence feature (B, D))."""
        raise NotImplementedError

    def forward(self, ids: Tensor) -> Tuple[Tensor, Tensor]:
        x = self.embed(ids)
        for i in range(len(self.blocks)):
            x = self.run_block(i, x)
        return self.final_features(x, ids)
