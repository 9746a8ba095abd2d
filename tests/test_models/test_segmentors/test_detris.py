# Copyright (c) mmris contributors. All rights reserved.
"""DETRIS: exact parameter counts, official key sets, converter, head shape."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import mmris  # noqa: F401
from mmris.checkpoint import convert_official_state_dict
from mmris.utils import count_parameters
from ..utils import make_ids, make_samples, read_official_keys

init_default_scope('mmseg')
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(__file__))))
CONFIGS = osp.join(ROOT, 'configs', 'detris')

# Official builder counts: (config, total trainable, adapters, backbone update
# %, official key file or None)
CASES = [
    ('detris-b_refcoco.py', 25_518_129, 2_715_696, 1.81, 'detris_DETRIS_base'),
    ('detris-l_refcoco.py', 26_306_097, 3_110_448, 0.85,
     'detris_DETRIS_large'),
    ('detris-l_refcoco_mixed.py', 56_527_009, 33_331_360, None, None),
]


@pytest.mark.parametrize('config,total,adapters,update,official', CASES)
def test_counts_keys_and_converter(config, total, adapters, update, official):
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    # Shapes and flags only: build on the meta device (skips the random init
    # of ~370M parameters), then allocate before loading the converted state.
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    stats = count_parameters(model)
    assert stats['trainable'] == total
    assert stats['adapters'] == adapters
    if update is not None:
        assert round(stats['backbone_update'], 2) == update
    if official is None:
        return

    # A synthetic official checkpoint: exact names (module.-prefixed as saved
    # by DDP) and shapes (constant fills keep the 300M-parameter L case fast).
    keys = read_official_keys(official)
    state = {
        'module.' + k: torch.full(shape, float(i % 1000))
        for i, (k, (shape, _)) in enumerate(keys.items())
    }
    converted = convert_official_state_dict(state, 'detris')
    model.to_empty(device='cpu')
    model.load_state_dict(converted, strict=True)
    own = model.state_dict()
    blk = cfg.model.backbone.adapters.dense_aligner.layers[0]
    for k in (f'backbone.visual.blocks.{blk}.adapter.D_fc1.weight',
              'backbone.visual.pos_embed', 'backbone.visual.register_tokens',
              'backbone.text.transformer.resblocks.1.adapter.D_fc2.weight',
              'backbone.text.positional_embedding',
              'neck.fusion3.multihead_attn.in_proj_weight',
              'decode_head.proj.txt.weight'):
        assert torch.equal(own[k], converted[k]), k
    # Trainable flags agree with the official builder, key for key.
    params = dict(model.named_parameters())
    renamed = convert_official_state_dict({k: torch.zeros(0)
                                           for k in keys}, 'detris')
    checked = 0
    for (old, (_, trainable)), new in zip(keys.items(), renamed):
        if new in params:
            assert params[new].requires_grad == trainable, old
            checked += 1
    assert checked == len(params)


def tiny_detris_cfg():
    """DETRIS-B layout with tiny DINOv2 / CLIP text dims."""
    cfg = Config.fromfile(osp.join(CONFIGS, 'detris-b_refcoco.py'))
    model = copy.deepcopy(cfg.model.to_dict())
    bb = model['backbone']
    bb['visual'].update(arch=dict(embed_dims=64, num_layers=4, num_heads=2))
    bb['text'].update(width=32, heads=2, layers=4, embed_dim=32)
    bb['adapters']['dense_aligner']['module'].update(
        in_channels=64,
        hidden_channels=32,
        text_channels=32,
        embed_dims=16,
        num_heads=2)
    bb['adapters']['dense_aligner']['layers'] = [1, 3]
    bb['adapters']['text_adapter']['module'].update(
        in_channels=32, hidden_channels=32)
    bb['adapters']['text_adapter']['layers'] = [1, 3]
    bb['out_indices'] = (1, 2)
    model['neck'].update(
        in_channels=(64, 64, 64), text_channels=32, out_channels=32, nhead=2)
    model['decode_head'].update(
        d_model=32, nhead=2, dim_ffn=32, text_channels=32)
    return model


def test_tiny_forward_448_and_frozen_grads():
    model = MODELS.build(tiny_detris_cfg())
    assert model.backbone.visual.pos_embed.shape[1] == 37 * 37 + 1
    ids = make_ids(2, 17)
    samples = make_samples(ids, 448)
    model.eval()
    with torch.no_grad():
        logits = model._forward(torch.randn(2, 3, 448, 448), samples)
    assert logits.shape == (2, 1, 128, 128)

    # Only adapters, neck and head receive gradients (112 px for speed).
    model.train()
    losses = model.loss(torch.randn(2, 3, 112, 112), make_samples(ids, 112))
    losses['loss_bce'].backward()
    for name, p in model.backbone.named_parameters():
        if '.adapter.' in name:
            assert p.requires_grad, name
        else:
            assert not p.requires_grad and p.grad is None, name
    for tower in (model.backbone.visual, model.backbone.text):
        assert tower.blocks[1].adapter.D_fc1.weight.grad is not None
