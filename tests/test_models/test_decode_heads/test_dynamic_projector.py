# Copyright (c) mmris contributors. All rights reserved.
"""DynamicProjector's export path (shifted products) equals its grouped
convolution."""
from unittest import mock

import torch

from mmris.models.decode_heads.dynamic_projector import DynamicProjector


def test_export_path_equals_grouped_conv():
    torch.manual_seed(0)
    proj = DynamicProjector(text_channels=24, in_dim=8).eval()
    x, state = torch.randn(3, 16, 5, 7), torch.randn(3, 24)
    with torch.no_grad():
        eager = proj(x, state)
        with mock.patch('torch.onnx.is_in_onnx_export', return_value=True):
            exported = proj(x, state)
    assert eager.shape == exported.shape == (3, 1, 20, 28)
    torch.testing.assert_close(exported, eager, rtol=1e-5, atol=1e-5)
    # each sample is convolved with its own kernel, not its neighbours'
    with torch.no_grad(), mock.patch(
            'torch.onnx.is_in_onnx_export', return_value=True):
        single = proj(x[1:2], state[1:2])
    torch.testing.assert_close(single, eager[1:2], rtol=1e-5, atol=1e-5)
