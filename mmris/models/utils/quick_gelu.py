# Copyright (c) mmris contributors. All rights reserved.
"""CLIP's QuickGELU, keeping one tensor for the backward pass instead of two.

``x * sigmoid(1.702 * x)`` written with tensor operations (as OpenAI CLIP,
clip/model.py, and open_clip do) makes autograd keep both ``x`` and
``sigmoid(1.702 * x)``: two tensors of the MLP's hidden width per block. The
function here keeps only ``x`` and recomputes the sigmoid (an elementwise
operation, no matrix product) in the backward pass. Forward values and
gradients are the same operations in the same order, hence bitwise equal.
"""
import torch
import torch.nn as nn
from torch import Tensor

_ALPHA = 1.702


class _QuickGELUFunction(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return x * torch.sigmoid(_ALPHA * x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        x, = ctx.saved_tensors
        s = torch.sigmoid(_ALPHA * x)
        # The autograd graph of x * sigmoid(1.702 x), node by node: the
        # product's two branches, sigmoid's backward, the scalar product's.
        grad_sigmoid = torch.ops.aten.sigmoid_backward(grad * x, s)
        return grad * s + grad_sigmoid * _ALPHA


def quick_gelu(x: Tensor) -> Tensor:
    """``x * sigmoid(1.702 * x)``, saving only ``x`` for backward."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _QuickGELUFunction.apply(x)
    return x * torch.sigmoid(_ALPHA * x)


class QuickGELU(nn.Module):
    """Module form of :func:`quick_gelu` (no parameters)."""

    def forward(self, x: Tensor) -> Tensor:
        return quick_gelu(x)
