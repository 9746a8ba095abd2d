# Copyright (c) mmris contributors. All rights reserved.
"""Key mapping from the official RIS checkpoints to mmris models.

The official ``train.py`` of ETRIS, BarLeRIa and DETRIS saves
``{'state_dict': DDP(model).state_dict(), ...}``: every key starts with
``module.`` and the whole model is stored, frozen encoders included
(RIS-SPEC G). mmris keeps the official names inside each component, so the
conversion is a prefix table per method.
"""
import re
from collections import OrderedDict
from typing import Dict, List, Tuple

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
    detris=[
        (r'^txt_backbone\.', 'backbone.text.'),
        (r'^dinov2\.', 'backbone.visual.'),
        (r'^neck\.', 'neck.'),
        (r'^decoder\.', 'decode_head.decoder.'),
        (r'^proj\.', 'decode_head.proj.'),
    ],
)


def convert_official_state_dict(state: Dict[str, Tensor],
                                method: str) -> 'OrderedDict[str, Tensor]':
    """Rename an official state dict to mmris names.

    Args:
        state (dict): The official ``state_dict`` (with or without the
            ``module.`` prefix of DistributedDataParallel).
        method (str): 'etris' or 'detris'.

    Returns:
        OrderedDict: The renamed tensors; every tensor is kept (trained
        positional tables, BN statistics, unused MHA q/k slices).

    Raises:
        KeyError: If a key matches no rule (it would otherwise be dropped).
    """
    if method not in KEY_MAPS:
        raise ValueError(f'unknown method {method!r}; choose from '
                         f'{sorted(KEY_MAPS)}')
    rules = [(re.compile(a), b) for a, b in KEY_MAPS[method]]
    out, unknown = OrderedDict(), []
    for key, value in state.items():
        key = re.sub(r'^module\.', '', key)
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
