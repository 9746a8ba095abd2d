# Copyright (c) mmris contributors. All rights reserved.
"""DINOv2 with registers: layout, interpolation, weights, hooks, freezing."""
import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import mmris  # noqa: F401
import mmris.models.adapters  # noqa: F401  (registers the adapters)
from mmris.models.backbones import AdaptedEncoderPair
from mmris.models.backbones.dinov2 import (DINOv2, DINOv2Block,
                                           interpolate_pos_embed)

init_default_scope('mmseg')

OFFICIAL_KEYS = (
    Path(__file__).resolve().parents[2] / 'data' / 'official_keys')
TINY = dict(embed_dims=24, num_layers=4, num_heads=2)


def tiny(**kwargs) -> DINOv2:
    cfg = dict(arch=TINY, img_size=518)
    cfg.update(kwargs)
    return DINOv2(**cfg)


def _randomize(model: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))


def _official_dinov2_keys(name: str) -> list:
    path = OFFICIAL_KEYS / name
    if not path.is_file():
        pytest.skip(f'{path} not available')
    rows = []
    for line in path.read_text().splitlines():
        key, shape, _ = line.split('\t')
        if key.startswith('dinov2.') and '.adapter.' not in key:
            rows.append((key[len('dinov2.'):], shape))
    return rows


def _meta_state_dict(model: DINOv2, seed: int = 0) -> dict:
    """A synthetic Meta-format checkpoint with the model's own shapes."""
    g = torch.Generator().manual_seed(seed)
    return {
        k: torch.randn(v.shape, generator=g)
        for k, v in model.state_dict().items() if '.adapter.' not in k
    }


# -- layout -------------------------------------------------------------------
@pytest.mark.parametrize('arch,name', [('vit-b', 'detris_DETRIS_base.txt'),
                                       ('vit-l', 'detris_DETRIS_large.txt')])
def test_state_dict_matches_official_layout(arch, name):
    expected = _official_dinov2_keys(name)
    with torch.device('meta'):  # shapes only, no memory
        model = DINOv2(arch, img_size=526)
    mine = [(k, str(tuple(v.shape))) for k, v in model.state_dict().items()]
    assert mine == expected


def test_arch_sizes():
    # Counted from the official builder: DINOv2-B/14-reg4 86,583,552 parameters
    # (incl. mask_token), DINOv2-L 304,372,736.
    with torch.device('meta'):
        model = DINOv2('vit-b', img_size=526)
        large = DINOv2('vit-l', img_size=526)
    assert sum(p.numel() for p in model.parameters()) == 86_583_552
    assert sum(p.numel() for p in large.parameters()) == 304_372_736
    assert model.num_prefix_tokens == 5
    assert len(model.blocks) == 12 and model.embed_dims == 768
    assert model.pos_embed.shape == (1, 1370, 768)
    assert model.blocks[0].attn.num_heads == 12
    assert model.norm.eps == 1e-6 and model.blocks[0].norm1.eps == 1e-6
    with pytest.raises(ValueError, match='unknown DINOv2 arch'):
        DINOv2('vit-x')
    with pytest.raises(ValueError, match='lacks'):
        DINOv2(dict(embed_dims=24, num_layers=2))


def test_swiglu_giant_block():
    block = DINOv2Block(1536, 24, ffn_type='swiglu')
    assert block.mlp.w12.weight.shape == (8192, 1536)
    assert block.mlp.w3.weight.shape == (1536, 4096)
    with pytest.raises(ValueError, match='ffn_type'):
        DINOv2Block(24, 2, ffn_type='foo')


def test_register_tokens_and_token_order():
    model = tiny()
    _randomize(model)
    img = torch.randn(2, 3, 448, 448)
    x, grid = model.embed(img)
    assert grid == (32, 32)
    assert x.shape == (2, 1 + 4 + 32 * 32, 24)
    pos = model.interpolate_pos_encoding(grid)
    patches = model.patch_embed.proj(img).flatten(2).transpose(1, 2)
    torch.testing.assert_close(x[:, 0],
                               (model.cls_token[0] + pos[:, 0])[0].expand(
                                   2, -1))
    # registers: no positional embedding, right after CLS
    torch.testing.assert_close(x[:, 1:5],
                               model.register_tokens.expand(2, -1, -1))
    torch.testing.assert_close(x[:, 5:], patches + pos[:, 1:])
    # without registers
    plain = tiny(num_register_tokens=0)
    x, _ = plain.embed(img)
    assert plain.num_prefix_tokens == 1 and x.shape[1] == 1 + 1024
    assert plain.register_tokens is None


def _reference_interp(pos, h, w, offset=0.1):
    m = int(math.sqrt(pos.shape[1] - 1))
    table = pos[0, 1:].reshape(m, m, -1).permute(2, 0, 1)[None]
    out = F.interpolate(
        table,
        scale_factor=((h + offset) / m, (w + offset) / m),
        mode='bicubic',
        align_corners=False,
        antialias=False)
    assert out.shape[-2:] == (h, w)
    return torch.cat([pos[0, :1], out[0].flatten(1).t()])[None]


