# Copyright (c) mmris contributors. All rights reserved.
"""Mask projector with a per-sample dynamic kernel (``Projector`` of
kkakkkka/ETRIS, model/layers.py)."""
import torch
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
        self.txt = nn.Linear(text_channels,
                             in_dim * kernel_size * kernel_size + 1)

    def forward(self, x: Tensor, state: Tensor) -> Tensor:
        """x (B, 2*in_dim, H, W), state (B, text_channels) -> (B, 1, 4H,
        4W)."""
        x = self.vis(x)
        b, c, h, w = x.shape
        params = self.txt(state)
        weight = params[:, :-1].reshape(b, c, self.kernel_size,
                                        self.kernel_size)
        if torch.onnx.is_in_onnx_export():
            return self._conv_per_sample(x, weight.to(x.dtype),
                                         params[:, -1].to(x.dtype))
        out = F.conv2d(
            x.reshape(1, b * c, h, w),
            weight.to(x.dtype),
            bias=params[:, -1].to(x.dtype),
            padding=self.kernel_size // 2,
            groups=b)
        return out.transpose(0, 1)

    def _conv_per_sample(self, x: Tensor, weight: Tensor,
                         bias: Tensor) -> Tensor:
        """The grouped convolution of :meth:`forward` as a sum of shifted
        products, for ONNX export: a grouped ``Conv`` needs the batch size
        as a constant, this works with a dynamic batch (same values up to
        the order of the additions).

        Args:
            x (Tensor): (B, C, h, w).
            weight (Tensor): (B, C, k, k) per-sample kernels.
            bias (Tensor): (B,) per-sample biases.

        Returns:
            Tensor: (B, 1, h, w).
        """
        k = self.kernel_size
        h, w = x.shape[-2:]
        xp = F.pad(x, (k // 2, ) * 4)
        out = bias[:, None, None]
        for i in range(k):
            for j in range(k):
                out = out + torch.einsum(
                    'bchw,bc->bhw', xp[:, :, i:i + h, j:j + w], weight[:, :, i,
                                                                       j])
        return out[:, None]
