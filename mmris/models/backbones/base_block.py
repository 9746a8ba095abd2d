# Copyright (c) mmris contributors. All rights reserved.
"""The pre-norm transformer block with named adapter hook points.

Every frozen transformer in mmris (CLIP vision and text towers, DINOv2,
EVA02) is made of blocks derived from :class:`AdaptableBlock`, which
computes::

    s  = attn_shortcut(x)                       # identity without a hook
    h  = norm1(x)
    qkv = proj_qkv(h) + qkv(h)                  # hook: delta of q, k, v
    a  = attend(qkv)                            # heads, before out proj
    x  = s + ls1(proj(a) + attn_out(a) + attn_parallel(h or x))
    s  = ffn_shortcut(x)
    h  = norm2(x)
    x  = s + ls2(ffn(h) + ffn_parallel(h or x))

Hook points (:data:`HOOK_POINTS`), each a module called as
``module(input, ctx)`` (``ctx``: the :class:`~mmris.models.utils.StepContext`
of the call) and attached by :class:`~.adapted_encoder_pair.AdaptedEncoderPair`
under an attribute name of the block (so its keys are
``<block>.<name>.*``):

* ``attn_shortcut`` / ``ffn_shortcut``: replace the identity shortcut
  (BarLeRIa shortcut normalizing flows);
* ``qkv``: returns a delta of the fused q/k/v projection, a (B, N, 3C)
  tensor or a tuple ``(dq, dk, dv)`` whose entries may be None (LoRA);
* ``attn_out``: a delta of the attention's output projection, from the
  heads' output (LoRA on the output projection);
* ``attn_parallel`` / ``ffn_parallel``: modules parallel to the attention /
  FFN branch (inside the LayerScale), fed with the normalised tokens
  (``input='norm'``) or the residual stream (``input='residual'``), times
  ``scale`` (DETRIS Dense Aligner / Text Adapter, AdaptFormer).

Each branch is split into an inner part and its output projection. With
``with_cp`` the inner parts of the frozen branches (q/k/v projection and
attention, the FFN up to its output layer) are recomputed in the backward
pass instead of keeping their activations. The output projections are not
recomputed: with frozen weights their backward pass needs no activation.
Hooks inside the recomputed part (``qkv``) are recomputed with it; the
others run once, so adapter BatchNorm statistics update once per step.

Subclasses build their layers under the official attribute names and
implement :meth:`norm_attn`, :meth:`proj_qkv`, :meth:`attend`,
:meth:`attn_proj`, :meth:`norm_ffn`, :meth:`ffn_inner` and
:meth:`ffn_proj` (and :meth:`scale_attn` / :meth:`scale_ffn` when the
architecture has LayerScale).
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from ..utils.step_context import StepContext

#: The hook points of every :class:`AdaptableBlock`.
HOOK_POINTS = ('attn_shortcut', 'qkv', 'attn_out', 'attn_parallel',
               'ffn_shortcut', 'ffn_parallel')
_PARALLEL = ('attn_parallel', 'ffn_parallel')
_SCALED = ('qkv', 'attn_out', 'attn_parallel', 'ffn_parallel')


@dataclass(frozen=True)
class BlockHook:
    """One module attached to a block: where, under which name, how."""
    point: str
    name: str
    scale: float = 1.0
    input: str = 'norm'
    method: str = 'forward'


class AdaptableBlock(nn.Module):
    """Base class of the frozen transformer blocks (see module docstring).

    Attributes:
        with_cp (bool): Recompute the frozen branches in backward.
    """

    def __init__(self) -> None:
        super().__init__()
        self._init_hooks()

    def _init_hooks(self) -> None:
        """Create the (empty) hook table; call after ``nn.Module.__init__``
        in subclasses that do not call ``AdaptableBlock.__init__``."""
        self._hooks: Dict[str, List[BlockHook]] = {p: [] for p in HOOK_POINTS}
        # modules owned elsewhere (e.g. by the encoder pair) and called here
        self._borrowed: Dict[str, nn.Module] = {}
        self.with_cp = False

    # -- layers provided by subclasses ---------------------------------------
    def norm_attn(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def proj_qkv(self, h: Tensor) -> Tensor:
        """The fused q/k/v projection: (B, N, C) -> (B, N, 3C)."""
        raise NotImplementedError

    def attend(self, qkv: Tensor, attn_mask: Optional[Tensor],
               ctx: Optional[StepContext]) -> Tensor:
        """Attention of projected ``qkv`` up to (without) the output
        projection: (B, N, 3C) -> (B, N, C)."""
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

    def scale_attn(self, x: Tensor) -> Tensor:
        """LayerScale of the attention branch (identity by default)."""
        return x

    def scale_ffn(self, x: Tensor) -> Tensor:
        """LayerScale of the FFN branch (identity by default)."""
        return x

    # -- hooks ----------------------------------------------------------------
    def attach(self,
               point: str,
               name: str,
               module: Optional[nn.Module],
               scale: float = 1.0,
               input: str = 'norm',
               method: str = 'forward',
               owned: bool = True) -> None:
        """Attach ``module`` at hook ``point`` under attribute ``name``.

        Args:
            point (str): One of :data:`HOOK_POINTS`.
            name (str): Attribute of the block that holds the module (its
                state-dict prefix), e.g. 'adapter', 'flow'.
            module (nn.Module, optional): Called as
                ``getattr(module, method)(input, ctx)``. None reuses the
                module already attached under ``name``.
            scale (float): Multiplier of the module output (delta points).
                Defaults to 1.
            input (str): Parallel points: 'norm' feeds the normalised
                tokens, 'residual' the residual stream. Defaults to 'norm'.
            method (str): Method of the module to call. Defaults to
                'forward'.
            owned (bool): Register ``module`` as a child of the block (its
                keys then live under the block). False calls a module owned
                by another part of the model (no second copy of its keys).
                Defaults to True.
        """
        if point not in HOOK_POINTS:
            raise ValueError(f'unknown block hook point {point!r}; choose '
                             f'from {HOOK_POINTS}')
        if input not in ('norm', 'residual'):
            raise ValueError("input must be 'norm' or 'residual', got "
                             f'{input!r}')
        if point not in _SCALED and scale != 1.0:
            raise ValueError(f'{point} hooks take no scale')
        if module is None:
            if not isinstance(self._hook_module(name), nn.Module):
                raise ValueError(f'no module named {name!r} to reuse')
        elif name in self._modules or hasattr(self, name):
            raise ValueError(f'block attribute {name!r} is taken; give the '
                             'adapter another name')
        elif owned:
            self.add_module(name, module)
        else:
            self._borrowed[name] = module
        self._hooks[point].append(
            BlockHook(point, name, float(scale), input, method))

    def hooks(self, point: Optional[str] = None) -> List[BlockHook]:
        """The attached hooks (of ``point``, or all)."""
        if point is not None:
            return list(self._hooks[point])
        return [h for p in HOOK_POINTS for h in self._hooks[p]]

    def _hook_module(self, name: str) -> Optional[nn.Module]:
        module = self._modules.get(name)
        return module if module is not None else self._borrowed.get(name)

    def hook_modules(self) -> List[nn.Module]:
        """The modules attached through the hooks and owned by the block."""
        seen, out = set(), []
        for hook in self.hooks():
            module = self._modules.get(hook.name)
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                out.append(module)
        return out

    def _call(self, hook: BlockHook, x: Tensor,
              ctx: Optional[StepContext]) -> Union[Tensor, Tuple]:
        return getattr(self._hook_module(hook.name), hook.method)(x, ctx)

    def _shortcut(self, point: str, x: Tensor,
                  ctx: Optional[StepContext]) -> Tensor:
        for hook in self._hooks[point]:
            x = self._call(hook, x, ctx)
        return x

    def _deltas(self, point: str, h: Tensor, x: Tensor,
                ctx: Optional[StepContext]) -> Optional[Tensor]:
        out = None
        for hook in self._hooks[point]:
            y = self._call(hook, h if hook.input == 'norm' else x, ctx)
            y = y if hook.scale == 1.0 else hook.scale * y
            out = y if out is None else out + y
        return out

    def _qkv(self, h: Tensor, ctx: Optional[StepContext]) -> Tensor:
        qkv = self.proj_qkv(h)
        for hook in self._hooks['qkv']:
            delta = self._call(hook, h, ctx)
            if isinstance(delta, (tuple, list)):
                c = qkv.shape[-1] // 3
                parts = list(qkv.split(c, dim=-1))
                for i, d in enumerate(delta):
                    if d is not None:
                        parts[i] = parts[i] + hook.scale * d
                qkv = torch.cat(parts, dim=-1)
            else:
                qkv = qkv + hook.scale * delta
        return qkv

    def attn_inner(self, h: Tensor, attn_mask: Optional[Tensor],
                   ctx: Optional[StepContext]) -> Tensor:
        """q/k/v projection (with the ``qkv`` hooks) and attention, without
        the output projection."""
        return self.attend(self._qkv(h, ctx), attn_mask, ctx)

    def attn_branch(self,
                    h: Tensor,
                    attn_mask: Optional[Tensor] = None,
                    ctx: Optional[StepContext] = None) -> Tensor:
        """The frozen attention branch on normalised tokens ``h`` (with the
        ``qkv`` hooks, without the other ones)."""
        return self.attn_proj(self.attn_inner(h, attn_mask, ctx))

    def ffn_branch(self, h: Tensor) -> Tensor:
        """The frozen FFN branch on normalised tokens ``h``."""
        return self.ffn_proj(self.ffn_inner(h))

    # -- forward --------------------------------------------------------------
    def forward(self,
                x: Tensor,
                ctx: Optional[StepContext] = None,
                attn_mask: Optional[Tensor] = None) -> Tensor:
        """Run the block on batch-first tokens ``x`` (B, N, C).

        Args:
            x (Tensor): Tokens.
            ctx (StepContext, optional): Passed to every hook.
            attn_mask (Tensor, optional): Additive attention mask.
        """
        cp = self.with_cp and self.training and torch.is_grad_enabled()
        shortcut = self._shortcut('attn_shortcut', x, ctx)
        h = self.norm_attn(x)
        if cp:
            a = checkpoint(
                self.attn_inner, h, attn_mask, ctx, use_reentrant=False)
        else:
            a = self.attn_inner(h, attn_mask, ctx)
        y = self.attn_proj(a)
        extra = self._deltas('attn_out', a, a, ctx)
        if extra is not None:
            y = y + extra
        extra = self._deltas('attn_parallel', h, x, ctx)
        if extra is not None:
            y = y + extra
        x = shortcut + self.scale_attn(y)
        shortcut = self._shortcut('ffn_shortcut', x, ctx)
        h = self.norm_ffn(x)
        if cp:
            y = checkpoint(self.ffn_inner, h, use_reentrant=False)
        else:
            y = self.ffn_inner(h)
        y = self.ffn_proj(y)
        extra = self._deltas('ffn_parallel', h, x, ctx)
        if extra is not None:
            y = y + extra
        return shortcut + self.scale_ffn(y)