@pytest.mark.parametrize('size,grid', [((448, 448), (32, 32)),
                                       ((448, 336), (32, 24)),
                                       ((224, 448), (16, 32))])
def test_position_interpolation(size, grid):
    model = tiny()
    x, g = model.embed(torch.randn(1, 3, *size))
    assert g == grid and x.shape[1] == 5 + grid[0] * grid[1]
    pos = model.interpolate_pos_encoding(grid)
    ref = _reference_interp(model.pos_embed.detach(), *grid)
    torch.testing.assert_close(pos, ref, rtol=0, atol=0)
    # the 0.1 offset matters: exact-size interpolation differs
    exact = interpolate_pos_embed(model.pos_embed, grid, offset=0.0)
    assert not torch.allclose(pos, exact)
    # the class row is kept
    torch.testing.assert_close(pos[:, 0], model.pos_embed[:, 0])


def test_position_table_unchanged_at_native_grid():
    model = tiny()
    assert model.interpolate_pos_encoding((37, 37)) is model.pos_embed
    with pytest.raises(ValueError, match='multiple of the patch size'):
        model.embed(torch.randn(1, 3, 100, 98))


def test_attention_matches_explicit_softmax():
    block = DINOv2Block(24, 2)
    x = torch.randn(2, 7, 24)
    attn = block.attn
    qkv = attn.qkv(x).reshape(2, 7, 3, 2, 12).permute(2, 0, 3, 1, 4)
    w = (qkv[0] * 12**-0.5) @ qkv[1].transpose(-2, -1)
    ref = (w.softmax(-1) @ qkv[2]).transpose(1, 2).reshape(2, 7, 24)
    torch.testing.assert_close(attn(x), attn.proj(ref), atol=1e-6, rtol=1e-5)


def test_head_is_final_norm_patch_map():
    model = tiny()
    img = torch.randn(2, 3, 56, 42)
    x, grid = model.embed(img)
    for i in range(len(model.blocks)):
        x = model.run_block(i, x)
    out = model.final_map(x, grid)
    assert out.shape == (2, 24, 4, 3)
    ref = model.norm(x)[:, 5:].transpose(1, 2).reshape(2, 24, 4, 3)
    torch.testing.assert_close(out, ref)
    assert model(img)[0].shape == (2, 24, 4, 3)


# -- the 0.2 scaling inside LayerScale ---------------------------------------
class _Probe(nn.Module):

    def __init__(self, dim):
        super().__init__()
        self.fc = nn.Linear(dim, dim)
        self.seen = []

    def forward(self, a, ctx=None):
        self.seen.append(ctx)
        return self.fc(a)


def test_adapter_scaled_by_02_inside_layerscale():
    torch.manual_seed(0)
    block = DINOv2Block(24, 2, layer_scale_init_value=1.0).eval()
    with torch.no_grad():
        block.ls1.gamma.uniform_(0.1, 0.9)
        block.ls2.gamma.uniform_(0.1, 0.9)
    x = torch.randn(2, 9, 24)
    bare = block(x)
    probe = _Probe(24)
    block.attach('ffn_parallel', 'adapter', probe, scale=0.2, input='norm')
    out = block(x, 'ctx')
    mid = x + block.ls1.gamma * block.attn(block.norm1(x))
    expected = block.ls2.gamma * 0.2 * probe.fc(block.norm2(mid))
    torch.testing.assert_close(out - bare, expected, atol=1e-6, rtol=1e-5)
    assert probe.seen == ['ctx']


def test_pair_passes_grid_and_prefix_in_the_context():
    from mmris.models.backbones import AdaptedEncoderPair
    pair = AdaptedEncoderPair(
        visual=dict(type='DINOv2', arch=TINY),
        text=dict(
            type='CLIPTextTransformer',
            width=16,
            heads=2,
            layers=2,
            embed_dim=8,
            vocab_size=100),
        order='text_first',
        adapters=[
            dict(
                point='ffn_parallel',
                layers=[1],
                module=dict(type='_DINOv2Probe'))
        ])
    ids = torch.tensor([[98, 5, 99, 0, 0]])
    out = pair(torch.randn(1, 3, 56, 28), ids)
    ctx = pair.visual.blocks[1].adapter.seen[0]
    assert ctx.grid == (4, 2) and ctx.patch_start == 5  # CLS + 4 registers
    torch.testing.assert_close(ctx.word, out.word, rtol=0, atol=0)


@MODELS.register_module(force=True)
class _DINOv2Probe(_Probe):

    def __init__(self):
        super().__init__(24)


