# Copyright (c) mmris contributors. All rights reserved.
import pytest
import torch
from open_clip.transformer import LayerNormFp32 as OpenCLIPLayerNormFp32

from mmris.models.utils.layer_norm import LayerNormFp32
from mmris.utils.memory_count import SavedTensorCounter


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
@pytest.mark.parametrize('trainable', [False, True])
def test_values_and_gradients_are_bitwise_those_of_open_clip(dtype, trainable):
    torch.manual_seed(0)
    ref, ours = OpenCLIPLayerNormFp32(64), LayerNormFp32(64)
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ref.bias.uniform_(-0.5, 0.5)
    ours.load_state_dict(ref.state_dict())
    for m in (ref, ours):
        m.requires_grad_(trainable)
    x = torch.randn(2, 9, 64, dtype=dtype) * 3
    outs = []
    for m in (ref, ours):
        xi = x.clone().requires_grad_()
        y = m(xi)
        y.backward(torch.linspace(-1, 1, y.numel()).view_as(y).to(dtype))
        outs.append([y, xi.grad] + [p.grad for p in m.parameters()])
    assert outs[0][0].dtype == outs[1][0].dtype == dtype
    for a, b in zip(*outs):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.equal(a, b)


def test_keeps_the_bf16_input_instead_of_an_fp32_copy():
    ref, ours = OpenCLIPLayerNormFp32(64), LayerNormFp32(64)
    x = torch.randn(3, 5, 64, dtype=torch.bfloat16, requires_grad=True)
    saved = []
    for m in (ref, ours):
        m.requires_grad_(False)
        with SavedTensorCounter(exclude=m.parameters()) as counter:
            m(x * 1)  # a fresh non-leaf input, as inside a block
        saved.append(counter.bytes)
    stats = 2 * 3 * 5 * 4  # fp32 mean and rstd per row
    assert saved[0] == x.numel() * 4 + stats  # the fp32 copy
    assert saved[1] == x.numel() * 2 + stats  # the bf16 input itself
