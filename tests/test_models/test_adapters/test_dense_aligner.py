# Copyright (c) mmris contributors. All rights reserved.
"""DETRIS Dense Aligner (jiaqihuang01/DETRIS, model/adapter.py)."""
import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import mmris  # noqa: F401
from mmris.models.adapters import DenseAligner
from mmris.models.backbones.dinov2 import DINOv2Block
from mmris.models.utils import StepContext

init_default_scope('mmseg')

OFFICIAL_KEYS = (
    Path(__file__).resolve().parents[2] / 'data' / 'official_keys')


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def tiny(**kwargs) -> DenseAligner:
    cfg = dict(
        in_channels=24,
        hidden_channels=32,
        text_channels=16,
        embed_dims=16,
        num_heads=2)
    cfg.update(kwargs)
    return DenseAligner(**cfg)


def ctx_of(word, grid, pad_mask=None, patch_start=5) -> StepContext:
    """The context a DINOv2 block (CLS + 4 registers) gives its hooks."""
    return StepContext(
        tower='visual',
        word=word,
        grid=grid,
        pad_mask=pad_mask,
        patch_start=patch_start)


def _randomize_bn(module: nn.Module) -> None:
    g = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(0.1 *
                                 torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
            with torch.no_grad():
                m.weight.add_(0.1 * torch.randn(m.num_features, generator=g))
                m.bias.add_(0.1 * torch.randn(m.num_features, generator=g))


# -- sizes and keys -----------------------------------------------------------
@pytest.mark.parametrize('m,c,expected', [(128, 768, 382_896),
                                          (128, 1024, 448_688),
                                          (384, 1024, 1_201_680)])
def test_parameter_counts(m, c, expected):
    assert n_params(DenseAligner(in_channels=c, hidden_channels=m)) == expected


def test_per_module_sizes_detris_b():
    da = DenseAligner(in_channels=768, hidden_channels=128)
    sizes = {
        'D_fc1': 98_432,
        'D_fc2': 99_072,
        'dense_branch1': 8_384,
        'dense_branch2.0': 1_560,
        'dense_branch2.1': 2_400,
        'dense_branch3.0': 1_816,
        'dense_branch3.1': 6_496,
        'cross.multihead_attn': 66_048,
        'cross.image_proj': 16_512,
        'cross.text_proj': 65_664,
        'cross.back_proj': 16_512,
    }
    for name, size in sizes.items():
        assert n_params(da.get_submodule(name)) == size, name
    assert sum(sizes.values()) == n_params(da)
    assert da.dense_branch1.bn.eps == 1e-3


def test_keys_match_official():
    path = OFFICIAL_KEYS / 'detris_DETRIS_base.txt'
    if not path.is_file():
        pytest.skip(f'{path} not available')
    prefix = 'dinov2.blocks.1.adapter.'
    expected = [(k[len(prefix):], s)
                for k, s, _ in (line.split('\t')
                                for line in path.read_text().splitlines())
                if k.startswith(prefix)]
    da = DenseAligner(in_channels=768, hidden_channels=128)
    mine = [(k, str(tuple(v.shape))) for k, v in da.state_dict().items()]
    assert mine == expected


def test_bad_channels():
    with pytest.raises(ValueError, match='must equal hidden_channels'):
        tiny(branch_channels=(16, 2, 4, 2, 4))
    with pytest.raises(ValueError, match='empty branches'):
        tiny(hidden_channels=8)


# -- initialisation -----------------------------------------------------------
def test_effective_initialisation():
    torch.manual_seed(0)
    da = DenseAligner(in_channels=768, hidden_channels=128)
    for name in ('D_fc1', 'D_fc2', 'cross.image_proj', 'cross.text_proj',
                 'cross.back_proj', 'cross.multihead_attn.out_proj'):
        lin = da.get_submodule(name)
        assert abs(lin.weight.std().item() - 0.02) < 2e-3, name
        assert not lin.bias.any(), name
    conv = da.dense_branch1.conv
    fan_in = conv.weight[0].numel()
    assert abs(conv.weight.std().item() - math.sqrt(2 / fan_in)) < 0.02
    assert not conv.bias.any()
    w = da.cross.multihead_attn.in_proj_weight
    assert w.abs().max() <= math.sqrt(6 / (128 + 128))  # xavier uniform
    assert not da.cross.multihead_attn.in_proj_bias.any()


# -- forward ------------------------------------------------------------------
def _reference(da: DenseAligner, x, word, grid, key_padding_mask=None):
    """Independent functional computation of the official DenseAligner (eval
    mode)."""

    def cbr(mod, t):
        t = F.conv2d(
            t,
            mod.conv.weight,
            mod.conv.bias,
            padding=mod.conv.kernel_size[0] // 2)
        t = F.batch_norm(t, mod.bn.running_mean, mod.bn.running_var,
                         mod.bn.weight, mod.bn.bias, False, 0.0, 1e-3)
        return t.clamp_min(0)

    b, p = x.shape[0], 5
    x0 = F.linear(x, da.D_fc1.weight, da.D_fc1.bias).clamp_min(0)
    m = x0.shape[-1]
    s = x0[:, p:].permute(0, 2, 1).reshape(b, m, *grid)
    b1 = cbr(da.dense_branch1, s)
    b2 = cbr(da.dense_branch2[1],
             cbr(da.dense_branch2[0], torch.cat([s, b1], 1)))
    b3 = cbr(da.dense_branch3[1],
             cbr(da.dense_branch3[0], torch.cat([s, b1, b2], 1)))
    y = (torch.cat([b1, b2, b3], 1) + s).reshape(b, m, -1).permute(0, 2, 1)
    cross = da.cross
    mha = nn.MultiheadAttention(cross.image_proj.out_features, 2)
    mha.load_state_dict(cross.multihead_attn.state_dict())
    mha.eval()
    q = cross.image_proj(y).transpose(0, 1)
    kv = cross.text_proj(word).transpose(0, 1)
    att = mha(q, kv, kv, key_padding_mask=key_padding_mask)[0].transpose(0, 1)
    y = cross.back_proj(att)
    y = torch.cat([x0[:, :p], y], 1) + x0
    return F.linear(y, da.D_fc2.weight, da.D_fc2.bias)


@pytest.mark.parametrize('grid', [(4, 4), (4, 3)])
def test_forward_matches_reference(grid):
    torch.manual_seed(0)
    da = tiny()
    _randomize_bn(da)
    da.eval()
    x = torch.randn(2, 5 + grid[0] * grid[1], 24)
    word = torch.randn(2, 6, 16)
    ctx = ctx_of(word, grid, torch.zeros(2, 6).bool())
    out = da(x, ctx)
    assert out.shape == x.shape
    torch.testing.assert_close(
        out, _reference(da, x, word, grid), atol=1e-5, rtol=1e-5)
    # prefix tokens (CLS + registers) come out as D_fc2(2 * x0)
    x0 = da.down(x)
    torch.testing.assert_close(
        out[:, :5], da.D_fc2(2 * x0[:, :5]), atol=1e-6, rtol=1e-5)


def test_grid_and_prefix_come_from_the_context():
    torch.manual_seed(0)
    da = tiny().eval()
    word = torch.randn(1, 4, 16)
    # a non-square 3x5 grid
    x = torch.randn(1, 5 + 15, 24)
    torch.testing.assert_close(
        da(x, ctx_of(word, (3, 5))),
        _reference(da, x, word, (3, 5)),
        atol=1e-5,
        rtol=1e-5)
    # on a CLIP ViT only the CLS token precedes the patches
    clip = tiny().eval()
    clip.load_state_dict(da.state_dict())
    x1 = torch.randn(1, 1 + 16, 24)
    out = clip(x1, ctx_of(word, (4, 4), patch_start=1))
    x0 = clip.down(x1)
    torch.testing.assert_close(
        out[:, :1], clip.D_fc2(2 * x0[:, :1]), atol=1e-6, rtol=1e-5)
    # an explicit num_prefix_tokens wins over the context
    fixed = tiny(num_prefix_tokens=5).eval()
    fixed.load_state_dict(da.state_dict())
    xx = torch.randn(1, 5 + 16, 24)
    torch.testing.assert_close(
        fixed(xx, ctx_of(word, (4, 4), patch_start=1)),
        da(xx, ctx_of(word, (4, 4))),
        rtol=0,
        atol=0)
    with pytest.raises(ValueError, match='for a 4x4 grid'):
        da(torch.randn(1, 5 + 12, 24), ctx_of(word, (4, 4)))
    with pytest.raises(ValueError, match='needs the patch grid'):
        da(x, ctx_of(word, None))
    with pytest.raises(ValueError, match='needs the word features'):
        da(x, ctx_of(None, (3, 5)))


def test_padding_mask_switch():
    torch.manual_seed(0)
    x = torch.randn(2, 5 + 9, 24)
    word = torch.randn(2, 6, 16)
    pad = torch.tensor([[False] * 4 + [True] * 2, [False] * 6])
    word2 = word.clone()
    word2[0, 4:] += 5.0  # only padded positions change
    masked = tiny(use_padding_mask=True).eval()
    ctx = ctx_of(word, (3, 3), pad)
    ctx2 = ctx_of(word2, (3, 3), pad)
    torch.testing.assert_close(masked(x, ctx), masked(x, ctx2))
    torch.testing.assert_close(
        masked(x, ctx),
        _reference(masked, x, word, (3, 3), key_padding_mask=pad),
        atol=1e-5,
        rtol=1e-5)
    plain = tiny().eval()  # official: padding attended
    plain.load_state_dict(masked.state_dict())
    assert not torch.allclose(plain(x, ctx), plain(x, ctx2))
    with pytest.raises(ValueError, match='pad_mask'):
        masked(x, ctx_of(word, (3, 3)))


def test_attention_dropout_only_in_training():
    torch.manual_seed(0)
    da = tiny()
    assert da.cross.multihead_attn.dropout == 0.1
    x, word = torch.randn(2, 5 + 9, 24), torch.randn(2, 6, 16)
    da.train()
    ctx = ctx_of(word, (3, 3))
    assert not torch.allclose(da(x, ctx), da(x, ctx))
    da.eval()
    torch.testing.assert_close(da(x, ctx), da(x, ctx), rtol=0, atol=0)


def test_inside_dinov2_block_scaled_by_layerscale():
    torch.manual_seed(0)
    block = DINOv2Block(24, 2).eval()
    with torch.no_grad():
        block.ls2.gamma.uniform_(0.1, 0.9)
    da = MODELS.build(
        dict(
            type='DenseAligner',
            in_channels=24,
            hidden_channels=32,
            text_channels=16,
            embed_dims=16,
            num_heads=2)).eval()
    x = torch.randn(2, 5 + 9, 24)
    word = torch.randn(2, 6, 16)
    bare = block(x)
    block.attach('ffn_parallel', 'adapter', da, scale=0.2, input='norm')
    ctx = ctx_of(word, (3, 3))
    out = block(x, ctx)
    mid = x + block.ls1(block.attn(block.norm1(x)))
    expected = block.ls2.gamma * 0.2 * da(block.norm2(mid), ctx)
    torch.testing.assert_close(out - bare, expected, atol=1e-6, rtol=1e-5)
