# Copyright (c) mmris contributors. All rights reserved.
"""Exact step counts (saved activations, static bytes, FLOPs) against a hand
computation."""
import pytest
import torch
import torch.nn as nn

from mmris.utils.memory_count import (SavedTensorCounter, count_train_step,
                                      tensor_bytes)

F32 = 4


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 3), nn.ReLU(), nn.Linear(3, 2))


def _count(model, x, optimizer):

    def step():
        optimizer.step()
        optimizer.zero_grad()

    return count_train_step(
        model, lambda: model(x).sum(), lambda loss: loss.backward(),
        optimizer=optimizer, step=step, batch=x.shape[0])


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
