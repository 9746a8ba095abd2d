# Copyright (c) mmris contributors. All rights reserved.
"""BarLeRIa components: shortcut flows, Intertwiner, side network."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import mmris  # noqa: F401
from mmris.models.adapters import (BarLeRIaSideNetwork, Intertwiner,
                                   ShortcutNormalizingFlow, SideAdapterNetwork)
from mmris.models.utils import StepContext
from mmris.utils.memory_count import SavedTensorCounter
from ..utils import barleria_adapters, make_ids

init_default_scope('mmseg')


# -- shortcut normalizing flow ---------------------------------------------
def test_flow_near_identity_at_init_and_exact_without_planar_scale():
    torch.manual_seed(0)
    flow = ShortcutNormalizingFlow(dim=16, flow_length=4)
    x = torch.randn(2, 5, 16) * 3
    # affine part is exactly the identity; each planar flow moves a channel
    # by at most |scale| <= 0.01
    assert torch.equal(flow.affine_transform(x), x)
    assert (flow(x) - x).abs().max() <= 4 * 0.01 + 1e-6
    assert not torch.equal(flow(x), x)
    for planar in flow.transforms:
        planar.scale.data.zero_()
    assert torch.equal(flow(x), x)


def test_flow_keys_and_parameter_count():
    flow = ShortcutNormalizingFlow(dim=768, flow_length=4)
    keys = set(flow.state_dict())
    assert {
        'affine_transform.mu', 'affine_transform.logsigma',
        'transforms.3.weight', 'transforms.3.bias', 'transforms.3.scale'
    } <= keys
    assert not any('log_jacobians' in k for k in keys)
    # per block two flows: 2 * (2D + 4 (2D + 1)) = 15,368 for D = 768
    assert 2 * sum(p.numel() for p in flow.parameters()) == 15_368
    with pytest.raises(ValueError):
        ShortcutNormalizingFlow(dim=0)


def test_flow_affine_and_log_det():
    flow = ShortcutNormalizingFlow(dim=4, flow_length=0)
    flow.affine_transform.mu.data.fill_(1.0)
    flow.affine_transform.logsigma.data.fill_(torch.log(torch.tensor(2.)))
    x = torch.randn(3, 4)
    assert torch.allclose(flow(x), 1 + 2 * x)
    assert torch.allclose(
        flow.log_det_jacobian(x),
        torch.full((3, ), 4 * torch.log(torch.tensor(2.))))


def test_flows_attached_to_every_block_of_both_towers():
    pair = MODELS.build(_pair_cfg())
    for tower, dim in ((pair.visual, 32), (pair.text, 24)):
        for block in tower.blocks:
            assert isinstance(block.flow, ShortcutNormalizingFlow)
            assert isinstance(block.flow2, ShortcutNormalizingFlow)
            assert block.flow is not block.flow2
            assert block.flow.dim == dim
            assert all(p.requires_grad for p in block.flow.parameters())


# -- Intertwiner -------------------------------------------------------------
def _pair_cfg(**kw):
    cfg = dict(
        type='AdaptedEncoderPair',
        visual=dict(
            type='CLIPVisionTransformer',
            img_size=64,
            patch_size=16,
            width=32,
            layers=4,
            heads=2,
            output_dim=24),
        text=dict(
            type='CLIPTextTransformer',
            width=24,
            heads=2,
            layers=4,
            embed_dim=24),
        adapters=barleria_adapters(32, 24, hidden=8),
        out_indices=(1, 2),
        side_indices=(0, 1, 2, 3),
        trainable=('positional_embedding', ))
    cfg.update(kw)
    return cfg


def test_intertwiner_projection():
    torch.manual_seed(0)
    inter = Intertwiner(text_channels=512, d_img=768)
    assert sum(p.numel() for p in inter.parameters()) == 41_760
    assert set(inter.state_dict()) == {
        'proj.0.weight', 'proj.0.bias', 'proj.2.weight', 'proj.2.bias'
    }
    assert torch.count_nonzero(inter.proj[0].bias) == 0
    assert 0.015 < inter.proj[0].weight.std() < 0.025
    ctx = StepContext(
        text_embed=torch.randn(2, 17, 512),
        visual_tokens=torch.randn(2, 5, 768))
    assert inter(None, ctx).shape == (2, 17, 768)
    with pytest.raises(ValueError, match='use_txt_add=True'):
        inter.text_prefix(None, ctx)
    both = Intertwiner(use_txt_add=True)
    assert both.text_prefix(None, ctx).shape == (2, 1, 512)
    torch.testing.assert_close(
        both.text_prefix(None, ctx), both.proj_txt(ctx.visual_tokens[:, :1]))


def test_intertwiner_tokens_inserted_after_cls():
    torch.manual_seed(0)
    pair = MODELS.build(_pair_cfg()).eval()
    ids = make_ids(2, 8)
    seen = {}
    pair.visual.blocks[0].register_forward_pre_hook(
        lambda m, args: seen.setdefault('x', args[0]))
    with torch.no_grad():
        out = pair(torch.randn(2, 3, 64, 64), ids)
        expected = pair.token_injector.proj(pair.text.embed(ids))
    x = seen['x']
    assert x.shape == (2, 1 + 8 + 16, 32)  # CLS + L text tokens + 4x4
    assert torch.allclose(x[:, 1:9], expected)
    # outputs and side maps exclude CLS and the injected tokens
    assert [tuple(v.shape)
            for v in out.visual] == [(2, 32, 4, 4)] * 2 + [(2, 24, 4, 4)]
    assert [tuple(s.shape) for s in out.side] == [(2, 32, 4, 4)] * 4
    assert out.word.shape == (2, 8, 24)


# -- side network -------------------------------------------------------------
def _side(**kw):
    cfg = dict(
        out_channels=24,
        clip_channels=32,
        text_channels=24,
        img_size=64,
        patch_size=16,
        embed_dim=12,
        depth=4,
        num_heads=2,
        num_queries=4,
        fusion_blocks=(0, 1, 2, 3),
        out_blocks=(4, ))
    cfg.update(kw)
    return BarLeRIaSideNetwork(**cfg)


def _side_inputs(b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    img = torch.randn(b, 3, 64, 64, generator=g)
    feats = [torch.randn(b, 32, 4, 4, generator=g) for _ in range(4)]
    word = torch.randn(b, 8, 24, generator=g)
    return img, feats, word


def test_side_network_full_size_count_and_keys():
    side = BarLeRIaSideNetwork()
    san = side.side_adapter_network
    assert sum(p.numel() for p in san.parameters()) == 3_052_608
    assert sum(p.numel() for p in side.side_linear.parameters()) == 74_240
    keys = set(side.state_dict())
    for k in ('side_adapter_network.vit_model.pos_embed',
              'side_adapter_network.vit_model.decoders.7.linear2.weight',
              'side_adapter_network.fusion_layers.layer_3.input_proj.1.bias',
              'side_adapter_network.query_pos_embed', 'side_linear.weight'):
        assert k in keys
    assert san.vit_model.pos_embed.shape == (1, 676, 144)


def test_side_network_shapes_and_loss():
    torch.manual_seed(0)
    side = _side()
    img, feats, word = _side_inputs()
    out, losses = side(img, feats, word)
    assert out.shape == (3, 24, 4, 4)
    assert set(losses) == {'loss_var'}
    assert losses['loss_var'].ndim == 0 and losses['loss_var'] > 0
    # the reconstruction loss trains only the feedback decoders' `linear`
    side.zero_grad()
    losses['loss_var'].backward()
    with_grad = {
        n
        for n, p in side.named_parameters()
        if p.grad is not None and p.grad.abs().sum() > 0
    }
    assert with_grad and all('.decoders.' in n and n.endswith('.linear.weight')
                             for n in with_grad)
    # other input sizes: positional table resized on the fly
    out, _ = side(
        torch.randn(1, 3, 96, 96),
        [torch.randn(1, 32, 6, 6) for _ in range(4)], torch.randn(1, 8, 24))
    assert out.shape == (1, 24, 6, 6)
    with pytest.raises(ValueError):
        side(img, feats[:3], word)
    with pytest.raises(ValueError):
        SideAdapterNetwork(prior_norm='batch')


@pytest.mark.parametrize('prior_norm', ['per_sample', 'channel'])
def test_side_network_is_batch_independent(prior_norm):
    torch.manual_seed(0)
    side = _side(prior_norm=prior_norm).eval()
    img, feats, word = _side_inputs()
    with torch.no_grad():
        batch, _ = side(img, feats, word)
        for i in range(3):
            alone, _ = side(img[i:i + 1], [f[i:i + 1] for f in feats],
                            word[i:i + 1])
            assert torch.allclose(batch[i], alone[0], atol=1e-5)


def test_side_network_batch_axis_quirk():
    """The official prior is normalised over the batch axis;
    equal to the default for a batch of one, batch-dependent otherwise."""
    torch.manual_seed(0)
    quirk = _side(prior_norm='batch_axis').eval()
    # make the top-down path strong enough to show (tiny at random init)
    for dec in quirk.side_adapter_network.vit_model.decoders:
        for lin in (dec.linear, dec.linear2):
            torch.nn.init.normal_(lin.weight, std=0.5)
    torch.nn.init.normal_(quirk.side_adapter_network.proj[2].weight, std=1.)
    default = _side().eval()
    default.load_state_dict(quirk.state_dict())
    img, feats, word = _side_inputs()
    with torch.no_grad():
        batch, _ = quirk(img, feats, word)
        one = ([f[:1] for f in feats], word[:1])
        alone_quirk, _ = quirk(img[:1], *one)
        alone_default, _ = default(img[:1], *one)
        batch_default, _ = default(img, feats, word)
    assert torch.equal(alone_quirk, alone_default)
    assert torch.allclose(batch_default[0], alone_quirk[0], atol=1e-5)
    assert (batch[0] - alone_quirk[0]).abs().max() > 1e-3
    # the normalised prior itself: p / |p| per sample vs over the batch axis
    p = torch.tensor([[3., -4.], [4., 3.]])
    san = default.side_adapter_network
    assert torch.equal(san._normalize_prior(p), torch.sign(p))
    assert torch.allclose(
        quirk.side_adapter_network._normalize_prior(p),
        torch.tensor([[.6, -.8], [.8, .6]]))


def test_top_down_attention_equals_explicit_softmax_without_keeping_it():
    from mmris.models.adapters.absvit import TopDownAttention
    torch.manual_seed(0)
    attn = TopDownAttention(24, 3)
    x = torch.randn(2, 37, 24, requires_grad=True)
    td = torch.randn(2, 37, 24)
    shapes = []
    with torch.autograd.graph.saved_tensors_hooks(
            lambda t: shapes.append(tuple(t.shape)) or t, lambda t: t):
        out = attn(x, td)
    # The explicit AbS-ViT formula, written out here.
    qkv = F.linear(x, attn.qkv.weight, attn.qkv.bias).reshape(2, 37, 3, 3, 8)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    v = v + F.linear(td, attn.qkv.weight, attn.qkv.bias).reshape(
        2, 37, 3, 3, 8).permute(2, 0, 3, 1, 4)[2]
    w = (q @ k.transpose(-2, -1) * 8**-0.5).softmax(-1)
    ref = attn.proj((w @ v).transpose(1, 2).reshape(2, 37, 24))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    # The (37 x 37) weights of each head are not kept for the backward pass.
    assert shapes and not any(s[-2:] == (37, 37) for s in shapes)
    g = torch.randn_like(out)
    torch.testing.assert_close(
        torch.autograd.grad(out, x, g)[0],
        torch.autograd.grad(ref, x, g)[0],
        rtol=1e-4,
        atol=1e-5)


def test_flow_recompute_keeps_only_the_input_with_equal_gradients():
    torch.manual_seed(0)
    flows = [
        ShortcutNormalizingFlow(dim=16, flow_length=4, recompute=r)
        for r in (False, True)
    ]
    flows[1].load_state_dict(flows[0].state_dict())
    x = torch.randn(2, 7, 16)
    results = []
    for flow in flows:
        flow.train()
        xi = (x * 1.0).requires_grad_()
        with SavedTensorCounter(exclude=flow.parameters()) as saved:
            y = flow(xi)
        y.backward(torch.linspace(-1, 1, y.numel()).view_as(y))
        grads = [xi.grad] + [p.grad for p in flow.parameters()]
        results.append((y.detach(), grads, saved.bytes))
    (y0, g0, b0), (y1, g1, b1) = results
    assert torch.equal(y0, y1)
    for a, b in zip(g0, g1):
        assert torch.equal(a, b)
    # Without recomputation: the input, the four planar inputs and more;
    # with it: only the input.
    tokens = 2 * 7 * 16 * 4
    assert b0 > 5 * tokens
    assert b1 == tokens
