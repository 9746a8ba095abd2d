# Copyright (c) mmris contributors. All rights reserved.
import pytest
import torch

from mmris.models.utils import MultiheadAttention
from mmris.models.utils.attention import dropout_attention


def _qkv(dtype=torch.float64):
    torch.manual_seed(0)
    q = torch.randn(2, 4, 30, 8, dtype=dtype, requires_grad=True)
    k = torch.randn(2, 4, 11, 8, dtype=dtype, requires_grad=True)
    v = torch.randn(2, 4, 11, 8, dtype=dtype, requires_grad=True)
    mask = torch.zeros(2, 1, 1, 11, dtype=dtype)
    mask[0, ..., 7:] = float('-inf')  # padded keys of the first sample
    return q, k, v, mask


def test_dropout_attention_equals_the_explicit_formula_with_its_mask():
    q, k, v, mask = _qkv()
    out = dropout_attention(q, k, v, mask, 0.1,
                            torch.Generator().manual_seed(123))
    # The same draw, made here: Bernoulli(0.1) drops, the rest is scaled by
    # 1 / 0.9.
    drop = torch.empty((2, 4, 30, 11), dtype=torch.bool).bernoulli_(
        0.1, generator=torch.Generator().manual_seed(123))
    keep = (~drop).double() / 0.9
    assert 0.03 < drop.double().mean() < 0.2
    weights = torch.softmax(q @ k.transpose(-2, -1) / 8**0.5 + mask, -1)
    ref = (weights * keep) @ v
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-13)
    grad = torch.randn_like(out)
    for a, b in zip(
            torch.autograd.grad(out, (q, k, v), grad),
            torch.autograd.grad(ref, (q, k, v), grad)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_dropout_attention_keeps_no_float_weights_for_backward():
    q, k, v, mask = _qkv(torch.float32)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(
            lambda t: saved.append((tuple(t.shape), t.dtype)) or t,
            lambda t: t):
        dropout_attention(q, k, v, mask, 0.1)
    f32 = torch.float32
    # q, k, v, the mask, the output and a 1-byte dropout mask.
    assert sorted(
        saved, key=str) == sorted([((2, 4, 30, 8), f32), ((2, 4, 11, 8), f32),
                                   ((2, 4, 11, 8), f32), ((2, 1, 1, 11), f32),
                                   ((2, 4, 30, 8), f32),
                                   ((2, 4, 30, 11), torch.bool)],
                                  key=str)


def test_dropout_attention_mask_follows_the_global_seed():
    q, k, v, mask = _qkv(torch.float32)
    torch.manual_seed(7)
    a = dropout_attention(q, k, v, mask, 0.5)
    torch.manual_seed(7)
    b = dropout_attention(q, k, v, mask, 0.5)
    c = dropout_attention(q, k, v, mask, 0.5)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_dropout_attention_rejects_bad_arguments():
    q, k, v, mask = _qkv(torch.float32)
    with pytest.raises(ValueError, match=r'dropout p must be in \[0, 1\)'):
        dropout_attention(q, k, v, mask, 1.0)
    with pytest.raises(ValueError, match='must not require a gradient'):
        dropout_attention(q, k, v, mask.requires_grad_(), 0.1)


def test_multihead_attention_with_dropout_on_cpu_keeps_no_weights():
    torch.manual_seed(0)
    attn = MultiheadAttention(32, 4, dropout=0.1).train()
    x = torch.randn(2, 50, 32, requires_grad=True)
    pad = torch.zeros(2, 50, dtype=torch.bool)
    pad[1, 40:] = True
    shapes = []
    with torch.autograd.graph.saved_tensors_hooks(
            lambda t: shapes.append((tuple(t.shape), t.dtype)) or t,
            lambda t: t):
        out = attn(x, key_padding_mask=pad)
    assert not any(s[-2:] == (50, 50) and dt != torch.bool for s, dt in shapes)
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    # Dropout is drawn: two forward passes differ; eval mode is exact SDPA.
    assert not torch.equal(attn(x, key_padding_mask=pad), out)
    attn.eval()
    ref = torch.nn.functional.scaled_dot_product_attention(
        *(t.view(2, 50, 4,
                 8).transpose(1, 2) for t in torch.nn.functional.linear(
                     x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, -1)),
        attn_mask=torch.zeros(2, 1, 1, 50).masked_fill(pad[:, None, None],
                                                       float('-inf')))
    torch.testing.assert_close(
        attn(x, key_padding_mask=pad),
        attn.out_proj(ref.transpose(1, 2).reshape(2, 50, 32)))