# -- pretrained weights -------------------------------------------------------
def test_load_meta_checkpoint_strictly(tmp_path):
    model = tiny()
    state = _meta_state_dict(model)
    path = tmp_path / 'dinov2_tiny_reg4_pretrain.pth'
    torch.save(state, path)

    pair = AdaptedEncoderPair(
        visual=dict(type='DINOv2', arch=TINY, pretrained=str(path)),
        text=dict(
            type='CLIPTextTransformer',
            width=16,
            heads=2,
            layers=2,
            embed_dim=8,
            vocab_size=100),
        order='text_first',
        adapters=[
            dict(
                point='ffn_parallel',
                layers=[1, 3],
                scale=0.2,
                name='adapter',
                module=dict(
                    type='DenseAligner',
                    in_channels=24,
                    hidden_channels=16,
                    text_channels=16,
                    embed_dims=16,
                    num_heads=2))
        ])
    pair.visual.init_weights()
    own = pair.visual.state_dict()
    for k, v in state.items():
        torch.testing.assert_close(own[k], v, rtol=0, atol=0)
    assert any('.adapter.' in k for k in own)

    # strict: an unexpected or a missing (non-adapter) key is an error
    bad = dict(state, extra=torch.zeros(1))
    with pytest.raises(RuntimeError, match='unexpected keys'):
        pair.visual.load_meta_state_dict(bad)
    bad = {k: v for k, v in state.items() if k != 'norm.weight'}
    with pytest.raises(RuntimeError, match='missing keys'):
        pair.visual.load_meta_state_dict(bad)
    # a DETRIS-style 'dinov2.' prefix is accepted
    pair.visual.load_meta_state_dict({
        'dinov2.' + k: v
        for k, v in state.items()
    })
    with pytest.raises(FileNotFoundError):
        tiny(pretrained=str(tmp_path / 'missing.pth')).init_weights()


def test_load_resizes_other_positional_grid():
    model = tiny(img_size=224)  # 16 x 16 table
    src = tiny()  # 37 x 37 table
    state = _meta_state_dict(src)
    model.load_meta_state_dict(state)
    assert model.pos_embed.shape == (1, 257, 24)
    torch.testing.assert_close(model.pos_embed[:, 0], state['pos_embed'][:, 0])


# -- freezing inside AdaptedEncoderPair ---------------------------------------
def test_freezing_rule_in_pair():
    torch.manual_seed(0)
    pair = MODELS.build(
        dict(
            type='AdaptedEncoderPair',
            visual=dict(type='DINOv2', arch=TINY),
            text=dict(
                type='CLIPTextTransformer',
                width=16,
                heads=2,
                layers=4,
                embed_dim=8,
                vocab_size=100),
            order='text_first',
            adapters=dict(
                dense_aligner=dict(
                    point='ffn_parallel',
                    tower='visual',
                    layers=[1, 3],
                    scale=0.2,
                    input='norm',
                    module=dict(
                        type='DenseAligner',
                        in_channels=24,
                        hidden_channels=16,
                        text_channels=16,
                        embed_dims=16,
                        num_heads=2,
                        branch_channels=(8, 4, 4, 4, 4))),
                # 4-channel reductions: no branch dies after one ReLU
                text_adapter=dict(
                    point='ffn_parallel',
                    tower='text',
                    layers=[1, 3],
                    scale=0.2,
                    input='residual',
                    module=dict(
                        type='TextAdapter',
                        in_channels=16,
                        hidden_channels=16,
                        branch_channels=(8, 4, 4, 4, 4)))),
            out_indices=[1, 2],
            trainable=()))
    trainable = {n for n, p in pair.named_parameters() if p.requires_grad}
    assert trainable and all('.adapter.' in n for n in trainable)
    assert {n
            for n, _ in pair.named_parameters()
            if '.adapter.' in n} == trainable

    ids = torch.tensor([[98, 5, 7, 99, 0, 0], [98, 4, 9, 3, 99, 0]])
    # Eval mode: with batch statistics the bias of a convolution that feeds
    # a BatchNorm gets an exactly-zero gradient (BN removes the mean).
    pair.eval()
    before = {n: p.detach().clone() for n, p in pair.named_parameters()}
    out = pair(torch.randn(2, 3, 56, 42), ids)
    assert [v.shape for v in out.visual] == [(2, 24, 4, 3)] * 3
    assert out.word.shape == (2, 6, 16)
    # random linear read-outs (a squared-norm loss on a LayerNorm output has
    # almost no gradient)
    loss = sum((v * torch.randn_like(v)).sum() for v in out.visual)
    loss = loss + (out.state * torch.randn_like(out.state)).sum()
    opt = torch.optim.Adam(pair.parameters(), lr=1e-2)
    opt.zero_grad()
    loss.backward()
    opt.step()
    for n, p in pair.named_parameters():
        changed = not torch.equal(p.detach(), before[n])
        assert changed == (n in trainable), n
