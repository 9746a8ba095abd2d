# Copyright (c) mmris contributors. All rights reserved.
"""The hook mechanism: every hook point, the context hooks receive,
schedules, inserted tokens and the freezing rule."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import mmris  # noqa: F401
from mmris.models.backbones import (HOOK_POINTS, AdaptedEncoderPair,
                                    text_padding_mask)
from mmris.models.utils import StepContext

init_default_scope('mmseg')

VIS = dict(
    type='CLIPVisionTransformer',
    img_size=32,
    patch_size=16,
    width=16,
    layers=4,
    heads=2,
    output_dim=8)
TXT = dict(
    type='CLIPTextTransformer', width=16, heads=2, layers=4, embed_dim=8)


@MODELS.register_module(force=True)
class _RecordingAdapter(nn.Module):
    """Linear adapter that records the context it receives."""

    def __init__(self, dim: int = 16, out: int = 16):
        super().__init__()
        self.fc = nn.Linear(dim, out)
        self.seen = []

    def forward(self, x, ctx=None):
        self.seen.append(ctx)
        return self.fc(x)


@MODELS.register_module(force=True)
class _AffineShortcut(nn.Module):

    def __init__(self, dim: int = 16):
        super().__init__()
        self.scale = nn.Parameter(torch.full((dim, ), 2.0))

    def forward(self, x, ctx=None):
        return x * self.scale


@MODELS.register_module(force=True)
class _TokenInjector(nn.Module):
    """Projects the text input embeddings into visual tokens."""

    def __init__(self, text_channels: int = 16, d_vis: int = 16):
        super().__init__()
        self.proj = nn.Linear(text_channels, d_vis)
        self.seen = []

    def forward(self, x, ctx):
        self.seen.append(ctx)
        return self.proj(ctx.text_embed)


@MODELS.register_module(force=True)
class _RecordingBridge(nn.Module):
    """Adds constants to both towers and records what it saw."""

    num_stages = 2

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.calls = []

    def forward(self, v_map, t, ctx):
        self.calls.append(
            (ctx.stage, tuple(v_map.shape), tuple(t.shape), dict(ctx.store)))
        ctx.store['last'] = ctx.stage
        return torch.ones_like(v_map) * self.w, torch.zeros_like(t)


@MODELS.register_module(force=True)
class _Prompts(nn.Module):
    """Deep prompts: 2 tokens per layer, each layer's own."""

    def __init__(self, num_layers: int = 4, dim: int = 16):
        super().__init__()
        self.prompts = nn.Parameter(torch.randn(num_layers, 2, dim))

    def forward(self, x, ctx):
        return self.prompts[ctx.stage].expand(x.shape[0], -1, -1)


def _inputs(b=2):
    img = torch.randn(b, 3, 32, 32)
    ids = torch.zeros(b, 6, dtype=torch.long)
    ids[:, 0], ids[:, 1], ids[:, 2] = 49406, 320, 49407
    return img, ids


def _pair(*specs, **kwargs):
    return AdaptedEncoderPair(VIS, TXT, adapters=list(specs), **kwargs)


def test_plain_pair_matches_towers_run_alone():
    pair = AdaptedEncoderPair(VIS, TXT, out_indices=(1, )).eval()
    img, ids = _inputs()
    out = pair(img, ids)
    word, state = pair.text(ids)
    assert torch.allclose(out.word, word, atol=1e-6)
    assert torch.allclose(out.state, state, atol=1e-6)
    assert torch.allclose(out.visual[-1], pair.visual(img)[0], atol=1e-6)
    assert [tuple(v.shape) for v in out.visual] == [(2, 16, 2, 2),
                                                    (2, 8, 2, 2)]


def test_bridge_hook_runs_after_chosen_blocks_and_updates_patches():
    pair = _pair(
        dict(
            point='bridge',
            layers=(1, 3),
            module=dict(type='_RecordingBridge')),
        out_indices=(1, )).eval()
    img, ids = _inputs()
    out = pair(img, ids)
    stages = [c[0] for c in pair.bridge.calls]
    assert stages == [0, 1]
    assert pair.bridge.calls[0][1] == (2, 16, 2, 2)
    assert pair.bridge.calls[1][3] == {'last': 0}  # store carried over
    out2 = pair(img, ids)  # a new forward pass starts with an empty store
    assert pair.bridge.calls[2][3] == {}
    assert torch.equal(out.visual[0], out2.visual[0])
    # The tap after block 1 sees the +1 update on patch tokens only.
    plain = AdaptedEncoderPair(VIS, TXT, out_indices=(1, )).eval()
    plain.load_state_dict(pair.state_dict(), strict=False)
    ref = plain(img, ids)
    assert torch.allclose(out.visual[0], ref.visual[0] + 1, atol=1e-5)


