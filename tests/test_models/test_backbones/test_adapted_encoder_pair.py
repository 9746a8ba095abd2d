# Copyright (c) mmris contributors. All rights reserved.
"""The hook mechanism: each hook kind, schedules and the freezing rule."""
import pytest
import torch
import torch.nn as nn
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import mmris  # noqa: F401
from mmris.models.backbones import (AdaptedEncoderPair, TextContext,
                                    text_padding_mask)

init_default_scope('mmseg')

VIS = dict(type='CLIPVisionTransformer', img_size=32, patch_size=16,
           width=16, layers=4, heads=2, output_dim=8)
TXT = dict(type='CLIPTextTransformer', width=16, heads=2, layers=4,
           embed_dim=8)


@MODELS.register_module(force=True)
class _RecordingAdapter(nn.Module):
    """Linear FFN adapter that records the context it receives."""

    def __init__(self, dim: int = 16):
        super().__init__()
        self.fc = nn.Linear(dim, dim)
        self.seen = []

    def forward(self, x, context=None):
        self.seen.append(context)
        return self.fc(x)


@MODELS.register_module(force=True)
class _AffineShortcut(nn.Module):

    def __init__(self, dim: int = 16):
        super().__init__()
        self.scale = nn.Parameter(torch.full((dim, ), 2.0))

    def forward(self, x):
        return x * self.scale


@MODELS.register_module(force=True)
class _TokenInjector(nn.Module):

    def __init__(self, d_txt: int = 16, d_vis: int = 16):
        super().__init__()
        self.proj = nn.Linear(d_txt, d_vis)

    def forward(self, t):
        return self.proj(t)


