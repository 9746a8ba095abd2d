# Copyright (c) mmris contributors. All rights reserved.
"""The one place where frozen encoders are stepped and adapters are called.

:class:`AdaptedEncoderPair` holds a frozen visual encoder and a frozen text
encoder (see :mod:`.base_encoder`), freezes them by a declared rule, attaches
the adapters of a method through four hook kinds and runs both towers unit by
unit:

(a) ``bridge``: a module between units that reads both towers and returns
    residual updates for both (ETRIS Bridger); it gets a dict that lives for
    one forward pass to carry state from one stage to the next;
(b) ``visual_adapter``/``text_adapter``: modules parallel to the FFN of chosen
    blocks, with a scale (DETRIS Dense Aligner / Text Adapter);
(c) ``visual_shortcut``/``text_shortcut``: replacements of the identity
    shortcuts of every block (BarLeRIa shortcut normalizing flows);
(d) ``token_injector``: extra tokens inserted into the visual sequence before
    the first block, computed from the text input embeddings (BarLeRIa
    Intertwiner); if it also has ``text_prefix(cls)`` returning tokens, they
    are prepended to the text sequence and stripped before the text head.

Two schedules exist: ``'lockstep'`` (visual unit ``k`` runs right after text
block ``sync[k]``, then the bridge; ETRIS, BarLeRIa) and ``'text_first'`` (the
whole text tower first, then the visual tower with the word features as
context; DETRIS).
"""
import re
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptConfigType
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm


@dataclass
class TextContext:
    """What FFN adapters of visual blocks receive as ``context``."""
    word: Tensor  #: (B, L, C) word features (ln_final output)
    pad_mask: Tensor  #: (B, L) bool, True = padding


@dataclass
class EncoderOutput:
    """Result of :class:`AdaptedEncoderPair`."""
    visual: List[Tensor]  #: maps tapped at ``out_indices`` + the head map
    word: Tensor  #: (B, L, C) word features
    state: Tensor  #: (B, D) sentence feature
    pad_mask: Tensor  #: (B, L) bool, True = padding
    side: List[Tensor] = field(default_factory=list)  #: maps at side_indices


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