def test_ffn_parallel_hook_and_its_context():
    pair = _pair(
        dict(
            point='ffn_parallel',
            tower='visual',
            layers=[1, 2],
            scale=0.2,
            input='norm',
            module=dict(type='_RecordingAdapter')),
        order='text_first').eval()
    blocks = pair.visual.blocks
    assert not hasattr(blocks[0], 'adapter')
    img, ids = _inputs()
    out = pair(img, ids)
    ctx = blocks[1].adapter.seen[0]
    assert isinstance(ctx, StepContext)
    assert (ctx.tower, ctx.layer, ctx.grid, ctx.patch_start) == ('visual', 1,
                                                                 (2, 2), 1)
    torch.testing.assert_close(ctx.word, out.word, rtol=0, atol=0)
    assert ctx.pad_mask.tolist() == text_padding_mask(ids).tolist()
    assert blocks[2].adapter.seen[0].layer == 2
    # The adapter adds exactly scale * adapter(norm2(x)) to the block output.
    x = torch.randn(2, 5, 16)
    blk = blocks[1]
    with torch.no_grad():
        with_adapter = blk(x, ctx)
        mid = x + blk.attn_branch(blk.ln_1(x))
        expected_delta = 0.2 * blk.adapter(blk.ln_2(mid), ctx)
        without = blk.ffn_branch(blk.ln_2(mid)) + mid
    assert torch.allclose(with_adapter - without, expected_delta, atol=1e-5)


def test_attn_parallel_and_residual_input():
    pair = _pair(
        dict(
            point='attn_parallel',
            tower='text',
            layers=[0],
            scale=0.5,
            input='residual',
            module=dict(type='_RecordingAdapter'))).eval()
    blk = pair.text.blocks[0]
    x = torch.randn(2, 6, 16)
    mask = pair.text.causal_mask(6, x.device)
    with torch.no_grad():
        out = blk(x, None, attn_mask=mask)
        mid = x + blk.attn_branch(blk.ln_1(x), mask) + \
            0.5 * blk.attn_adapter(x)
        expected = mid + blk.ffn_branch(blk.ln_2(mid))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


@MODELS.register_module(force=True)
class _QKVDelta(nn.Module):
    """Adds a learned delta to q and v only (as LoRA on W_q, W_v)."""

    def __init__(self, dim: int = 16):
        super().__init__()
        self.q = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)

    def forward(self, h, ctx):
        return self.q(h), None, self.v(h)


def test_qkv_hook_equals_adapted_projection_weights():
    pair = _pair(
        dict(
            point='qkv',
            tower='visual',
            layers=[2],
            scale=0.5,
            module=dict(type='_QKVDelta'))).eval()
    blk = pair.visual.blocks[2]
    ref = AdaptedEncoderPair(VIS, TXT).eval().visual.blocks[2]
    ref.load_state_dict(blk.state_dict(), strict=False)
    c = 16
    with torch.no_grad():  # W_in += 0.5 * [W_q'; 0; W_v']
        ref.attn.in_proj_weight[:c] += 0.5 * blk.qkv_adapter.q.weight
        ref.attn.in_proj_weight[2 * c:] += 0.5 * blk.qkv_adapter.v.weight
        x = torch.randn(2, 5, 16)
        torch.testing.assert_close(blk(x), ref(x), atol=1e-5, rtol=1e-5)


def test_attn_out_hook_equals_adapted_output_projection():
    pair = _pair(
        dict(
            point='attn_out',
            tower='visual',
            layers=[0],
            module=dict(type='_RecordingAdapter'))).eval()
    blk = pair.visual.blocks[0]
    nn.init.zeros_(blk.out_adapter.fc.bias)
    ref = AdaptedEncoderPair(VIS, TXT).eval().visual.blocks[0]
    ref.load_state_dict(blk.state_dict(), strict=False)
    with torch.no_grad():
        ref.attn.out_proj.weight += blk.out_adapter.fc.weight
        x = torch.randn(2, 5, 16)
        torch.testing.assert_close(blk(x), ref(x), atol=1e-5, rtol=1e-5)


