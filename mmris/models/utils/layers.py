# Copyright (c) mmris contributors. All rights reserved.
"""Small building blocks shared by the RIS necks, heads and adapters."""
import torch
import torch.nn as nn
from torch import Tensor


def conv_layer(in_dim: int,
               out_dim: int,
               kernel_size: int = 1,
               padding: int = 0,
               stride: int = 1) -> nn.Sequential:
    """Conv2d (no bias) -> BatchNorm2d -> ReLU; keys ``0.*``, ``1.*``."""
    return nn.Sequential(
        nn.Conv2d(in_dim, out_dim, kernel_size, stride, padding, bias=False),
        nn.BatchNorm2d(out_dim), nn.ReLU(True))


def deconv_layer(in_dim: int,
                 out_dim: int,
                 kernel_size: int = 1,
                 padding: int = 0,
                 stride: int = 1) -> nn.Sequential:
    """ConvTranspose2d (no bias) -> BatchNorm2d -> ReLU."""
    return nn.Sequential(
        nn.ConvTranspose2d(
            in_dim, out_dim, kernel_size, stride, padding, bias=False),
        nn.BatchNorm2d(out_dim), nn.ReLU(True))


class CoordConv(nn.Module):
    """Appends normalised (x, y) coordinate channels, then ``conv_layer``.

    Args:
        in_channels (int): Input channels (before the 2 coordinates).
        out_channels (int): Output channels.
        kernel_size (int): Defaults to 3.
        padding (int): Defaults to 1.
        stride (int): Defaults to 1.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 3,
                 padding: int = 1,
                 stride: int = 1):
        super().__init__()
        self.conv1 = conv_layer(in_channels + 2, out_channels, kernel_size,
                                padding, stride)

    @staticmethod
    def add_coord(x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype)
        ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype)
        y, xx = torch.meshgrid(ys, xs, indexing='ij')
        coord = torch.stack([xx, y]).expand(b, -1, -1, -1)
        return torch.cat([x, coord], dim=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv1(self.add_coord(x))


def init_linear_conv(module: nn.Module, std: float = 0.02) -> None:
    """The RIS adapters' initialisation: Linear ~ N(0, std) with zero bias,
    Conv/ConvTranspose kaiming-normal (fan_out, relu)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(
                m.weight, mode='fan_out', nonlinearity='relu')
