# Copyright (c) mmris contributors. All rights reserved.
"""The pre-norm transformer block with the adapter hook points.

Every frozen transformer in mmris (CLIP vision and text towers, DINOv2) is made
of blocks derived from :class:`AdaptableBlock`, which computes::

    x <- s1(x) + ls1(attn(norm1(x)))
    x <- s2(x) + ls2(mlp(norm2(x)) + scale * adapter(a, context))

with three optional hooks installed by :class:`AdaptedEncoderPair`:

* ``adapter``: a module parallel to the FFN, scaled by ``adapter_scale``, fed
  with ``a = norm2(x)`` (``adapter_input='norm'``, DETRIS Dense Aligner) or the
  residual stream (``adapter_input='residual'``, DETRIS Text Adapter), and
  optionally the block's ``context`` (e.g. word features);
* ``flow`` / ``flow2``: replacements ``s1``/``s2`` of the identity shortcuts
  (BarLeRIa shortcut normalizing flows);
* ``ls1``/``ls2``: LayerScale, identity where the architecture has none.

Each branch is split into an inner part and its output projection
(``attn = attn_proj(attn_inner(h))``, ``mlp = ffn_proj(ffn_inner(h))``).
With ``with_cp`` the inner parts of the frozen branches are recomputed in the
backward pass instead of keeping their activations (gradient checkpointing).
The output projections are not recomputed: with frozen weights their
backward pass needs no activation, so recomputing them would be wasted work.
The hooks run normally, so adapter BatchNorm statistics update once per step.

Subclasses only build their layers under the official attribute names and
implement :meth:`norm_attn`, :meth:`attn_inner`, :meth:`attn_proj`,
:meth:`norm_ffn`, :meth:`ffn_inner` and :meth:`ffn_proj`.
"""
from typing import Optional

import torch
import torch.nn as nn
from torch import Tensor
from torch.utils.checkpoint import checkpoint


class AdaptableBlock(nn.Module):
    """Base class of the frozen transformer blocks (see module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._init_hooks()

    def _init_hooks(self) -> None:
        """Create the (empty) hook slots; call after ``nn.Module.__init__``."""
        self.adapter: Optional[nn.Module] = None
        self.adapter_scale = 1.0
        self.adapter_input = 'norm'
        self.flow: Optional[nn.Module] = None
        self.flow2: Optional[nn.Module] = None
        self.with_cp = False

    # -- layers provided by subclasses -------------------------------------
    def norm_attn(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def attn_inner(self, x: Tensor, attn_mask: Optional[Tensor]) -> Tensor:
        """Attention up to (without) its output projection."""
        raise NotImplementedError

    def attn_proj(self, x: Tensor) -> Tensor:
        """The attention's output projection."""
        raise NotImplementedError

    def norm_ffn(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def ffn_inner(self, x: Tensor) -> Tensor:
        """The FFN up to (without) its output projection."""
        raise NotImplementedError

    def ffn_proj(self, x: Tensor) -> Tensor:
        """The FFN's output projection."""
        raise NotImplementedError

    def attn_branch(self, x: Tensor, attn_mask: Optional[Tensor]) -> Tensor:
        """The whole attention branch on normalised tokens ``x``."""
        return self.attn_proj(self.attn_inner(x, attn_mask))

    def ffn_branch(self, x: Tensor) -> Tensor:
        """The whole FFN branch on normalised tokens ``x``."""
        return self.ffn_proj(self.ffn_inner(x))

    def scale_attn(self, x: Tensor) -> Tensor:
        """LayerScale of the attention branch (identity by default)."""
        return x

    def scale_ffn(self, x: Tensor) -> Tensor:
        """LayerScale of the FFN branch (identity by default)."""
        return x

    # -- hooks ----------------------------------------------------------------
    def set_ffn_adapter(self,
                        adapter: nn.Module,
                        scale: float = 1.0,
                        adapter_input: str = 'norm') -> None:
        """Install a module parallel to the FFN (hook kind (b)).

        Args:
            adapter (nn.Module): Called as ``adapter(a, context)``.
            scale (float): Multiplier of the adapter output. Defaults to 1.
            adapter_input (str): 'norm' feeds ``norm2(x)``, 'residual' the
                un-normalised residual stream. Defaults to 'norm'.
        """
        if adapter_input not in ('norm', 'residual'):
            raise ValueError("adapter_input must be 'norm' or 'residual', "
                             f'got {adapter_input!r}')
        self.adapter = adapter
        self.adapter_scale = float(scale)
        self.adapter_input = adapter_input

    def set_shortcuts(self, attn_shortcut: nn.Module,
                      ffn_shortcut: nn.Module) -> None:
        """Replace the two identity shortcuts (hook kind (c))."""
        self.flow = attn_shortcut
        self.flow2 = ffn_shortcut

    # -- forward --------------------------------------------------------------
    def forward(self,
                x: Tensor,
                attn_mask: Optional[Tensor] = None,
                context: Optional[Tensor] = None) -> Tensor:
        """Run the block on batch-first tokens ``x`` (B, N, C).

        Args:
            x (Tensor): Tokens.
            attn_mask (Tensor, optional): Additive attention mask.
            context (Tensor, optional): Passed to the FFN adapter.
        """
        cp = self.with_cp and self.training and torch.is_grad_enabled()
        shortcut = x if self.flow is None else self.flow(x)
        h = self.norm_attn(x)
        if cp:
            a = checkpoint(self.attn_inner, h, attn_mask, use_reentrant=False)
        else:
            a = self.attn_inner(h, attn_mask)
        x = shortcut + self.scale_attn(self.attn_proj(a))
        shortcut = x if self.flow2 is None else self.flow2(x)
        h = self.norm_ffn(x)
        if cp:
            y = checkpoint(self.ffn_inner, h, use_reentrant=False)
        else:
            y = self.ffn_inner(h)
        y = self.ffn_proj(y)
        if self.adapter is not None:
            a = h if self.adapter_input == 'norm' else x
            y = y + self.adapter_scale * self.adapter(a, context)
        return shortcut + self.scale_ffn(y)
