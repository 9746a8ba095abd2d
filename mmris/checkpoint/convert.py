# Copyright (c) mmris contributors. All rights reserved.
"""Key mapping from the official RIS checkpoints to mmris models.

The official ``train.py`` of ETRIS, BarLeRIa and DETRIS saves
``{'state_dict': DDP(model).state_dict(), ...}``: every key starts with
``module.`` and the whole model is stored, frozen encoders included.
mmris keeps the official names inside each component, so the
conversion is a prefix table per method.
"""
import re
from collections import OrderedDict
from typing import Dict, List, Tuple

import torch
from torch import Tensor

_CLIP_TEXT = (r'^backbone\.(token_embedding|positional_embedding|transformer|'
              r'ln_final|text_projection|logit_scale)')

#: (official regex, mmris replacement), applied first match wins.
KEY_MAPS: Dict[str, List[Tuple[str, str]]] = dict(
    etris=[
        (r'^backbone\.visual\.', 'backbone.visual.'),
        (_CLIP_TEXT, r'backbone.text.\1'),
        (r'^bridger\.', 'backbone.bridge.'),
        (r'^neck\.', 'neck.'),
        (r'^decoder\.', 'decode_head.decoder.'),
        (r'^proj\.', 'decode_head.proj.'),
    ],
    barleria=[
        (r'^backbone\.visual\.', 'backbone.visual.'),
        (_CLIP_TEXT, r'backbone.text.\1'),
        (r'^intertwiner\.', 'backbone.token_injector.'),
        (r'^side_adapter_network\.', 'side_network.side_adapter_network.'),
        (r'^side_linear\.', 'side_network.side_linear.'),
        (r'^neck\.', 'neck.'),
        (r'^decoder\.', 'decode_head.decoder.'),
        (r'^proj\.', 'decode_head.proj.'),
    ],
    # BarLeRIa on EVA02-CLIP-B/16 (config barleria_v16_eva): the eva_clip
    # towers keep their names under backbone.visual / backbone.text;
    # CustomCLIP holds logit_scale at its top level
    barleria_eva=[
        (r'^backbone\.visual\.', 'backbone.visual.'),
        (r'^backbone\.text\.', 'backbone.text.'),
        (r'^backbone\.logit_scale$', 'backbone.text.logit_scale'),
        (r'^intertwiner\.', 'backbone.token_injector.'),
        (r'^side_adapter_network\.', 'side_network.side_adapter_network.'),
        (r'^side_linear\.', 'side_network.side_linear.'),
        (r'^neck\.', 'neck.'),
        (r'^decoder\.', 'decode_head.decoder.'),
        (r'^proj\.', 'decode_head.proj.'),
    ],
    detris=[
        (r'^txt_backbone\.', 'backbone.text.'),
        (r'^dinov2\.', 'backbone.visual.'),
        (r'^neck\.', 'neck.'),
        (r'^decoder\.', 'decode_head.decoder.'),
        (r'^proj\.', 'decode_head.proj.'),
    ],
)

#: Official tensors that duplicate another tensor of the same checkpoint:
#: (regex of the duplicate, replacement giving the key it duplicates). The
#: converter checks equality and drops the duplicate.
TIED_KEYS: Dict[str, List[Tuple[str, str]]] = dict(
    # BarLeRIa planar flows are stored twice: the log-det helpers share the
    # planar tensors (BarLeRIa's NormalizingFlow: ``log_jacobians.k`` reuse
    # the parameters of ``transforms.k``).
    barleria=[(r'^(.*\.flow2?)\.log_jacobians\.(\d+)\.(weight|bias|scale)$',
               r'\1.transforms.\2.\3')],
    barleria_eva=[(r'^(.*\.flow2?)\.log_jacobians\.(\d+)\.'
                   r'(weight|bias|scale)$', r'\1.transforms.\2.\3')],
)


