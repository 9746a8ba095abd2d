# Copyright (c) mmris contributors. All rights reserved.
"""ETRIS: exact parameter counts, official key sets, converter, head shapes."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import mmris  # noqa: F401
from mmris.checkpoint import convert_official_state_dict
from mmris.utils import count_parameters
from ..utils import make_ids, make_samples, read_official_keys, tiny_etris_cfg

init_default_scope('mmseg')
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(__file__))))

# Official builder counts: (config, total trainable, adapters, official key
# file)
CASES = [
    ('etris_vit-b16_refcoco.py', 23_829_313, 598_592, 'etris_bridge_v16'),
    ('etris_rn50_refcoco.py', 28_819_009, 1_942_080, 'etris_bridge_r50'),
    ('etris_rn101_refcoco.py', 26_328_129, 1_942_080, 'etris_bridge_r101'),
]


@pytest.mark.parametrize('config,total,adapters,official', CASES)
def test_counts_keys_and_converter(config, total, adapters, official):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'etris', config))
    model = MODELS.build(cfg.model)
    stats = count_parameters(model)
    assert stats['trainable'] == total
    assert stats['adapters'] == adapters

    # A synthetic official checkpoint: exact names (module.-prefixed as saved
    # by DDP) and shapes; converting it must give every mmris key, strictly.
    keys = read_official_keys(official)
    g = torch.Generator().manual_seed(0)
    state = {
        'module.' + k:
        torch.randn(shape, generator=g) if shape else torch.tensor(1.0)
        for k, (shape, _) in keys.items()
    }
    converted = convert_official_state_dict(state, 'etris')
    model.load_state_dict(converted, strict=True)
    own = model.state_dict()
    for k in ('backbone.bridge.linear1.0.weight',
              'decode_head.proj.txt.weight', 'neck.fusion3.multihead_attn.'
              'in_proj_weight', 'backbone.text.positional_embedding'):
        assert torch.equal(own[k], converted[k])
    # Trainable flags agree with the official builder, key for key.
    params = dict(model.named_parameters())
    renamed = convert_official_state_dict({k: torch.zeros(0)
                                           for k in keys}, 'etris')
    for (old, (_, trainable)), new in zip(keys.items(), renamed):
        if new in params:
            assert params[new].requires_grad == trainable, old


def test_converter_rejects_unknown_keys():
    with pytest.raises(KeyError, match='no conversion rule'):
        convert_official_state_dict({'module.foo.bar': torch.zeros(1)},
                                    'etris')


@pytest.mark.parametrize('size,out', [(416, 104), (448, 112)])
def test_head_output_shapes(size, out):
    model = MODELS.build(tiny_etris_cfg()).eval()
    model.backbone.visual.positional_embedding.data = torch.randn(
        (size // 16)**2 + 1, 32)
    ids = make_ids(2, 8)
    with torch.no_grad():
        logits = model._forward(
            torch.randn(2, 3, size, size), make_samples(ids, size))
    assert logits.shape == (2, 1, out, out)


def test_loss_and_predict_at_original_resolution():
    model = MODELS.build(tiny_etris_cfg())
    ids = make_ids(2, 8)
    samples = make_samples(ids, 64)
    losses = model.loss(torch.randn(2, 3, 64, 64), samples)
    assert set(losses) == {'loss_bce'} and losses['loss_bce'] > 0
    model.eval()
    # A 40x80 original letterboxed into 64x64: scale 0.8, offset y = 16.
    for ds in samples:
        ds.set_metainfo(
            dict(
                ori_shape=(40, 80),
                inv_affine=[[1.25, 0, 0], [0, 1.25, -20.0]]))
    with torch.no_grad():
        out = model.predict(torch.randn(2, 3, 64, 64), samples)
    assert out[0].pred_sem_seg.data.shape == (1, 40, 80)
    assert out[0].seg_logits.data.shape == (1, 40, 80)
    probs = out[0].seg_logits.data
    assert torch.equal(out[0].pred_sem_seg.data.bool(), probs > 0.35)


@pytest.mark.parametrize(
    'cfg,params',
    [
        (dict(type='BridgerViT', d_model=64), 598_592),
        (dict(type='BridgerViT', d_model=128), 1_387_648),  # paper's 1.39 M
        (dict(type='BridgerRN', d_model=64), 1_942_080),
        (dict(type='BridgerRN', d_model=56), 1_678_104),  # paper's RN50 1.68 M
    ])
def test_bridger_sizes_for_ladder_dims(cfg, params):
    bridger = MODELS.build(cfg)
    assert sum(p.numel() for p in bridger.parameters()) == params
