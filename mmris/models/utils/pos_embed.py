# Copyright (c) mmris contributors. All rights reserved.
"""Resizing positional tables to another patch grid."""
import torch
import torch.nn.functional as F
from torch import Tensor


def resize_pos_embed(pos: Tensor, grid: tuple, num_prefix: int = 1,
                     mode: str = 'bicubic') -> Tensor:
    """Resize a (prefix + g*g, C) table to ``grid`` (h, w) with
    ``F.interpolate(mode, align_corners=False)``, keeping the prefix rows
    (as ``kkakkkka/ETRIS``, ``model/clip.py``)."""
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