def test_shortcut_hook_replaces_identity():
    pair = _pair(
        dict(
            point='attn_shortcut',
            tower='text',
            name='flow',
            module=dict(type='_AffineShortcut')),
        dict(
            point='ffn_shortcut',
            tower='text',
            name='flow2',
            module=dict(type='_AffineShortcut')))
    blk = pair.text.blocks[0]
    assert blk.flow is not blk.flow2
    x = torch.randn(1, 3, 16)
    with torch.no_grad():
        y = blk(x)
        mid = 2 * x + blk.attn_branch(blk.ln_1(x))
        expected = 2 * mid + blk.ffn_branch(blk.ln_2(mid))
    assert torch.allclose(y, expected, atol=1e-5)


def test_tokens_inserted_after_prefix_and_skipped_by_taps():
    pair = _pair(
        dict(
            point='tokens',
            tower='visual',
            layers=[0],
            module=dict(type='_TokenInjector')),
        side_indices=(0, 3)).eval()
    img, ids = _inputs()
    seen = {}

    def record(module, args):
        seen['x'] = args[0]

    pair.visual.blocks[0].register_forward_pre_hook(record)
    out = pair(img, ids)
    # CLS + 6 injected text tokens + 4 patches
    assert seen['x'].shape[1] == 1 + 6 + 4
    ctx = pair.token_injector.seen[0]
    torch.testing.assert_close(seen['x'][:, 1:7],
                               pair.token_injector.proj(ctx.text_embed))
    torch.testing.assert_close(ctx.text_embed, pair.text.embed(ids))
    assert [tuple(s.shape) for s in out.side] == [(2, 16, 2, 2)] * 2
    assert out.visual[-1].shape == (2, 8, 2, 2)


def test_deep_prompts_are_replaced_at_every_layer():
    pair = _pair(
        dict(
            point='tokens',
            tower='visual',
            replace=True,
            name='prompts',
            module=dict(type='_Prompts')),
        out_indices=(1, )).eval()
    img, ids = _inputs()
    inputs = []
    for blk in pair.visual.blocks:
        blk.register_forward_pre_hook(lambda m, args: inputs.append(args[0]))
    out = pair(img, ids)
    assert [x.shape[1] for x in inputs] == [1 + 2 + 4] * 4
    for i, x in enumerate(inputs):  # layer i sees its own prompts
        torch.testing.assert_close(x[:, 1:3],
                                   pair.prompts.prompts[i].expand(2, -1, -1))
    assert out.visual[0].shape == (2, 16, 2, 2)
    # the patch-block contexts report where the patches start
    seen = []
    probe = _pair(
        dict(
            point='tokens',
            tower='visual',
            replace=True,
            name='prompts',
            module=dict(type='_Prompts')),
        dict(
            point='ffn_parallel',
            tower='visual',
            layers=[3],
            module=dict(type='_RecordingAdapter'))).eval()
    probe(img, ids)
    seen = probe.visual.blocks[3].adapter.seen[0]
    assert (seen.patch_start, seen.num_inserted) == (3, 2)


@MODELS.register_module(force=True)
class _TwoWay(_TokenInjector):
    """Also sends one token from the visual CLS to the text tower."""

    def __init__(self):
        super().__init__()
        self.back = nn.Linear(16, 16)

    def text_prefix(self, x, ctx):
        return self.back(ctx.visual_tokens[:, :1])


def test_one_module_serving_two_points():
    pair = _pair(
        dict(
            point='tokens',
            tower='visual',
            layers=[0],
            module=dict(type='_TwoWay')),
        dict(
            point='tokens',
            tower='text',
            layers=[0],
            name='token_injector',
            method='text_prefix')).eval()
    assert len(list(pair.token_injector.parameters())) == 4
    img, ids = _inputs()
    lengths = []
    pair.text.blocks[0].register_forward_pre_hook(
        lambda m, args: lengths.append(args[0].shape[1]))
    out = pair(img, ids)
    assert lengths == [7]  # 1 visual token + 6 text tokens
    assert out.word.shape == (2, 6, 16)
    # the prefix changes the text features (it is attended by later tokens)
    plain = AdaptedEncoderPair(VIS, TXT).eval()
    plain.load_state_dict(pair.state_dict(), strict=False)
    assert not torch.allclose(plain(img, ids).state, out.state)


