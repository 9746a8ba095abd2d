# Copyright (c) mmris contributors. All rights reserved.
"""CLIP's fp32 LayerNorm, keeping its input in the input's precision.

OpenAI CLIP (clip/model.py) and open_clip normalise in fp32 whatever the
input dtype: ``F.layer_norm(x.float(), ...).to(x.dtype)``. Under bf16/fp16
autocast autograd then keeps the fp32 copy of ``x`` for the backward pass,
twice the bytes of ``x`` itself. :class:`LayerNormFp32` computes the same
forward and backward (the same kernels on the same fp32 values: the upcast
is exact, so it is redone in the backward pass) but keeps ``x`` as it came.
In fp32 nothing changes.
"""
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class _LayerNormFp32Function(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x: Tensor, shape: Sequence[int], weight: Optional[Tensor],
                bias: Optional[Tensor], eps: float) -> Tensor:
        y, mean, rstd = torch.native_layer_norm(x.float(), shape, weight, bias,
                                                eps)
        ctx.save_for_backward(x, weight, bias, mean, rstd)
        ctx.shape = shape
        return y.to(x.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        x, weight, bias, mean, rstd = ctx.saved_tensors
        needs = ctx.needs_input_grad
        grad_x, grad_w, grad_b = torch.ops.aten.native_layer_norm_backward(
            grad.float(), x.float(), ctx.shape, mean, rstd, weight, bias, [
                needs[0], needs[2] and weight is not None, needs[3]
                and bias is not None
            ])
        if grad_x is not None:
            grad_x = grad_x.to(x.dtype)
        return grad_x, None, grad_w, grad_b, None


class LayerNormFp32(nn.LayerNorm):
    """``nn.LayerNorm`` computed in fp32 and returned in the input dtype (as
    open_clip's ``LayerNormFp32``), keeping only the input for backward."""

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled() and (x.requires_grad or any(
                p is not None and p.requires_grad
                for p in (self.weight, self.bias))):
            return _LayerNormFp32Function.apply(x, self.normalized_shape,
                                                self.weight, self.bias,
                                                self.eps)
        return F.layer_norm(x.float(), self.normalized_shape, self.weight,
                            self.bias, self.eps).to(x.dtype)
