# Copyright (c) mmris contributors. All rights reserved.
"""Mask projector with a per-sample dynamic kernel (``Projector`` of
kkakkkka/ETRIS, model/layers.py)."""
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..utils import conv_layer


class DynamicProjector(nn.Module):
    """Upsamples the decoder map x4 (``vis``) and convolves each sample with
    a 3x3 kernel + bias predicted from its sentence feature (``txt``).

    Args:
        text_channels (int): Sentence-feature width. Defaults to 512.
        in_dim (int): Width after ``vis`` (input is ``2 * in_dim``).
            Defaults to 256.
        kernel_size (int): Defaults to 3.
    """

    def __init__(self,
                 text_channels: int = 512,
                 in_dim: int = 256,
                 kernel_size: int = 3):
        super().__init__()
        self.in_dim = in_dim
        self.kernel_size = kernel_size
        self.vis = nn.Sequential(
            nn.Upsample(scale_factor=2, mode='bilinear'),
            conv_layer(in_dim * 2, in_dim * 2, 3, padding=1),
            nn.Upsample(scale_factor=2, mode='bilinear'),
            conv_layer(in_dim * 2, in_dim, 3, padding=1),
            nn.Conv2d(in_dim, in_dim, 1))
        self.txt = nn.Linear(text_channels, in_dim * kernel_size * kernel_size + 1)

    def forward(self, x: Tensor, state: Tensor) -> Tensor:
        """x (B, 2*in_dim, H, W), state (B, text_channels) -> (B, 1, 4H, 4W)."""
        x = self.vis(x)
        b, c, h, w = x.shape
        params = self.txt(state)
        weight = params[:, :-1].reshape(b, c, self.kernel_size,
                                        self.kernel_size)
        out = F.conv2d(
            x.reshape(1, b * c, h, w),
            weight.to(x.dtype),
            bias=params[:, -1].to(x.dtype),
            padding=self.kernel_size // 2,
            groups=b)
        return out.transpose(0, 1)
