# Copyright (c) mmris contributors. All rights reserved.
"""Reading OpenAI CLIP weights from a local file."""
import os.path as osp
from typing import Dict

import torch
import torch.nn.functional as F
from torch import Tensor

from mmris.compat import safe_torch_load

_SCALAR_KEYS = ('input_resolution', 'context_length', 'vocab_size')


def load_clip_state_dict(path: str) -> Dict[str, Tensor]:
    """Load an OpenAI CLIP checkpoint: a TorchScript archive (``ViT-B-16.pt``,
    ``RN50.pt``, ``RN101.pt``) or a plain (``torch.save``) state dict.

    Args:
        path (str): Local file.

    Returns:
        dict: fp32 tensors under the OpenAI key names (``visual.*``,
        ``transformer.*``, ``token_embedding.weight``, ...).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'CLIP checkpoint "{path}" not found; expected an OpenAI archive '
            'such as ViT-B-16.pt / RN50.pt / RN101.pt or a state-dict file.')
    try:
        state = torch.jit.load(path, map_location='cpu').state_dict()
    except RuntimeError:
        state = safe_torch_load(path, map_location='cpu')
        if isinstance(state, dict) and 'state_dict' in state:
            state = state['state_dict']
    if not isinstance(state, dict):
        raise TypeError(f'"{path}" does not hold a state dict '
                        f'(got {type(state).__name__}).')
    return {
        k: v.float() if v.is_floating_point() else v
        for k, v in state.items() if k not in _SCALAR_KEYS
    }


def sub_state_dict(state: Dict[str, Tensor], prefix: str) -> Dict[str, Tensor]:
    """The entries under ``prefix`` with the prefix removed."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def resize_pos_embed(pos: Tensor, grid: tuple, num_prefix: int = 1,
                     mode: str = 'bicubic') -> Tensor:
    """Resize a (prefix + g*g, C) table to ``grid`` (h, w) with
    ``F.interpolate(mode, align_corners=False)``, keeping the prefix rows
    (RIS-SPEC A.1.2)."""
    prefix, table = pos[:num_prefix], pos[num_prefix:]
    side = int(round(table.shape[0]**0.5))
    if side * side != table.shape[0]:
        raise ValueError(f'positional table with {table.shape[0]} patch rows '
                         'is not square')
    if (side, side) == tuple(grid):
        return pos
    table = table.reshape(1, side, side, -1).permute(0, 3, 1, 2)
    table = F.interpolate(
        table.float(), size=tuple(grid), mode=mode, align_corners=False)
    table = table.permute(0, 2, 3, 1).reshape(-1, pos.shape[1]).to(pos.dtype)
    return torch.cat([prefix, table], dim=0)
