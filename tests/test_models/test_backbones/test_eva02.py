# Copyright (c) mmris contributors. All rights reserved.
"""EVA02-CLIP image tower: block maths against an independent
computation (explicit rotary formula, sub-LN attention, SwiGLU), the
official BarLeRIa rope index arithmetic, the final-norm switch, and the
EVA-CLIP / open_clip file layouts."""
import math

import pytest
import torch
import torch.nn.functional as F

import mmris  # noqa: F401
from mmris.models.backbones import EVA02VisionTransformer
from mmris.models.backbones.eva02 import TIMM_RENAMES

TINY = dict(
    img_size=32,
    patch_size=8,
    width=16,
    layers=2,
    heads=2,
    mlp_ratio=2.0,
    output_dim=8)


def tiny(**kw):
    torch.manual_seed(0)
    cfg = dict(TINY)
    cfg.update(kw)
    model = EVA02VisionTransformer(**cfg).eval()
    with torch.no_grad():  # no zero biases / unit norms: nothing hidden
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def rope_table(h, w, head_dim, ref=16):
    """EVA02's 2-D rotary angles, written from its definition: language
    frequencies 1/10000^(2j/d) (d = head_dim / 2) on positions a / n * ref,
    rows on the first half of the head, columns on the second, each
    frequency twice (interleaved pairs). Returns (h*w, head_dim)."""
    d = head_dim // 2
    freqs = 1.0 / 10000**(torch.arange(0, d, 2)[:d // 2].float() / d)

    def axis(n):
        ang = (torch.arange(n).float() / n * ref)[:, None] * freqs[None]
        return ang.repeat_interleave(2, dim=-1)  # (n, d)

    rows = axis(h)[:, None, :].expand(h, w, d)
    cols = axis(w)[None, :, :].expand(h, w, d)
    return torch.cat([rows, cols], dim=-1).reshape(h * w, head_dim)


def rotate(x, ang):
    """x * cos + rotate_half(x) * sin, rotate_half = (-x1, x0, -x3, x2...)."""
    pair = torch.stack([-x[..., 1::2], x[..., 0::2]], dim=-1).flatten(-2)
    return x * ang.cos() + pair * ang.sin()


def block_reference(block, x, grid, heads):
    """An EVA02 block computed from its definition (no hooks)."""
    a = block.attn
    h = F.layer_norm(x, x.shape[-1:], block.norm1.weight, block.norm1.bias,
                     1e-6)
    q = h @ a.q_proj.weight.t() + a.q_bias
    k = h @ a.k_proj.weight.t()
    v = h @ a.v_proj.weight.t() + a.v_bias
    b, n, c = q.shape
    d = c // heads
    q, k, v = (t.view(b, n, heads, d).transpose(1, 2) for t in (q, k, v))
    ang = rope_table(*grid, d)
    p = grid[0] * grid[1]
    q = torch.cat([q[:, :, :n - p], rotate(q[:, :, n - p:], ang)], 2)
    k = torch.cat([k[:, :, :n - p], rotate(k[:, :, n - p:], ang)], 2)
    att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), -1) @ v
    att = att.transpose(1, 2).reshape(b, n, c)
    att = F.layer_norm(att, (c, ), a.inner_attn_ln.weight,
                       a.inner_attn_ln.bias, 1e-6)
    x = x + att @ a.proj.weight.t() + a.proj.bias
    m = block.mlp
    h = F.layer_norm(x, x.shape[-1:], block.norm2.weight, block.norm2.bias,
                     1e-6)
    hid = F.silu(h @ m.w1.weight.t() + m.w1.bias) * (
        h @ m.w2.weight.t() + m.w2.bias)
    hid = F.layer_norm(hid, hid.shape[-1:], m.ffn_ln.weight, m.ffn_ln.bias,
                       1e-6)
    return x + hid @ m.w3.weight.t() + m.w3.bias


@pytest.mark.parametrize('grid,extra', [((4, 4), 0), ((3, 5), 3)])
def test_block_equals_the_definition(grid, extra):
    from mmris.models.utils import StepContext
    model = tiny()
    x = torch.randn(2, 1 + extra + grid[0] * grid[1], 16)
    ctx = StepContext(grid=grid)
    with torch.no_grad():
        out = model.blocks[1](x, ctx)
        ref = block_reference(model.blocks[1], x, grid, 2)
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=1e-5)


def test_official_rope_index_arithmetic_changes_nothing():
    """BarLeRIa's eva_clip rope (rope.py, ``t.shape[2] != dim2`` branch)
    rotates t[0] (the first inserted text token) with phase 0, leaves
    t[1:-(P-1)] (the other text tokens AND patch 0) unrotated and patch k
    with phase k: the same numbers as rotating exactly the patches."""
    torch.manual_seed(1)
    h, w, d, L = 4, 5, 8, 3
    p = h * w
    ang = rope_table(h, w, d)
    t = torch.randn(2, 2, L + p, d)  # tokens after the CLS token
    official = torch.cat([
        rotate(t[:, :, :1], ang[:1]), t[:, :, 1:-(p - 1)],
        rotate(t[:, :, -(p - 1):], ang[1:])
    ],
                         dim=2)
    ours = torch.cat([t[:, :, :L], rotate(t[:, :, L:], ang)], dim=2)
    assert torch.equal(ang[0], torch.zeros(d))  # phase 0 is the identity
    assert torch.equal(official, ours)


