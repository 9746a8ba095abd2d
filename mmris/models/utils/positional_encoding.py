# Copyright (c) mmris contributors. All rights reserved.
"""Fixed sine positional encodings of the RIS transformer decoder
(kkakkkka/ETRIS, model/layers.py)."""
import math

import torch
from torch import Tensor


def sine_encoding_1d(d_model: int, length: int) -> Tensor:
    """(length, d_model): pe[p, 2k] = sin(p w_k), pe[p, 2k+1] = cos(p w_k)."""
    if d_model % 2:
        raise ValueError(f'd_model must be even, got {d_model}')
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float32) *
        -(math.log(10000.0) / d_model))
    pe = torch.zeros(length, d_model)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe


def sine_encoding_2d(d_model: int, height: int, width: int) -> Tensor:
    """(H*W, d_model), row-major: the first half encodes x, the second y."""
    if d_model % 4:
        raise ValueError(f'd_model must be divisible by 4, got {d_model}')
    half = d_model // 2
    pe_x = sine_encoding_1d(half, width)  # (W, half)
    pe_y = sine_encoding_1d(half, height)  # (H, half)
    pe = torch.cat([
        pe_x[None, :, :].expand(height, -1, -1), pe_y[:, None, :].expand(
            -1, width, -1)
    ],
                   dim=-1)
    return pe.reshape(height * width, d_model)