def test_resnet_lockstep_schedule():
    vis = dict(
        type='CLIPModifiedResNet',
        layers=(1, 1, 1, 1),
        width=8,
        output_dim=16,
        heads=2)
    pair = AdaptedEncoderPair(vis, TXT)
    assert pair.sync == [0, 1, 3]  # 3 stages over 4 text blocks
    order = []
    for i, blk in enumerate(pair.text.blocks):
        blk.register_forward_hook(lambda m, a, o, i=i: order.append(f't{i}'))
    for k, stage in enumerate(pair.visual.blocks):
        stage.register_forward_hook(lambda m, a, o, k=k: order.append(f'v{k}'))
    pair(torch.randn(1, 3, 64, 64), _inputs(1)[1])
    assert order == ['t0', 'v0', 't1', 'v1', 't2', 't3', 'v2']


def test_freezing_rule_and_one_optimizer_step():
    pair = _pair(
        dict(
            point='bridge',
            layers=(2, 3),
            module=dict(type='_RecordingBridge')),
        dict(
            point='ffn_parallel',
            tower='visual',
            layers=[0],
            module=dict(type='_RecordingAdapter')),
        trainable=('positional_embedding', ))
    trainable = {n for n, p in pair.named_parameters() if p.requires_grad}
    assert trainable == {
        'visual.positional_embedding', 'text.positional_embedding', 'bridge.w',
        'visual.transformer.resblocks.0.adapter.fc.weight',
        'visual.transformer.resblocks.0.adapter.fc.bias'
    }
    before = {n: p.detach().clone() for n, p in pair.named_parameters()}
    opt = torch.optim.Adam([p for p in pair.parameters() if p.requires_grad],
                           lr=1e-2)
    img, ids = _inputs()
    out = pair.train()(img, ids)
    (out.visual[-1].square().mean() + out.state.square().mean()).backward()
    opt.step()
    for n, p in pair.named_parameters():
        changed = not torch.equal(before[n], p.detach())
        assert changed == (n in trainable), n


def test_frozen_bn_trains_by_default_norm_eval_keeps_it_in_eval():
    """Default = official (``model.train()`` on everything); norm_eval=True
    keeps the frozen BatchNorms in eval mode and their statistics fixed."""
    vis = dict(
        type='CLIPModifiedResNet',
        layers=(1, 1, 1, 1),
        width=8,
        output_dim=16,
        heads=2)
    img, ids = torch.randn(2, 3, 64, 64), torch.tensor([[49406, 49407]] * 2)
    pair = AdaptedEncoderPair(vis, TXT).train()
    assert pair.visual.bn1.training
    assert not pair.visual.bn1.weight.requires_grad
    before = pair.visual.bn1.running_mean.clone()
    pair(img, ids)
    assert not torch.equal(before, pair.visual.bn1.running_mean)  # drifts
    pair = AdaptedEncoderPair(vis, TXT, norm_eval=True).train()
    assert not pair.visual.bn1.training
    before = pair.visual.bn1.running_mean.clone()
    pair(img, ids)
    assert torch.equal(before, pair.visual.bn1.running_mean)


def test_padding_mask_modes():
    ids = torch.tensor([[49406, 0, 320, 49407, 0, 0]])  # "!" is BPE id 0
    assert text_padding_mask(ids).tolist() == [[  # official default
        False, True, False, False, True, True
    ]]
    assert text_padding_mask(ids, 'after_eot').tolist() == [[
        False, False, False, False, True, True
    ]]
    with pytest.raises(ValueError, match='pad_mask_mode'):
        text_padding_mask(ids, 'bogus')