@MODELS.register_module()
class AdaptedEncoderPair(BaseModule):
    """Frozen visual + text encoders with adapter hooks (module docstring).

    Args:
        visual (dict): Config of a :class:`VisualEncoder`.
        text (dict): Config of a :class:`TextEncoder`.
        order (str): 'lockstep' or 'text_first'. Defaults to 'lockstep'.
        sync (Sequence[int], optional): Lockstep only: the text block after
            which each visual unit runs. Defaults to spreading the visual
            units evenly, ending with the last text block.
        bridge (dict, optional): Hook (a); the module is called as
            ``bridge(stage, v_map, t, memory) -> (dv_map, dt)``.
            Defaults to None.
        bridge_after (Sequence[int]): Visual units after which bridge stages
            0, 1, ... run. Defaults to ().
        visual_adapter (dict, optional): Hook (b) for visual blocks:
            ``dict(module=cfg, layers=[...], scale=0.2, input='norm')``.
        text_adapter (dict, optional): Hook (b) for text blocks, same keys.
        visual_shortcut (dict, optional): Hook (c): ``dict(module=cfg,
            layers=None)`` (None = every block); two modules per block.
        text_shortcut (dict, optional): Hook (c) for text blocks.
        token_injector (dict, optional): Hook (d); called on the text input
            embeddings (B, L, C_t), returns tokens (B, T, C_v).
        out_indices (Sequence[int]): Visual units whose patch map (after the
            bridge) is an output, before the head map. Defaults to ().
        side_indices (Sequence[int]): Visual units whose patch maps are also
            returned in ``EncoderOutput.side``. Defaults to ().
        trainable (Sequence[str]): Regexes of encoder parameter names that
            stay trainable (e.g. 'positional_embedding'). Parameters an
            encoder declares unused (``unused_parameters``, e.g. CLIP's
            ``logit_scale``) stay frozen even if they match, so that every
            trainable parameter gets a gradient. Adapters attached through
            the hooks are always trainable. Defaults to ().
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
                 order: str = 'lockstep',
                 sync: Optional[Sequence[int]] = None,
                 bridge: OptConfigType = None,
                 bridge_after: Sequence[int] = (),
                 visual_adapter: OptConfigType = None,
                 text_adapter: OptConfigType = None,
                 visual_shortcut: OptConfigType = None,
                 text_shortcut: OptConfigType = None,
                 token_injector: OptConfigType = None,
                 out_indices: Sequence[int] = (),
                 side_indices: Sequence[int] = (),
                 trainable: Sequence[str] = (),
                 norm_eval: bool = False,
                 pad_mask_mode: str = 'zero_id',
                 with_cp: bool = False,
                 init_cfg: OptConfigType = None):
        super().__init__(init_cfg=init_cfg)
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
        self.bridge_after = self._check_indices(bridge_after, num_v,
                                                'bridge_after')
        self.trainable = tuple(trainable)
        self.norm_eval = norm_eval
        self.pad_mask_mode = pad_mask_mode
        text_padding_mask(torch.zeros(1, 1, dtype=torch.long), pad_mask_mode)

        # Freeze the encoders first: whatever the hooks attach stays trainable.
        self._freeze_encoders()
        self.bridge = MODELS.build(bridge) if bridge is not None else None
        if self.bridge is not None and not self.bridge_after:
            raise ValueError('a bridge needs bridge_after (the visual units '
                             'after which its stages run)')
        self.token_injector = (
            MODELS.build(token_injector)
            if token_injector is not None else None)
        self._attach_adapters(self.visual, visual_adapter, 'visual_adapter')
        self._attach_adapters(self.text, text_adapter, 'text_adapter')
        self._attach_shortcuts(self.visual, visual_shortcut, 'visual_shortcut')
        self._attach_shortcuts(self.text, text_shortcut, 'text_shortcut')
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

    def _freeze_encoders(self) -> None:
        patterns = [re.compile(p) for p in self.trainable]
        for tower in (self.visual, self.text):
            tower.freeze(patterns)

    @staticmethod
    def _attach_adapters(encoder: nn.Module, cfg: OptConfigType,
                         name: str) -> None:
        if cfg is None:
            return
        cfg = dict(cfg)
        unknown = set(cfg) - {'module', 'layers', 'scale', 'input'}
        if unknown or 'module' not in cfg:
            raise ValueError(f'{name} takes keys module, layers, scale, '
                             f'input; got {sorted(cfg)}')
        layers = cfg.get('layers') or range(len(encoder.blocks))
        for i in layers:
            if not 0 <= i < len(encoder.blocks):
                raise ValueError(f'{name}: block {i} out of range '
                                 f'({len(encoder.blocks)} blocks)')
            encoder.blocks[i].set_ffn_adapter(
                MODELS.build(cfg['module']),
                scale=cfg.get('scale', 1.0),
                adapter_input=cfg.get('input', 'norm'))

    @staticmethod
    def _attach_shortcuts(encoder: nn.Module, cfg: OptConfigType,
                          name: str) -> None:
        if cfg is None:
            return
        cfg = dict(cfg)
        if set(cfg) - {'module', 'layers'} or 'module' not in cfg:
            raise ValueError(f'{name} takes keys module, layers; got '
                             f'{sorted(cfg)}')
        layers = cfg.get('layers') or range(len(encoder.blocks))
        for i in layers:
            encoder.blocks[i].set_shortcuts(
                MODELS.build(cfg['module']), MODELS.build(cfg['module']))

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
        extra = text_extra = 0
        if self.token_injector is not None:
            prefix_fn = getattr(self.token_injector, 'text_prefix', None)
            prefix = prefix_fn(v[:, :1]) if prefix_fn is not None else None
            tokens = self.token_injector(t)
            v = self.visual.insert_tokens(v, tokens)
            extra = tokens.shape[1]
            if prefix is not None:
                t = torch.cat([prefix.to(t.dtype), t], dim=1)
                text_extra = prefix.shape[1]

        if self.order == 'text_first':
            for i in range(len(self.text.blocks)):
                t = self.text.run_block(i, t)
            word, state = self.text.head(t[:, text_extra:], ids)
            context = TextContext(word, pad_mask)
            outs, side = [], []
            for k in range(len(self.visual.blocks)):
                v = self.visual.run_block(k, v, context)
                self._tap(k, v, grid, extra, outs, side)
        else:
            outs, side, memory = [], [], {}
            j = 0
            for k in range(len(self.visual.blocks)):
                while j <= self.sync[k]:
                    t = self.text.run_block(j, t)
                    j += 1
                v = self.visual.run_block(k, v)
                if k in self.bridge_after:
                    stage = self.bridge_after.index(k)
                    v_map = self.visual.patch_map(v, grid, extra)
                    dv, dt = self.bridge(stage, v_map, t, memory)
                    v = self.visual.add_to_patches(v, dv, extra)
                    t = t + dt
                self._tap(k, v, grid, extra, outs, side)
            for i in range(j, len(self.text.blocks)):
                t = self.text.run_block(i, t)
            word, state = self.text.head(t[:, text_extra:], ids)

        outs.append(self.visual.head(v, grid, extra))
        return EncoderOutput(outs, word, state, pad_mask, side)

    def _tap(self, k: int, v: Tensor, grid, extra: int, outs: list,
             side: list) -> None:
        if k in self.out_indices:
            outs.append(self.visual.patch_map(v, grid, extra))
        if k in self.side_indices:
            side.append(self.visual.patch_map(v, grid, extra))