def test_rope_table_equals_the_definition():
    model = tiny()
    emb = model.blocks[0].attn.rope((3, 5), torch.device('cpu'))
    sin, cos = emb.chunk(2, dim=-1)
    ang = rope_table(3, 5, 8)
    torch.testing.assert_close(sin, ang.sin(), rtol=0, atol=1e-6)
    torch.testing.assert_close(cos, ang.cos(), rtol=0, atol=1e-6)


def test_final_map_skips_norm_unless_asked():
    model = tiny()
    normed = tiny(final_norm=True)
    normed.load_state_dict(model.state_dict())
    img = torch.randn(1, 3, 32, 32)
    x, grid = model.embed(img)
    plain = model.final_map(x, grid)
    ref = (x[:, 1:] @ model.head.weight.t() + model.head.bias)
    torch.testing.assert_close(plain, ref.transpose(1, 2).reshape(1, 8, 4, 4))
    withn = normed.final_map(x, grid)
    expect = normed.head(normed.norm(x[:,
                                       1:])).transpose(1,
                                                       2).reshape(1, 8, 4, 4)
    torch.testing.assert_close(withn, expect)
    assert not torch.allclose(plain, withn)
    # the unused norm is never trainable, so every trainable gets a grad
    assert model.unused_parameters == ('norm.weight', 'norm.bias')
    assert normed.unused_parameters == ()


def test_positional_table_resized_every_call_without_antialias():
    model = tiny()
    x, grid = model.embed(torch.zeros(1, 3, 48, 40))
    assert grid == (6, 5)
    table = model.pos_embed[0, 1:].reshape(1, 4, 4, 16).permute(0, 3, 1, 2)
    table = F.interpolate(
        table, size=(6, 5), mode='bicubic', align_corners=False)
    patches = model.patch_embed.proj(torch.zeros(1, 3, 48, 40)).flatten(2)
    expect = patches.transpose(1, 2) + table.flatten(2).transpose(1, 2)
    torch.testing.assert_close(x[:, 1:], expect, rtol=0, atol=1e-6)
    torch.testing.assert_close(x[:, 0],
                               model.cls_token[0] + model.pos_embed[0, :1])


def _release_state(model):
    """``model``'s tensors as an EVA-CLIP release file holds them (with the
    derived rope buffers of a 2x2 pretraining grid)."""
    state = {'visual.' + k: v.clone() for k, v in model.state_dict().items()}
    state['visual.rope.freqs_cos'] = torch.ones(4, 8)
    state['visual.blocks.0.attn.rope.freqs_sin'] = torch.zeros(4, 8)
    state['text.positional_embedding'] = torch.zeros(77, 16)
    state['logit_scale'] = torch.tensor(4.6)
    return state


@pytest.mark.parametrize('layout', ['eva_clip', 'open_clip'])
def test_pretrained_layouts_load_strictly(layout, tmp_path):
    src = tiny()
    state = _release_state(src)
    if layout == 'open_clip':
        renamed = {}
        for k, v in state.items():
            if k.startswith('visual.'):
                if 'rope.' in k:
                    continue  # timm's rope tables are not saved
                k = 'visual.trunk.' + k[len('visual.'):]
                for eva, timm in TIMM_RENAMES:
                    k = k.replace(eva, timm)
            renamed[k] = v
        state = renamed
        assert 'visual.trunk.blocks.0.mlp.fc1_g.weight' in state
    path = str(tmp_path / 'eva.pt')
    torch.save({'model': state}, path)
    dst = EVA02VisionTransformer(**TINY, pretrained=path)
    dst.init_weights()
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k
    # a file lacking a tower tensor is refused by name
    bad = {k: v for k, v in state.items() if 'head' not in k}
    torch.save(bad, path)
    with pytest.raises(RuntimeError, match=r"missing keys \['head"):
        EVA02VisionTransformer(**TINY, pretrained=path).init_weights()


def test_text_tower_eva_clip_layout(tmp_path):
    from mmris.models.backbones import CLIPTextTransformer
    txt = dict(width=16, heads=2, layers=2, embed_dim=8, vocab_size=100)
    torch.manual_seed(0)
    src = CLIPTextTransformer(**txt, act='gelu')
    assert isinstance(src.blocks[0].mlp.gelu, torch.nn.GELU)
    state = {
        'text.' + k: v
        for k, v in src.state_dict().items() if k != 'logit_scale'
    }
    state['logit_scale'] = src.logit_scale.detach().clone()
    state['visual.cls_token'] = torch.zeros(1, 1, 16)
    path = str(tmp_path / 'eva.pt')
    torch.save(state, path)
    dst = CLIPTextTransformer(
        **txt, act='gelu', pretrained=path, layout='eva_clip')
    dst.init_weights()
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k
    with pytest.raises(ValueError, match='layout'):
        CLIPTextTransformer(**txt, layout='hf')
