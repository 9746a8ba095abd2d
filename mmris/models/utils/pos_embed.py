# Copyright (c) mmris contributors. All rights reserved.
"""Resizing positional tables to another patch grid."""
from mmpretrain.models.utils import \
    resize_pos_embed as mmpretrain_resize_pos_embed
from torch import Tensor


def resize_pos_embed(pos: Tensor,
                     grid: tuple,
                     num_prefix: int = 1,
                     mode: str = 'bicubic') -> Tensor:
    """Resize a (prefix + g*g, C) table to ``grid`` (h, w) with
    ``F.interpolate(mode, align_corners=False)`` (no antialiasing), keeping
    the prefix rows, as the official ``build_model`` (kkakkkka/ETRIS,
    model/clip.py); computed by mmpretrain's ``resize_pos_embed``."""
    side = int(round((pos.shape[0] - num_prefix)**0.5))
    if side * side != pos.shape[0] - num_prefix:
        raise ValueError(f'positional table with {pos.shape[0] - num_prefix}'
                         ' patch rows is not square')
    return mmpretrain_resize_pos_embed(
        pos[None], (side, side),
        tuple(grid),
        mode=mode,
        num_extra_tokens=num_prefix)[0]
