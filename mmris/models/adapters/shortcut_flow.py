# Copyright (c) mmris contributors. All rights reserved.
"""BarLeRIa shortcut normalizing flow (NastrondAd/BarLeRIa, snf.py / flow.py):
the local-tuning module that replaces the identity shortcuts of every frozen
block."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from mmseg.utils import OptConfigType
from torch import Tensor
from torch.utils.checkpoint import checkpoint


class AffineTransform(nn.Module):
    """``z <- mu + exp(logsigma) * z`` with ``mu = logsigma = 0`` at init.

    Args:
        dim (int): Feature width.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mu = nn.Parameter(torch.zeros(dim))
        self.logsigma = nn.Parameter(torch.zeros(dim))

    def forward(self, z: Tensor) -> Tensor:
        return self.mu + self.logsigma.exp() * z

    def log_det_jacobian(self) -> Tensor:
        """``sum(logsigma)`` (constant in ``z``)."""
        return self.logsigma.sum()


class PlanarFlow(nn.Module):
    """``z <- z + scale * tanh(z . weight + bias)``.

    All three tensors start from ``U(-init_range, init_range)`` as in the
    official code.

    Args:
        dim (int): Feature width.
        init_range (float): Half width of the uniform init. Defaults to 0.01.
    """

    def __init__(self, dim: int, init_range: float = 0.01) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(1, dim))
        self.bias = nn.Parameter(torch.empty(1))
        self.scale = nn.Parameter(torch.empty(1, dim))
        self.init_range = init_range
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r = self.init_range
        self.weight.data.uniform_(-r, r)
        self.scale.data.uniform_(-r, r)
        self.bias.data.uniform_(-r, r)

    def forward(self, z: Tensor) -> Tensor:
        return z + self.scale * torch.tanh(F.linear(z, self.weight, self.bias))

    def log_det_jacobian(self, z: Tensor) -> Tensor:
        """``log|1 + psi(z) . scale|`` per token (shape ``z.shape[:-1]``)."""
        act = F.linear(z, self.weight, self.bias)
        psi = (1 - torch.tanh(act)**2) * self.weight
        det = 1 + (psi * self.scale).sum(-1)
        return torch.log(det.abs() + 1e-7)


@MODELS.register_module()
class ShortcutNormalizingFlow(BaseModule):
    """BarLeRIa's normalizing flow used as a block shortcut.

    One affine transform followed by ``flow_length`` planar flows, applied
    token-wise to the residual stream ``x`` (..., C)::

        z = mu + exp(logsigma) * x
        z = z + s_k * tanh(w_k . z + b_k)     for k = 1..flow_length

    The affine part is the identity at initialisation and planar flow ``k``
    moves each channel by at most ``|s_k| <= init_range``, so the frozen
    block starts within ``flow_length * init_range`` of its pretrained
    behaviour. Attach two per block, as the ``attn_shortcut`` and
    ``ffn_shortcut`` hooks of :class:`AdaptedEncoderPair` (names ``flow`` /
    ``flow2``, the keys of the official state dict).

    The official module also holds ``log_jacobians.k`` helpers that share the
    planar tensors (their log-determinants are computed but never used in a
    loss); they are not built here (the converter drops the
    duplicated tensors after checking them) and :meth:`log_det_jacobian`
    provides the value if needed.

    Args:
        dim (int): Feature width (768 for the CLIP ViT-B/16 visual tower,
            512 for the text tower).
        flow_length (int): Number of planar flows. Defaults to 4.
        init_range (float): Uniform init half width of the planar tensors.
            Defaults to 0.01.
        recompute (bool): In training, keep only the input for the backward
            pass and recompute the ``flow_length + 1`` intermediate
            (..., C) tensors there (elementwise operations and one
            (..., C) x C-by-1 product per planar flow: negligible work;
            same values). Defaults to True.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 dim: int,
                 flow_length: int = 4,
                 init_range: float = 0.01,
                 recompute: bool = True,
                 init_cfg: OptConfigType = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if dim <= 0 or flow_length < 0:
            raise ValueError(f'dim must be > 0 and flow_length >= 0, got '
                             f'{dim}, {flow_length}')
        self.dim = dim
        self.recompute = recompute
        self.affine_transform = AffineTransform(dim)
        self.transforms = nn.Sequential(*(PlanarFlow(dim, init_range)
                                          for _ in range(flow_length)))

    def forward(self, x: Tensor, ctx: Optional[object] = None) -> Tensor:
        """The flow of the residual stream ``x`` (..., C); ``ctx`` is not
        used."""
        if self.recompute and self.training and torch.is_grad_enabled():
            return checkpoint(self._flow, x, use_reentrant=False)
        return self._flow(x)

    def _flow(self, x: Tensor) -> Tensor:
        return self.transforms(self.affine_transform(x))

    def log_det_jacobian(self, x: Tensor) -> Tensor:
        """Total log-determinant of the Jacobian per token."""
        total = self.affine_transform.log_det_jacobian().expand(x.shape[:-1])
        z = self.affine_transform(x)
        for flow in self.transforms:
            total = total + flow.log_det_jacobian(z)
            z = flow(z)
        return total