def _eva_rope_table(rows: int, head_dim: int) -> Tuple[Tensor, Tensor]:
    """The (sin, cos) rotary tables EVA02 derives for a square grid of
    ``rows`` patches (pt_hw_seq_len 16), as stored by eva_clip."""
    from timm.layers import RotaryEmbeddingCat
    side = int(round(rows**0.5))
    emb = RotaryEmbeddingCat(
        head_dim,
        in_pixels=False,
        feat_shape=[side, side],
        ref_feat_shape=[16, 16]).get_embed()
    return emb.chunk(2, dim=-1)


#: Official buffers derived from the architecture alone (recomputed by the
#: mmris model): (regex, check) pairs; the converter checks each against its
#: recomputation and drops it.
DERIVED_KEYS: Dict[str, list] = dict(
    barleria_eva=[(r'^backbone\.visual\.(blocks\.\d+\.attn\.)?rope\.'
                   r'freqs_(sin|cos)$', lambda key, value: torch.equal(
                       value,
                       _eva_rope_table(value.shape[0], value.shape[1])[
                           0 if key.endswith('sin') else 1]))])


def _drop_tied(state: Dict[str, Tensor], method: str) -> Dict[str, Tensor]:
    rules = [(re.compile(a), b) for a, b in TIED_KEYS.get(method, [])]
    if not rules:
        return state
    kept = OrderedDict()
    for key, value in state.items():
        for pattern, repl in rules:
            if pattern.match(key):
                source = pattern.sub(repl, key, count=1)
                if source not in state:
                    raise KeyError(f'{key} duplicates {source}, which is '
                                   'missing from the checkpoint')
                if not torch.equal(state[source], value):
                    raise ValueError(f'{key} should equal {source} (tied '
                                     'tensors in the official model) but '
                                     'differs')
                break
        else:
            kept[key] = value
    return kept


def _drop_derived(state: Dict[str, Tensor], method: str) -> Dict[str, Tensor]:
    rules = [(re.compile(a), check)
             for a, check in DERIVED_KEYS.get(method, [])]
    if not rules:
        return state
    kept = OrderedDict()
    for key, value in state.items():
        for pattern, check in rules:
            if pattern.match(key):
                if not check(key, value):
                    raise ValueError(f'{key} should be the table derived '
                                     'from the architecture but differs')
                break
        else:
            kept[key] = value
    return kept


def convert_official_state_dict(state: Dict[str, Tensor],
                                method: str) -> 'OrderedDict[str, Tensor]':
    """Rename an official state dict to mmris names.

    Args:
        state (dict): The official ``state_dict`` (with or without the
            ``module.`` prefix of DistributedDataParallel).
        method (str): 'etris', 'barleria', 'barleria_eva' or 'detris'.

    Returns:
        OrderedDict: The renamed tensors; every tensor is kept (trained
        positional tables, BN statistics, unused MHA q/k slices).

    Tensors listed in :data:`TIED_KEYS` (BarLeRIa's duplicated planar-flow
    tensors) are dropped after checking that they equal the tensor they
    duplicate; those of :data:`DERIVED_KEYS` (EVA02's rotary tables) after
    checking that they equal their recomputation.

    Raises:
        KeyError: If a key matches no rule (it would otherwise be dropped),
            or a tied duplicate lacks its source.
        ValueError: If a tied duplicate differs from its source, or a
            derived table from its recomputation.
    """
    if method not in KEY_MAPS:
        raise ValueError(f'unknown method {method!r}; choose from '
                         f'{sorted(KEY_MAPS)}')
    rules = [(re.compile(a), b) for a, b in KEY_MAPS[method]]
    state = OrderedDict(
        (re.sub(r'^module\.', '', k), v) for k, v in state.items())
    state = _drop_tied(state, method)
    state = _drop_derived(state, method)
    out, unknown = OrderedDict(), []
    for key, value in state.items():
        for pattern, repl in rules:
            if pattern.match(key):
                out[pattern.sub(repl, key, count=1)] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise KeyError(f'{len(unknown)} keys of the {method} checkpoint match '
                       f'no conversion rule, e.g. {unknown[:5]}')
    return out
