# Copyright (c) mmris contributors. All rights reserved.
"""The one place where frozen encoders are stepped and adapters are called.

:class:`AdaptedEncoderPair` holds a frozen visual encoder and a frozen text
encoder (see :mod:`.base_encoder`), freezes them by a declared rule, attaches
the adapters of a method from one list of hook specifications and runs both
towers unit by unit. A method is a set of modules plus that list; nothing
here knows about any method.

``adapters`` is a list of specs, or a dict of them keyed by labels (configs
use the dict, so that a derived config can change one spec:
``adapters=dict(dense_aligner=dict(layers=[2, 6]))``). A spec is a dict::

    dict(point='ffn_parallel', tower='visual', layers=[1, 3, 5],
         module=dict(type='DenseAligner', ...), name='adapter', scale=0.2,
         input='norm')

with ``point`` one of

* a block hook point (:data:`~.base_block.HOOK_POINTS`: ``attn_shortcut``,
  ``qkv``, ``attn_out``, ``attn_parallel``, ``ffn_shortcut``,
  ``ffn_parallel``): one module is built per listed block of ``tower``
  and attached to that block under ``name`` (keys
  ``<tower>.<block>.<name>.*``), called inside the block;
* ``'tokens'``: one module for the tower, held by the pair under ``name``,
  called before each listed block of ``tower`` as ``module(x, ctx)`` on the
  tower's sequence; it returns tokens (B, T, C) that are inserted right
  after the tower's prefix tokens (CLS and registers; nothing for text),
  and with ``replace=True`` the tokens it inserted before the previous
  listed block are removed first (deep prompts). Inserted tokens are
  skipped by the taps and removed before the text head;
* ``'bridge'``: one module held by the pair under ``name``, called after
  each listed visual unit as ``module(v_map, t, ctx)`` on the visual patch
  map (B, C, h, w) and the text tokens (B, L, C_t); it returns residual
  updates of both (``ctx.store`` carries state from one stage to the
  next).

Other keys: ``layers`` (None = every block), ``scale`` (delta points),
``input`` ('norm' | 'residual', parallel points), ``method`` (the module
method to call, default 'forward'), and ``name`` (defaults: ``adapter``,
``attn_adapter``, ``qkv_adapter``, ``out_adapter``, ``flow``, ``flow2``,
``token_injector``, ``bridge``). A spec that gives no ``module`` reuses the
module already built under its ``name`` (by the pair, or on each block), so
one module can serve several points (its keys stay where it was built).
Every hook receives a :class:`~mmris.models.utils.StepContext`.

Two schedules exist: ``'lockstep'`` (visual unit ``k`` runs right after text
block ``sync[k]``, then the bridges; ETRIS, BarLeRIa) and ``'text_first'``
(the whole text tower first, then the visual tower with the word features
in the context; DETRIS).
"""
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptConfigType
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from ..utils.step_context import StepContext
from .base_block import HOOK_POINTS

#: Points handled by the pair itself (one module for all its layers).
PAIR_POINTS = ('tokens', 'bridge')
#: Default attribute name of the module of each point.
DEFAULT_NAMES = dict(
    attn_shortcut='flow',
    ffn_shortcut='flow2',
    qkv='qkv_adapter',
    attn_out='out_adapter',
    attn_parallel='attn_adapter',
    ffn_parallel='adapter',
    tokens='token_injector',
    bridge='bridge')
_SPEC_KEYS = {
    'point', 'tower', 'layers', 'module', 'name', 'scale', 'input', 'method',
    'replace'
}
_OLD_ARGS = ('bridge', 'bridge_after', 'visual_adapter', 'text_adapter',
             'visual_shortcut', 'text_shortcut', 'token_injector')


@dataclass
class EncoderOutput:
    """Result of :class:`AdaptedEncoderPair`."""
    visual: List[Tensor]  #: maps tapped at ``out_indices`` + the head map
    word: Tensor  #: (B, L, C) word features
    state: Tensor  #: (B, D) sentence feature
    pad_mask: Tensor  #: (B, L) bool, True = padding
    side: List[Tensor] = field(default_factory=list)  #: maps at side_indices


