# Copyright (c) mmris contributors. All rights reserved.
"""DETRIS Text Adapter (jiaqihuang01/DETRIS, model/adapter.py)."""
import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import mmris  # noqa: F401
from mmris.models.adapters import TextAdapter
from mmris.models.backbones.clip_block import CLIPResidualBlock

init_default_scope('mmseg')

OFFICIAL_KEYS = (
    Path(__file__).resolve().parents[2] / 'data' / 'official_keys')


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.mark.parametrize('a,expected', [(64, 69_720), (384, 517_520)])
def test_parameter_counts(a, expected):
    ta = TextAdapter(in_channels=512, hidden_channels=a)
    assert n_params(ta) == expected


def test_per_module_sizes():
    ta = TextAdapter()
    sizes = {
        'D_fc1': 32_832,
        'D_fc2': 33_280,
        'dense_branch1': 2_144,
        'dense_branch2.0': 396,
        'dense_branch2.1': 240,
        'dense_branch3.0': 460,
        'dense_branch3.1': 368,
    }
    for name, size in sizes.items():
        assert n_params(ta.get_submodule(name)) == size, name
    assert sum(sizes.values()) == n_params(ta)
    assert isinstance(ta.dense_branch1.conv, nn.Conv1d)
    assert ta.dense_branch2[1].conv.kernel_size == (3, )
    assert ta.dense_branch3[1].conv.kernel_size == (5, )
    assert ta.dense_branch1.bn.eps == 1e-3


def test_keys_match_official():
    path = OFFICIAL_KEYS / 'detris_DETRIS_base.txt'
    if not path.is_file():
        pytest.skip(f'{path} not available')
    prefix = 'txt_backbone.transformer.resblocks.1.adapter.'
    expected = [(k[len(prefix):], s)
                for k, s, _ in (line.split('\t')
                                for line in path.read_text().splitlines())
                if k.startswith(prefix)]
    mine = [(k, str(tuple(v.shape)))
            for k, v in TextAdapter().state_dict().items()]
    assert mine == expected


def test_pytorch_default_init():
    torch.manual_seed(0)
    ta = TextAdapter()
    bound = 1 / math.sqrt(512)  # kaiming_uniform(a=sqrt(5)) of nn.Linear
    assert ta.D_fc1.weight.abs().max() <= bound
    assert ta.D_fc1.weight.std() > 0.5 * bound / math.sqrt(3)
    assert ta.D_fc1.bias.abs().max() > 0  # default bias is not zero
    assert ta.dense_branch1.conv.bias.abs().max() > 0


def _reference(ta: TextAdapter, x):
    """Independent functional computation of the official TextAdapter (eval
    mode)."""

    def cbr(mod, t):
        t = F.conv1d(
            t,
            mod.conv.weight,
            mod.conv.bias,
            padding=mod.conv.kernel_size[0] // 2)
        t = F.batch_norm(t, mod.bn.running_mean, mod.bn.running_var,
                         mod.bn.weight, mod.bn.bias, False, 0.0, 1e-3)
        return t.clamp_min(0)

    x0 = F.linear(x, ta.D_fc1.weight, ta.D_fc1.bias).clamp_min(0)
    s = x0[:, 1:].transpose(1, 2)
    b1 = cbr(ta.dense_branch1, s)
    b2 = cbr(ta.dense_branch2[1],
             cbr(ta.dense_branch2[0], torch.cat([s, b1], 1)))
    b3 = cbr(ta.dense_branch3[1],
             cbr(ta.dense_branch3[0], torch.cat([s, b1, b2], 1)))
    y = torch.cat([b1, b2, b3], 1).transpose(1, 2)
    y = torch.cat([x0[:, :1], y], 1) + x0
    return F.linear(y, ta.D_fc2.weight, ta.D_fc2.bias)


def test_forward_matches_reference_and_sot_quirk():
    torch.manual_seed(0)
    ta = TextAdapter(in_channels=32, hidden_channels=16)
    for m in ta.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    ta.eval()
    x = torch.randn(2, 7, 32)
    out = ta(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, _reference(ta, x), atol=1e-6, rtol=1e-5)
    # SOT is excluded from the convolutions and comes out as D_fc2(2 * x0)
    x0 = ta.down(x)
    torch.testing.assert_close(out[:, 0], ta.D_fc2(2 * x0[:, 0]))
    # non-causal: a later token changes earlier (non-SOT) outputs
    x2 = x.clone()
    x2[:, 4] += 1.0
    out2 = ta(x2)
    torch.testing.assert_close(out2[:, 0], out[:, 0])
    assert not torch.allclose(out2[:, 3], out[:, 3])


def test_train_mode_batch_statistics_over_words():
    torch.manual_seed(0)
    ta = TextAdapter(in_channels=32, hidden_channels=16).train()
    out = ta(torch.randn(3, 6, 32))
    assert out.shape == (3, 6, 32)
    assert ta.dense_branch1.bn.num_batches_tracked == 1


def test_skip_connect_and_bad_channels():
    torch.manual_seed(0)
    ta = TextAdapter(in_channels=32, hidden_channels=16).eval()
    skip = TextAdapter(
        in_channels=32, hidden_channels=16, skip_connect=True).eval()
    skip.load_state_dict(ta.state_dict())
    x = torch.randn(1, 5, 32)
    torch.testing.assert_close(skip(x), ta(x) + x)
    with pytest.raises(ValueError, match='must equal hidden_channels'):
        TextAdapter(hidden_channels=64, branch_channels=(32, 4, 16, 4, 8))


def test_inside_clip_text_block_reads_residual_stream():
    torch.manual_seed(0)
    block = CLIPResidualBlock(32, 2).eval()
    ta = MODELS.build(
        dict(type='TextAdapter', in_channels=32, hidden_channels=16)).eval()
    x = torch.randn(2, 6, 32)
    mask = torch.full((6, 6), float('-inf')).triu_(1)
    bare = block(x, attn_mask=mask)
    block.attach('ffn_parallel', 'adapter', ta, scale=0.2, input='residual')
    out = block(x, attn_mask=mask)
    mid = x + block.attn_branch(block.ln_1(x), mask)
    torch.testing.assert_close(out - bare, 0.2 * ta(mid), atol=1e-6, rtol=1e-5)
