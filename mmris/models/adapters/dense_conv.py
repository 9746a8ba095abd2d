# Copyright (c) mmris contributors. All rights reserved.
"""The "dense mixture of convolutions" shared by the DETRIS adapters.

Both DETRIS adapters (jiaqihuang01/DETRIS, model/adapter.py) are bottlenecks::

    x0 = ReLU(D_fc1(x))                      # C -> m
    y  = concat[b1, b2, b3](x0 as a grid)    # 1x1 / 3x3 / 5x5 branches
    out = D_fc2(... y + x0 ...)              # m -> C

where the three branches are concatenated DenseNet-style *within* the
module: branch 2 sees ``[s, b1]`` and branch 3 sees ``[s, b1, b2]``. The
Text Adapter runs them as 1-D convolutions over the word sequence, the Dense
Aligner as 2-D convolutions over the patch grid; :class:`DenseConvAdapter`
builds both from the same code, under the official key names
(``dense_branch1.{conv,bn}``, ``dense_branch{2,3}.{0,1}.{conv,bn}``,
``D_fc1``, ``D_fc2``).
"""
import warnings
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor


def conv_bn_relu(in_channels: int,
                 out_channels: int,
                 kernel_size: int,
                 conv_dims: int,
                 bn_eps: float = 1e-3) -> ConvModule:
    """Conv (with bias) -> BatchNorm (eps 1e-3) -> ReLU in 1-D or 2-D, as
    mmcv's ``ConvModule`` (keys ``conv.*``, ``bn.*``, the official names).

    The convolution keeps PyTorch's default initialisation (the official
    Text Adapter does; the Dense Aligner re-initialises its own), not
    ``ConvModule``'s kaiming one.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int): Odd kernel size; padding keeps the size.
        conv_dims (int): 1 for sequences (B, C, L), 2 for maps
            (B, C, H, W).
        bn_eps (float): BatchNorm epsilon. Defaults to 1e-3.
    """
    if conv_dims not in (1, 2):
        raise ValueError(f'conv_dims must be 1 or 2, got {conv_dims}')
    with warnings.catch_warnings():
        # the official layers do have a bias before the BatchNorm
        warnings.filterwarnings('ignore', 'Unnecessary conv bias')
        module = ConvModule(
            in_channels,
            out_channels,
            kernel_size,
            padding=kernel_size // 2,
            bias=True,
            conv_cfg=dict(type=f'Conv{conv_dims}d'),
            norm_cfg=dict(type=f'BN{conv_dims}d', eps=bn_eps),
            act_cfg=dict(type='ReLU', inplace=True))
    module.conv.reset_parameters()
    return module


def default_branch_channels(hidden_channels: int) -> tuple:
    """The official branch widths for bottleneck width ``m``:
    ``(m/2, m/16, m/4, m/16, m/4)`` = (ch1x1, ch3x3red, ch3x3, ch5x5red,
    ch5x5)."""
    m = hidden_channels
    return (m // 2, m // 16, m // 4, m // 16, m // 4)


class DenseConvAdapter(BaseModule):
    """Base class of the DETRIS adapters: down-projection, dense mixture of
    1x1 / 3x3 / 5x5 convolutions, up-projection.

    Subclasses implement ``forward(x, context)`` with :meth:`down`,
    :meth:`mix` and :meth:`up`.

    Args:
        in_channels (int): Token width C of the host transformer.
        hidden_channels (int): Bottleneck width m.
        conv_dims (int): 1 (sequence) or 2 (patch grid).
        branch_channels (Sequence[int], optional): (ch1x1, ch3x3red, ch3x3,
            ch5x5red, ch5x5); ch1x1 + ch3x3 + ch5x5 must equal m. Defaults to
            None, i.e. :func:`default_branch_channels`.
        skip_connect (bool): Add the adapter input to its output (off in the
            released DETRIS). Defaults to False.
        bn_eps (float): BatchNorm epsilon. Defaults to 1e-3.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 hidden_channels: int,
                 conv_dims: int,
                 branch_channels: Optional[Sequence[int]] = None,
                 skip_connect: bool = False,
                 bn_eps: float = 1e-3,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        m = hidden_channels
        if branch_channels is None:
            branch_channels = default_branch_channels(m)
        if len(branch_channels) != 5:
            raise ValueError('branch_channels takes (ch1x1, ch3x3red, ch3x3, '
                             f'ch5x5red, ch5x5), got {branch_channels}')
        ch1, ch3red, ch3, ch5red, ch5 = (int(c) for c in branch_channels)
        if min(ch1, ch3red, ch3, ch5red, ch5) <= 0:
            raise ValueError(f'hidden_channels={m} gives empty branches '
                             f'{branch_channels}; use at least 16')
        if ch1 + ch3 + ch5 != m:
            raise ValueError(f'ch1x1 + ch3x3 + ch5x5 ({ch1 + ch3 + ch5}) '
                             f'must equal hidden_channels ({m})')
        self.in_channels = in_channels
        self.hidden_channels = m
        self.conv_dims = conv_dims
        self.skip_connect = skip_connect

        def cbr(cin, cout, k):
            return conv_bn_relu(cin, cout, k, conv_dims, bn_eps)

        # Registration order = official state-dict order.
        self.dense_branch1 = cbr(m, ch1, 1)
        self.dense_branch2 = nn.Sequential(
            cbr(m + ch1, ch3red, 1), cbr(ch3red, ch3, 3))
        self.dense_branch3 = nn.Sequential(
            cbr(m + ch1 + ch3, ch5red, 1), cbr(ch5red, ch5, 5))
        self.D_fc1 = nn.Linear(in_channels, m)
        self.D_fc2 = nn.Linear(m, in_channels)

    def down(self, x: Tensor) -> Tensor:
        """``ReLU(D_fc1(x))``: (B, N, C) -> (B, N, m)."""
        return F.relu(self.D_fc1(x), inplace=True)

    def mix(self, s: Tensor) -> Tensor:
        """Dense mixture: channels-first ``s`` (B, m, *spatial) ->
        ``concat[b1, b2, b3]`` (B, m, *spatial)."""
        b1 = self.dense_branch1(s)
        b2 = self.dense_branch2(torch.cat([s, b1], dim=1))
        b3 = self.dense_branch3(torch.cat([s, b1, b2], dim=1))
        return torch.cat([b1, b2, b3], dim=1)

    def up(self, y: Tensor, x: Tensor) -> Tensor:
        """``D_fc2(y)`` (+ ``x`` when ``skip_connect``)."""
        out = self.D_fc2(y)
        return out + x if self.skip_connect else out