@dataclass(frozen=True)
class PairHook:
    """A tower-level hook (``tokens`` / ``bridge``) of the pair."""
    point: str
    tower: str
    layers: Tuple[int, ...]
    name: str
    method: str = 'forward'
    replace: bool = False


def text_padding_mask(ids: Tensor, mode: str = 'zero_id') -> Tensor:
    """Padding mask of CLIP token ids (True = padding).

    Args:
        ids (Tensor): (B, L) token ids.
        mode (str): 'zero_id' is the official rule ``ids == 0`` of ETRIS,
            BarLeRIa and DETRIS (kkakkkka/ETRIS, model/segmenter.py:
            ``pad_mask = torch.zeros_like(text).masked_fill_(text == 0,
            1).bool()``). BPE id 0 is the symbol "!", so a "!" inside a
            sentence is masked as if it were padding. 'after_eot' masks
            only the positions after the EOT token (the largest id), which
            keeps such words visible to the decoder; models trained with
            one rule should be evaluated with the same one.
            Defaults to 'zero_id'.
    """
    if mode == 'zero_id':
        return ids == 0
    if mode != 'after_eot':
        raise ValueError(f"pad_mask_mode must be 'after_eot' or 'zero_id', "
                         f'got {mode!r}')
    eot = ids.argmax(dim=-1, keepdim=True)
    pos = torch.arange(ids.shape[1], device=ids.device)[None]
    return pos > eot


class _TowerState:
    """A tower's sequence during one forward pass and the token segments
    hooks inserted into it (after its prefix tokens, newest first)."""

    def __init__(self, x: Tensor, num_prefix: int) -> None:
        self.x = x
        self.num_prefix = num_prefix
        self.segments: List[Tuple[str, int]] = []  # (hook name, count)

    @property
    def num_inserted(self) -> int:
        return sum(n for _, n in self.segments)

    def remove(self, name: str) -> None:
        offset = self.num_prefix
        for i, (owner, n) in enumerate(self.segments):
            if owner == name:
                self.x = torch.cat(
                    [self.x[:, :offset], self.x[:, offset + n:]], dim=1)
                del self.segments[i]
                return
            offset += n

    def insert(self, name: str, tokens: Tensor) -> None:
        k = self.num_prefix
        self.x = torch.cat(
            [self.x[:, :k],
             tokens.to(self.x.dtype), self.x[:, k:]], dim=1)
        self.segments.insert(0, (name, tokens.shape[1]))


