# Copyright (c) mmris contributors. All rights reserved.
"""Exact step counts (saved activations, static bytes, FLOPs) against a hand
computation."""
import pytest
import torch
import torch.nn as nn

from mmris.utils.memory_count import (SavedTensorCounter, count_train_step,
                                      split_activations, tensor_bytes)

F32 = 4


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 3), nn.ReLU(), nn.Linear(3, 2))


def _count(model, x, optimizer):

    def step():
        optimizer.step()
        optimizer.zero_grad()

    return count_train_step(
        model,
        lambda: model(x).sum(),
        lambda loss: loss.backward(),
        optimizer=optimizer,
        step=step,
        batch=x.shape[0])


def test_linear_relu_linear_by_hand():
    model = _mlp()
    x = torch.randn(4, 5)
    counts = _count(model, x, torch.optim.Adam(model.parameters()))
    # Saved: x (for the first weight gradient, 4x5) and the ReLU output
    # (4x3), which the ReLU and the second Linear both save: counted once.
    # The weights saved for the input gradient are parameters: not counted.
    assert counts.activation_bytes == (4 * 5 + 4 * 3) * F32 == 128
    assert counts.saved_tensors == 2
    n_params = 5 * 3 + 3 + 3 * 2 + 2
    assert counts.param_bytes == counts.grad_bytes == n_params * F32 == 104
    # Adam: exp_avg + exp_avg_sq per parameter + a float32 step per tensor.
    assert counts.optimizer_state_bytes == 2 * 104 + 4 * F32 == 224
    # addmm: 2*M*K*N. Forward: 4x5 @ 5x3 and 4x3 @ 3x2.
    assert counts.forward_flops == 2 * 4 * 5 * 3 + 2 * 4 * 3 * 2 == 168
    # Backward: second layer input and weight grads, first layer weight grad
    # only (x needs no gradient).
    assert counts.backward_flops == 2 * (4 * 2 * 3) * 2 + 2 * 4 * 5 * 3
    assert counts.static_bytes == 104 + 104 + 224
    assert counts.activation_bytes_per_sample() == 32
    assert counts.estimate_bytes(32) == 432 + 32 * 32


def test_frozen_first_layer_saves_and_stores_less():
    model = _mlp()
    for p in model[0].parameters():
        p.requires_grad_(False)
    x = torch.randn(4, 5)
    counts = _count(
        model, x,
        torch.optim.Adam(p for p in model.parameters() if p.requires_grad))
    # Nothing needs the input any more; the ReLU output is still saved for
    # the second weight gradient (and by the ReLU, whose input needs no
    # gradient: autograd does not record it).
    assert counts.activation_bytes == 4 * 3 * F32
    assert counts.param_bytes == 26 * F32
    assert counts.grad_bytes == (3 * 2 + 2) * F32
    assert counts.optimizer_state_bytes == 2 * 8 * F32 + 2 * F32
    assert counts.backward_flops == 2 * 4 * 2 * 3


def test_saved_views_count_their_storage_once():
    base = torch.randn(10, 10, requires_grad=True)
    with SavedTensorCounter() as c:
        a = base * 2
        (a[:5].sin() + a[5:].sin()).sum()
    # ``a`` is saved by the two sin nodes through two views (the multiply by
    # a Python scalar saves nothing).
    assert c.count == 1 and c.bytes == 100 * F32
    assert tensor_bytes([a, a[:3], None]) == 100 * F32


def test_bad_forward_and_batch():
    model = _mlp()
    with pytest.raises(TypeError, match='scalar loss tensor'):
        count_train_step(model, lambda: model(torch.randn(2, 5)),
                         lambda loss: None)
    with pytest.raises(ValueError, match='batch must be >= 1'):
        count_train_step(model, lambda: None, lambda loss: None, batch=0)


class _TransformedWeight(nn.Module):
    """y = x @ exp(sin(w)).T: ``exp`` saves its (batch-independent)
    output."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(3, 5))

    def forward(self, x):
        return x @ self.w.sin().exp().t()


def test_split_batch_independent_saved_bytes():
    torch.manual_seed(0)
    model = _TransformedWeight()
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    c4, c6 = (_count(model, torch.randn(n, 5), optim) for n in (4, 6))
    # Saved: exp(sin(w)) (3x5, for exp's backward; the matmul's saved copy of
    # it only matters for a gradient of x, which is not needed) and x (n x 5,
    # for the weight gradient). sin saves w itself: a parameter.
    assert c4.activation_bytes == (15 + 4 * 5) * F32
    assert c6.activation_bytes == (15 + 6 * 5) * F32
    constant, per_sample = split_activations(c4, c6)
    assert (constant, per_sample) == (15 * F32, 5 * F32)
    assert c4.optimizer_state_bytes == 0  # plain SGD keeps no state
    assert c4.estimate_bytes(
        32, per_sample, constant) == (2 * 15 * F32 + 15 * F32 + 32 * 5 * F32)
    with pytest.raises(ValueError, match='two different batch sizes'):
        split_activations(c4, c4)


def test_cpu_flash_attention_is_counted_like_the_explicit_formula():
    from mmris.utils.memory_count import flop_counter
    q, k, v = (torch.randn(2, 3, 40, 16, requires_grad=True) for _ in '123')
    with flop_counter() as fused:
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    assert 'ForCpu' in type(out.grad_fn).__name__  # the CPU flash kernel
    with flop_counter() as explicit:
        (q @ k.transpose(-2, -1) * 0.25).softmax(-1) @ v
    # Two products of 2 * 3 heads * 40 * 40 * 16 multiply-adds each.
    assert fused.get_total_flops() == explicit.get_total_flops() == \
        2 * 2 * (2 * 3 * 40 * 40 * 16)
    with flop_counter() as backward:
        out.sum().backward()
    # Recomputed scores + four products, as the CUDA flash backward.
    assert backward.get_total_flops() == 5 * 2 * (2 * 3 * 40 * 40 * 16)