@MODELS.register_module(force=True)
class _RecordingBridge(nn.Module):
    """Adds constants to both towers and records what it saw."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.calls = []

    def forward(self, stage, v_map, t, memory):
        self.calls.append((stage, tuple(v_map.shape), tuple(t.shape),
                           dict(memory)))
        memory['last'] = stage
        return torch.ones_like(v_map) * self.w, torch.zeros_like(t)


def _inputs(b=2):
    img = torch.randn(b, 3, 32, 32)
    ids = torch.zeros(b, 6, dtype=torch.long)
    ids[:, 0], ids[:, 1], ids[:, 2] = 49406, 320, 49407
    return img, ids


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
    cfg = dict(visual=VIS, text=TXT, bridge=dict(type='_RecordingBridge'),
               bridge_after=(1, 3), out_indices=(1, ))
    pair = AdaptedEncoderPair(**cfg).eval()
    img, ids = _inputs()
    out = pair(img, ids)
    stages = [c[0] for c in pair.bridge.calls]
    assert stages == [0, 1]
    assert pair.bridge.calls[0][1] == (2, 16, 2, 2)
    assert pair.bridge.calls[1][3] == {'last': 0}  # memory carried over
    # The tap after block 1 sees the +1 update on patch tokens only.
    plain = AdaptedEncoderPair(VIS, TXT, out_indices=(1, )).eval()
    plain.load_state_dict(pair.state_dict(), strict=False)
    ref = plain(img, ids)
    assert torch.allclose(out.visual[0], ref.visual[0] + 1, atol=1e-5)


def test_ffn_adapter_hook_and_context():
    adapter = dict(module=dict(type='_RecordingAdapter'), layers=[1, 2],
                   scale=0.2, input='norm')
    pair = AdaptedEncoderPair(VIS, TXT, order='text_first',
                              visual_adapter=adapter).eval()
    blocks = pair.visual.blocks
    assert blocks[0].adapter is None and blocks[1].adapter is not None
    img, ids = _inputs()
    pair(img, ids)
    ctx = blocks[1].adapter.seen[0]
    assert isinstance(ctx, TextContext)
    assert ctx.word.shape == (2, 6, 16)
    # The adapter adds exactly scale * adapter(norm2(x)) to the block output.
    x = torch.randn(2, 5, 16)
    blk = blocks[1]
    with torch.no_grad():
        with_adapter = blk(x, context=None)
        expected_delta = 0.2 * blk.adapter(blk.ln_2(
            x + blk.attn_branch(blk.ln_1(x), None)), None)
        blk.adapter, saved = None, blk.adapter
        without = blk(x)
        blk.adapter = saved
    assert torch.allclose(with_adapter - without, expected_delta, atol=1e-5)


def test_shortcut_hook_replaces_identity():
    pair = AdaptedEncoderPair(
        VIS, TXT, text_shortcut=dict(module=dict(type='_AffineShortcut')))
    blk = pair.text.blocks[0]
    x = torch.randn(1, 3, 16)
    with torch.no_grad():
        y = blk(x)
        blk.flow, blk.flow2 = None, None
        h = x + blk.attn_branch(blk.ln_1(x), None)
        expected = 2 * (2 * x + blk.attn_branch(blk.ln_1(x), None)) + \
            blk.mlp(blk.ln_2(2 * x + blk.attn_branch(blk.ln_1(x), None)))
    assert not torch.allclose(y, h)
    assert torch.allclose(y, expected, atol=1e-5)


def test_token_injector_inserts_after_prefix():
    pair = AdaptedEncoderPair(
        VIS, TXT, token_injector=dict(type='_TokenInjector'),
        side_indices=(0, 3)).eval()
    img, ids = _inputs()
    seen = {}

    def record(module, args):
        seen['n'] = args[0].shape[1]

    pair.visual.blocks[0].register_forward_pre_hook(record)
    out = pair(img, ids)
    # CLS + 6 injected text tokens + 4 patches
    assert seen['n'] == 1 + 6 + 4
    assert [tuple(s.shape) for s in out.side] == [(2, 16, 2, 2)] * 2
    assert out.visual[-1].shape == (2, 8, 2, 2)


def test_resnet_lockstep_schedule():
    vis = dict(type='CLIPModifiedResNet', layers=(1, 1, 1, 1), width=8,
               output_dim=16, heads=2)
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
    pair = AdaptedEncoderPair(
        VIS, TXT, bridge=dict(type='_RecordingBridge'), bridge_after=(3, ),
        visual_adapter=dict(module=dict(type='_RecordingAdapter'),
                            layers=[0]),
        trainable=('positional_embedding', ))
    trainable = {n for n, p in pair.named_parameters() if p.requires_grad}
    assert trainable == {
        'visual.positional_embedding', 'text.positional_embedding',
        'bridge.w', 'visual.transformer.resblocks.0.adapter.fc.weight',
        'visual.transformer.resblocks.0.adapter.fc.bias'
    }
    before = {n: p.detach().clone() for n, p in pair.named_parameters()}
    opt = torch.optim.Adam(
        [p for p in pair.parameters() if p.requires_grad], lr=1e-2)
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
    vis = dict(type='CLIPModifiedResNet', layers=(1, 1, 1, 1), width=8,
               output_dim=16, heads=2)
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
    with pytest.raises(ValueError, match='bridge_after'):
        AdaptedEncoderPair(VIS, TXT, bridge=dict(type='_RecordingBridge'))
    with pytest.raises(ValueError, match='module, layers'):
        AdaptedEncoderPair(VIS, TXT, visual_adapter=dict(layers=[0]))


def test_gradient_checkpointing_gives_same_gradients():
    cfg = dict(visual=VIS, text=TXT, bridge=dict(type='_RecordingBridge'),
               bridge_after=(3, ), trainable=('positional_embedding', ),
               visual_adapter=dict(module=dict(type='_RecordingAdapter'),
                                   layers=[1]))
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
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()
                      if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) >= 4
    for k in grads[0]:
        assert torch.allclose(grads[0][k], grads[1][k], atol=1e-6), k


@MODELS.register_module(force=True)
class _TwoWayInjector(_TokenInjector):
    """Also sends one token from the visual CLS to the text tower."""

    def __init__(self):
        super().__init__()
        self.back = nn.Linear(16, 16)
        self.seen = []

    def text_prefix(self, cls):
        self.seen.append(cls.shape)
        return self.back(cls)


def test_token_injector_text_prefix_reaches_text_and_is_stripped():
    pair = AdaptedEncoderPair(
        VIS, TXT, token_injector=dict(type='_TwoWayInjector')).eval()
    img, ids = _inputs()
    lengths = []

    def record(module, args, kwargs):
        lengths.append(args[0].shape[1])

    pair.text.blocks[0].register_forward_pre_hook(record, with_kwargs=True)
    out = pair(img, ids)
    assert pair.token_injector.seen == [(2, 1, 16)]
    assert lengths == [7]  # 1 visual token + 6 text tokens
    assert out.word.shape == (2, 6, 16)
    # the prefix changes the text features (it is attended by later tokens)
    plain = AdaptedEncoderPair(VIS, TXT).eval()
    plain.load_state_dict(pair.state_dict(), strict=False)
    assert not torch.allclose(plain(img, ids).state, out.state)
