# Copyright (c) mmris contributors. All rights reserved.
"""BarLeRIa on EVA02-CLIP-B/16: exact trainable count, the official key set
through the converter (tied flows and derived rotary tables dropped after
checking), configs for every dataset."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import mmris  # noqa: F401
from mmris.checkpoint import convert_official_state_dict
from mmris.checkpoint.convert import _eva_rope_table
from ..utils import read_official_keys
from .test_barleria import synthetic_official_state

init_default_scope('mmseg')
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(__file__))))
CONFIGS = osp.join(ROOT, 'configs', 'barleria')


@pytest.fixture(scope='module')
def eva_model():
    cfg = Config.fromfile(osp.join(CONFIGS, 'barleria_eva02-b16_refcoco.py'))
    return MODELS.build(cfg.model)


def _official_state():
    keys = read_official_keys('barleria_eva')
    state = synthetic_official_state(keys)
    for key in state:
        if '.rope.freqs_' in key:  # derived tables: the real values
            sin, cos = _eva_rope_table(676, 64)
            state[key] = sin if key.endswith('sin') else cos
    return keys, state


def test_exact_trainable_count_and_frozen_visual_table(eva_model):
    trainable = {
        n: p.numel()
        for n, p in eva_model.named_parameters() if p.requires_grad
    }
    assert sum(trainable.values()) == 26_186_785
    assert 'backbone.text.positional_embedding' in trainable
    assert not any(
        n.startswith('backbone.visual.') and 'flow' not in n
        for n in trainable)


def test_official_keys_load_key_for_key(eva_model):
    keys, state = _official_state()
    assert len(keys) == 1967
    converted = convert_official_state_dict(state, 'barleria_eva')
    derived = [k for k in keys if '.rope.freqs_' in k]
    tied = [k for k in keys if '.log_jacobians.' in k]
    assert (len(derived), len(tied)) == (26, 576)
    assert len(converted) == len(keys) - len(derived) - len(tied)
    result = eva_model.load_state_dict(converted, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    own = eva_model.state_dict()
    for k in ('backbone.visual.blocks.3.attn.q_bias',
              'backbone.visual.blocks.11.mlp.ffn_ln.weight',
              'backbone.visual.blocks.0.flow2.transforms.1.scale',
              'backbone.text.logit_scale',
              'backbone.text.transformer.resblocks.4.flow.affine_transform.mu',
              'side_network.side_linear.weight'):
        assert torch.equal(own[k], converted[k]), k
    # trainable flags agree with the official builder, key for key
    params = dict(eva_model.named_parameters())
    renamed = convert_official_state_dict(state, 'barleria_eva')
    flags = {}
    for (old, (_, flag)) in keys.items():
        flags[old] = flag
    checked = 0
    for old, new in zip([
            k for k in keys
            if '.rope.freqs_' not in k and '.log_jacobians.' not in k
    ], renamed):
        if new in params:
            assert params[new].requires_grad == flags[old], (old, new)
            checked += 1
    assert checked == len(params)


def test_a_wrong_rotary_table_is_refused():
    _, state = _official_state()
    key = 'module.backbone.visual.blocks.2.attn.rope.freqs_cos'
    state[key] = state[key] + 1e-3
    with pytest.raises(ValueError, match='freqs_cos should be the table'):
        convert_official_state_dict(state, 'barleria_eva')


@pytest.mark.parametrize(
    'dataset',
    ['refcoco', 'refcoco+', 'refcocog_umd', 'refcocog_google', 'grefcoco'])
def test_configs(dataset):
    cfg = Config.fromfile(
        osp.join(CONFIGS, f'barleria_eva02-b16_{dataset}.py'))
    assert cfg.model.backbone.visual.type == 'EVA02VisionTransformer'
    assert cfg.model.backbone.text.act == 'gelu'
    assert cfg.model.backbone.visual.final_norm is False
