# Copyright (c) mmris contributors. All rights reserved.
import torch
import torch.nn as nn
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

import mmris  # noqa: F401
import mmris.engine.optimizers  # noqa: F401

init_default_scope("mmseg")


def test_bf16_forward_and_fp32_step():
    model = nn.Linear(4, 3)
    wrapper = build_optim_wrapper(
        model,
        dict(
            type='AutocastOptimWrapper',
            dtype='bfloat16',
            optimizer=dict(type='SGD', lr=0.1)))
    before = model.weight.detach().clone()
    with wrapper.optim_context(model):
        out = model(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().square().mean())
    assert model.weight.dtype == torch.float32
    assert not torch.equal(model.weight, before)
    assert not hasattr(wrapper, 'loss_scaler')