def test_bad_arguments():
    with pytest.raises(ValueError, match='order'):
        AdaptedEncoderPair(VIS, TXT, order='interleaved')
    with pytest.raises(ValueError, match='out_indices'):
        AdaptedEncoderPair(VIS, TXT, out_indices=(7, ))
    with pytest.raises(ValueError, match='unknown point'):
        _pair(dict(point='inside', module=dict(type='_RecordingAdapter')))
    with pytest.raises(ValueError, match=r'takes the keys .*point required'):
        _pair(dict(layers=[0], module=dict(type='_RecordingAdapter')))
    with pytest.raises(ValueError, match='has 2 stages but layers lists 4'):
        _pair(dict(point='bridge', module=dict(type='_RecordingBridge')))
    with pytest.raises(ValueError, match='layers .9. out of range'):
        _pair(dict(point='qkv', layers=[9], module=dict(type='_QKVDelta')))
    with pytest.raises(ValueError, match="attribute 'visual'"):
        _pair(
            dict(
                point='tokens',
                name='visual',
                module=dict(type='_TokenInjector')))
    with pytest.raises(ValueError, match="block attribute 'ln_1' is taken"):
        _pair(
            dict(
                point='ffn_parallel',
                name='ln_1',
                module=dict(type='_RecordingAdapter')))
    with pytest.raises(ValueError, match='no module and nothing named'):
        _pair(dict(point='tokens', name='nothing'))
    with pytest.raises(TypeError, match='no longer takes .*adapters='):
        AdaptedEncoderPair(VIS, TXT, bridge=dict(type='_RecordingBridge'))
    assert set(HOOK_POINTS) == {
        'attn_shortcut', 'qkv', 'attn_out', 'attn_parallel', 'ffn_shortcut',
        'ffn_parallel'
    }


def test_labelled_specs_merge_in_derived_configs():
    from mmengine.config import Config
    base = Config(
        dict(
            model=dict(
                adapters=dict(
                    a=dict(
                        point='ffn_parallel',
                        tower='visual',
                        layers=[0],
                        module=dict(type='_RecordingAdapter')),
                    b=dict(
                        point='qkv',
                        tower='text',
                        layers=[1],
                        module=dict(type='_QKVDelta'))))))
    base.merge_from_dict({'model.adapters.a.layers': [2, 3]})
    pair = AdaptedEncoderPair(VIS, TXT, adapters=base.model.adapters)
    assert [hasattr(b, 'adapter')
            for b in pair.visual.blocks] == [False, False, True, True]
    assert hasattr(pair.text.blocks[1], 'qkv_adapter')


@pytest.mark.parametrize('point', ['qkv', 'ffn_parallel', 'attn_shortcut'])
def test_gradient_checkpointing_gives_same_gradients(point):
    module = dict(
        qkv=dict(type='_QKVDelta'),
        ffn_parallel=dict(type='_RecordingAdapter'),
        attn_shortcut=dict(type='_AffineShortcut'))[point]
    cfg = dict(
        visual=VIS,
        text=TXT,
        trainable=('positional_embedding', ),
        adapters=[
            dict(
                point='bridge',
                layers=(2, 3),
                module=dict(type='_RecordingBridge')),
            dict(point=point, tower='visual', layers=[1], module=module)
        ])
    torch.manual_seed(0)
    plain = AdaptedEncoderPair(**cfg).train()
    cp = AdaptedEncoderPair(**cfg, with_cp=True).train()
    cp.load_state_dict(plain.state_dict())
    assert all(b.with_cp for b in cp.visual.blocks)
    img, ids = _inputs()
    grads = []
    for model in (plain, cp):
        out = model(img, ids)
        (out.visual[-1].square().mean() + out.state.square().mean()).backward()
        grads.append({
            n: p.grad.clone()
            for n, p in model.named_parameters() if p.grad is not None
        })
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) >= 4
    assert any('.1.' in k for k in grads[0])  # the hook module got gradients
    for k in grads[0]:
        assert torch.allclose(grads[0][k], grads[1][k], atol=1e-6), k


def test_contexts_are_not_stored_on_modules():
    # the same pair on two batches of different grids and lengths
    pair = _pair(
        dict(
            point='ffn_parallel',
            tower='visual',
            layers=[1],
            module=dict(type='_RecordingAdapter'))).eval()
    img, ids = _inputs()
    a = pair(img, ids)
    pair(torch.randn(1, 3, 48, 32), ids[:1, :4])
    again = pair(img, ids)
    torch.testing.assert_close(a.visual[-1], again.visual[-1], rtol=0, atol=0)
    grids = [c.grid for c in pair.visual.blocks[1].adapter.seen]
    assert grids == [(2, 2), (3, 2), (2, 2)]
    assert F.mse_loss(a.state, again.state) == 0