@MODELS.register_module()
class AdaptedEncoderPair(BaseModule):
    """Frozen visual + text encoders with adapter hooks (module docstring).

    Args:
        visual (dict): Config of a :class:`~.base_encoder.VisualEncoder`.
        text (dict): Config of a :class:`~.base_encoder.TextEncoder`.
        adapters (Sequence[dict] | dict): Adapter specs, or specs keyed by
            labels (module docstring). Defaults to ().
        order (str): 'lockstep' or 'text_first'. Defaults to 'lockstep'.
        sync (Sequence[int], optional): Lockstep only: the text block after
            which each visual unit runs. Defaults to spreading the visual
            units evenly, ending with the last text block.
        out_indices (Sequence[int]): Visual units whose patch map (after the
            bridges) is an output, before the head map. Defaults to ().
        side_indices (Sequence[int]): Visual units whose patch maps are also
            returned in ``EncoderOutput.side``. Defaults to ().
        trainable (Sequence[str]): Regexes of encoder parameter names that
            stay trainable (e.g. 'positional_embedding'). Parameters an
            encoder declares unused (``unused_parameters``, e.g. CLIP's
            ``logit_scale``) stay frozen even if they match, so that every
            trainable parameter gets a gradient. Adapters are always
            trainable. Defaults to ().
        norm_eval (bool): Keep the BatchNorm layers of the frozen encoders
            (all parameters frozen) in eval mode during training, so their
            running statistics stay the pretrained ones. False is the
            official behaviour: the official training scripts call
            ``model.train()`` on the whole model, so the frozen CLIP ResNet
            BatchNorms normalise with batch statistics and their running
            statistics drift (kkakkkka/ETRIS, train.py / engine/engine.py).
            Defaults to False.
        pad_mask_mode (str): See :func:`text_padding_mask`.
            Defaults to 'zero_id' (official).
        with_cp (bool): Gradient checkpointing of the frozen attention and
            FFN branches of every block (less memory, some recomputation;
            same results). Defaults to False.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 visual: ConfigType,
                 text: ConfigType,
                 adapters: Union[Sequence[ConfigType], Dict[str,
                                                            ConfigType]] = (),
                 order: str = 'lockstep',
                 sync: Optional[Sequence[int]] = None,
                 out_indices: Sequence[int] = (),
                 side_indices: Sequence[int] = (),
                 trainable: Sequence[str] = (),
                 norm_eval: bool = False,
                 pad_mask_mode: str = 'zero_id',
                 with_cp: bool = False,
                 init_cfg: OptConfigType = None,
                 **kwargs):
        super().__init__(init_cfg=init_cfg)
        old = sorted(set(kwargs) & set(_OLD_ARGS))
        if old:
            raise TypeError(
                f'AdaptedEncoderPair no longer takes {old}: give every '
                'adapter as one entry of `adapters=[dict(point=..., '
                'tower=..., layers=..., module=...)]` (see the module '
                'docstring of mmris/models/backbones/adapted_encoder_pair.py '
                'and configs/_base_/models/ for the paper methods)')
        if kwargs:
            raise TypeError('AdaptedEncoderPair got unexpected arguments '
                            f'{sorted(kwargs)}')
        if order not in ('lockstep', 'text_first'):
            raise ValueError("order must be 'lockstep' or 'text_first', got "
                             f'{order!r}')
        self.order = order
        self.visual = MODELS.build(visual)
        self.text = MODELS.build(text)
        num_v, num_t = len(self.visual.blocks), len(self.text.blocks)
        if sync is None:
            sync = [(k + 1) * num_t // num_v - 1 for k in range(num_v)]
        if len(sync) != num_v or list(sync) != sorted(sync):
            raise ValueError(f'sync must give one increasing text block index '
                             f'per visual unit ({num_v}), got {list(sync)}')
        self.sync = list(sync)
        self.out_indices = self._check_indices(out_indices, num_v,
                                               'out_indices')
        self.side_indices = self._check_indices(side_indices, num_v,
                                                'side_indices')
        self.trainable = tuple(trainable)
        self.norm_eval = norm_eval
        self.pad_mask_mode = pad_mask_mode
        text_padding_mask(torch.zeros(1, 1, dtype=torch.long), pad_mask_mode)

        # Freeze the encoders first: whatever the hooks attach stays trainable.
        patterns = [re.compile(p) for p in self.trainable]
        for tower in (self.visual, self.text):
            tower.freeze(patterns)
        self.pair_hooks: List[PairHook] = []
        labelled = adapters.items() if isinstance(adapters, dict) else \
            ((f'adapters[{i}]', spec) for i, spec in enumerate(adapters))
        for label, spec in labelled:
            self._attach(dict(spec), label)
        for tower in (self.visual, self.text):
            for block in tower.blocks:
                if hasattr(block, 'with_cp'):
                    block.with_cp = with_cp

    # -- construction ---------------------------------------------------------
    @staticmethod
    def _check_indices(indices: Sequence[int], num: int, name: str) -> tuple:
        indices = tuple(int(i) for i in indices)
        bad = [i for i in indices if not 0 <= i < num]
        if bad:
            raise ValueError(f'{name} {bad} out of range for {num} units')
        return indices

    def tower(self, name: str) -> nn.Module:
        """The encoder called ``name`` ('visual' or 'text')."""
        if name not in ('visual', 'text'):
            raise ValueError(f"tower must be 'visual' or 'text', got {name!r}")
        return self.visual if name == 'visual' else self.text

    def _attach(self, spec: dict, where: str) -> None:
        unknown = set(spec) - _SPEC_KEYS
        point = spec.get('point')
        if unknown or point is None:
            raise ValueError(f'{where}: an adapter spec takes the keys '
                             f'{sorted(_SPEC_KEYS)} (point required); got '
                             f'{sorted(spec)}')
        if point not in HOOK_POINTS + PAIR_POINTS:
            raise ValueError(f'{where}: unknown point {point!r}; choose from '
                             f'{HOOK_POINTS + PAIR_POINTS}')
        name = spec.get('name') or DEFAULT_NAMES[point]
        tower_name = spec.get('tower', 'visual')
        units = len(self.tower(tower_name).blocks)
        layers = spec.get('layers')
        layers = tuple(range(units)) if layers is None else \
            self._check_indices(layers, units, f'{where}.layers')
        cfg = spec.get('module')
        if point in PAIR_POINTS:
            extra = set(spec) & {'scale', 'input'}
            if extra:
                raise ValueError(f'{where}: {point} hooks take no '
                                 f'{sorted(extra)}')
            if point == 'bridge' and tower_name != 'visual':
                raise ValueError(f'{where}: a bridge runs after visual units '
                                 "(tower='visual')")
            if cfg is not None:
                if name in self._modules or hasattr(self, name):
                    raise ValueError(f'{where}: the pair already has an '
                                     f'attribute {name!r}; give another name')
                self.add_module(name, MODELS.build(cfg))
            elif not isinstance(getattr(self, name, None), nn.Module):
                raise ValueError(f'{where}: no module and nothing named '
                                 f'{name!r} to reuse')
            stages = getattr(getattr(self, name), 'num_stages', None)
            if point == 'bridge' and stages is not None and \
                    stages != len(layers):
                raise ValueError(f'{where}: {name} has {stages} stages but '
                                 f'layers lists {len(layers)} units')
            self.pair_hooks.append(
                PairHook(point, tower_name, layers, name,
                         spec.get('method', 'forward'),
                         bool(spec.get('replace', False))))
            return
        if spec.get('replace'):
            raise ValueError(f'{where}: replace applies to tokens hooks only')
        # without a module: a module of the pair (owned by it, called by
        # the blocks), else one already attached to each block under `name`
        shared = self._modules.get(name) if cfg is None else None
        blocks = self.tower(tower_name).blocks
        for i in layers:
            block = blocks[i]
            if not hasattr(block, 'attach'):
                raise ValueError(f'{where}: unit {i} of the {tower_name} '
                                 f'tower ({type(block).__name__}) has no '
                                 'hook points')
            module = shared if shared is not None else (
                None if cfg is None else MODELS.build(cfg))
            try:
                block.attach(
                    point,
                    name,
                    module,
                    scale=spec.get('scale', 1.0),
                    input=spec.get('input', 'norm'),
                    method=spec.get('method', 'forward'),
                    owned=shared is None)
            except ValueError as err:
                raise ValueError(f'{where}: {err}') from None

    def train(self, mode: bool = True) -> 'AdaptedEncoderPair':
        super().train(mode)
        if mode and self.norm_eval:
            for tower in (self.visual, self.text):
                for m in tower.modules():
                    if isinstance(m, _BatchNorm) and not any(
                            p.requires_grad for p in m.parameters()):
                        m.eval()
        return self

    # -- forward --------------------------------------------------------------
    def forward(self, img: Tensor, ids: Tensor) -> EncoderOutput:
        """Encode images (B, 3, H, W) and token ids (B, L)."""
        pad_mask = text_padding_mask(ids, self.pad_mask_mode)
        v, grid = self.visual.embed(img)
        t = self.text.embed(ids)
        ctx = StepContext(grid=grid, ids=ids, pad_mask=pad_mask, text_embed=t)
        towers = dict(
            visual=_TowerState(v, self.visual.num_prefix_tokens),
            text=_TowerState(t, 0))
        stores: Dict[str, dict] = {h.name: {} for h in self.pair_hooks}
        outs: List[Tensor] = []
        side: List[Tensor] = []
        if self.order == 'text_first':
            for j in range(len(self.text.blocks)):
                self._step('text', j, towers, ctx, stores)
            word, state = self._text_head(towers['text'], ids)
            ctx = ctx.at(word=word)
            for k in range(len(self.visual.blocks)):
                self._step('visual', k, towers, ctx, stores)
                self._tap(k, towers['visual'], grid, outs, side)
        else:
            j = 0
            for k in range(len(self.visual.blocks)):
                while j <= self.sync[k]:
                    self._step('text', j, towers, ctx, stores)
                    j += 1
                self._step('visual', k, towers, ctx, stores)
                self._bridge(k, towers, ctx, stores)
                self._tap(k, towers['visual'], grid, outs, side)
            for i in range(j, len(self.text.blocks)):
                self._step('text', i, towers, ctx, stores)
            word, state = self._text_head(towers['text'], ids)
        vis = towers['visual']
        outs.append(self.visual.final_map(vis.x, grid, vis.num_inserted))
        return EncoderOutput(outs, word, state, pad_mask, side)

    def _call_context(self, tower: str, layer: int, towers: Dict[str,
                                                                 _TowerState],
                      ctx: StepContext) -> StepContext:
        state = towers[tower]
        return ctx.at(
            tower=tower,
            layer=layer,
            patch_start=towers['visual'].num_prefix +
            towers['visual'].num_inserted,
            num_inserted=state.num_inserted)

    def _step(self, tower: str, layer: int, towers: Dict[str, _TowerState],
              ctx: StepContext, stores: Dict[str, dict]) -> None:
        """``tokens`` hooks of ``layer``, then block ``layer`` of
        ``tower``."""
        state = towers[tower]
        for hook in self.pair_hooks:
            if hook.point != 'tokens' or hook.tower != tower or \
                    layer not in hook.layers:
                continue
            if hook.replace:
                state.remove(hook.name)
            call = self._call_context(tower, layer, towers, ctx).at(
                stage=hook.layers.index(layer),
                store=stores[hook.name],
                visual_tokens=towers['visual'].x,
                text_tokens=towers['text'].x)
            module = getattr(self, hook.name)
            state.insert(hook.name,
                         getattr(module, hook.method)(state.x, call))
        encoder = self.tower(tower)
        state.x = encoder.run_block(
            layer, state.x, self._call_context(tower, layer, towers, ctx))

    def _bridge(self, unit: int, towers: Dict[str, _TowerState],
                ctx: StepContext, stores: Dict[str, dict]) -> None:
        for hook in self.pair_hooks:
            if hook.point != 'bridge' or unit not in hook.layers:
                continue
            vis, txt = towers['visual'], towers['text']
            call = self._call_context('visual', unit, towers, ctx).at(
                tower='',
                stage=hook.layers.index(unit),
                store=stores[hook.name])
            v_map = self.visual.patch_map(vis.x, ctx.grid, vis.num_inserted)
            dv, dt = getattr(getattr(self, hook.name),
                             hook.method)(v_map, txt.x, call)
            vis.x = self.visual.add_to_patches(vis.x, dv, vis.num_inserted)
            txt.x = txt.x + dt

    def _text_head(self, state: _TowerState,
                   ids: Tensor) -> Tuple[Tensor, Tensor]:
        return self.text.final_features(state.x[:, state.num_inserted:], ids)

    def _tap(self, k: int, state: _TowerState, grid: Tuple[int, int],
             outs: list, side: list) -> None:
        if k in self.out_indices:
            outs.append(
                self.visual.patch_map(state.x, grid, state.num_inserted))
        if k in self.side_indices:
            side.append(
                self.visual.patch_map(state.x, grid, state.num_inserted))
