# Copyright (c) mmris contributors. All rights reserved.
import pytest
import torch
from open_clip.transformer import QuickGELU as OpenCLIPQuickGELU

from mmris.models.utils.quick_gelu import QuickGELU
from mmris.utils.memory_count import SavedTensorCounter


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_values_and_gradients_are_bitwise_those_of_open_clip(dtype):
    x = torch.randn(2, 9, 64, dtype=dtype) * 3
    ref_in = x.clone().requires_grad_()
    ours_in = x.clone().requires_grad_()
    ref, ours = OpenCLIPQuickGELU()(ref_in), QuickGELU()(ours_in)
    grad = torch.randn_like(ref)
    ref.backward(grad)
    ours.backward(grad)
    assert torch.equal(ref, ours)
    assert torch.equal(ref_in.grad, ours_in.grad)


def test_keeps_one_tensor_for_backward_instead_of_two():
    x = torch.randn(3, 5, 32, requires_grad=True)
    counts = []
    for act in (OpenCLIPQuickGELU(), QuickGELU()):
        with SavedTensorCounter() as saved:
            act(x * 1.0)  # a fresh non-leaf input, as inside a block
        counts.append((saved.count, saved.bytes))
    assert counts[0] == (2, 2 * x.numel() * 4)
    assert counts[1] == (1, x.numel() * 4)


def test_without_grad_no_graph_is_built():
    x = torch.randn(4, 8)
    with torch.no_grad():
        y = QuickGELU()(x.requires_grad_())
    assert y.grad_fn is None
    torch.testing.assert_close(y, x * torch.sigmoid(1.702 * x), rtol=0, atol=0)
