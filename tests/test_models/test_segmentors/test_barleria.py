# Copyright (c) mmris contributors. All rights reserved.
"""BarLeRIa: exact parameter counts, official key set, converter
(duplicated flow tensors), configs, side-network slot of the segmentor,
batch independence (the official prior normalises over the batch axis)."""
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
CONFIGS = osp.join(ROOT, 'configs', 'barleria')
DATASETS = ('refcoco', 'refcoco+', 'refcocog_umd', 'refcocog_google')


def synthetic_official_state(keys):
    """Random tensors under the official names, planar tensors tied to their
    log-det duplicates as in the official module."""
    g = torch.Generator().manual_seed(0)
    state = {}
    for k, (shape, _) in keys.items():
        src = k.replace('.log_jacobians.', '.transforms.')
        if src != k and 'module.' + src in state:
            state['module.' + k] = state['module.' + src]
        else:
            state['module.' + k] = (
                torch.randn(shape, generator=g) if shape else torch.tensor(1.))
    return state


@pytest.fixture(scope='module')
def full_model():
    cfg = Config.fromfile(osp.join(CONFIGS, 'barleria_vit-b16_refcoco.py'))
    return MODELS.build(cfg.model)


def test_exact_trainable_counts(full_model):
    stats = count_parameters(full_model)
    rows = stats['modules']
    assert stats['trainable'] == 26_706_721
    assert stats['adapters'] == 349_152
    assert rows['backbone.visual adapters']['trainable'] == 184_416
    assert rows['backbone.text adapters']['trainable'] == 122_976
    assert rows['backbone.token_injector']['trainable'] == 41_760
    # trainable positional tables (official): 677 x 768 + 77 x 512
    assert rows['backbone.visual']['trainable'] == 677 * 768
    assert rows['backbone.text']['trainable'] == 77 * 512
    side = full_model.side_network
    assert sum(p.numel() for p in side.side_adapter_network.parameters()
               if p.requires_grad) == 3_052_608
    assert sum(p.numel() for p in side.side_linear.parameters()
               if p.requires_grad) == 74_240
    assert rows['neck']['trainable'] == 9_983_488
    assert rows['decode_head']['trainable'] == 7_899_136 + 4_788_737


def test_converter_keys_and_trainable_flags(full_model):
    keys = read_official_keys('barleria_v16')
    state = synthetic_official_state(keys)
    converted = convert_official_state_dict(state, 'barleria')
    dropped = [k for k in keys if '.log_jacobians.' in k]
    assert len(dropped) == 2 * 2 * 12 * 4 * 3
    assert len(converted) == len(keys) - len(dropped)
    result = full_model.load_state_dict(converted, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    own = full_model.state_dict()
    for k in ('backbone.visual.transformer.resblocks.5.flow2.transforms.'
              '2.scale', 'backbone.text.transformer.resblocks.0.flow.'
              'affine_transform.mu', 'backbone.token_injector.proj.2.weight',
              'side_network.side_adapter_network.vit_model.decoders.3.'
              'linear2.weight', 'side_network.side_linear.bias',
              'decode_head.proj.txt.weight', 'backbone.visual.'
              'positional_embedding'):
        assert torch.equal(own[k], converted[k]), k
    # Trainable flags agree with the official builder, key for key.
    params = dict(full_model.named_parameters())
    for old, (_, trainable) in keys.items():
        if old in dropped:
            continue
        new = next(
            iter(
                convert_official_state_dict({old: torch.zeros(0)},
                                            'barleria')))
        if new in params:
            assert params[new].requires_grad == trainable, old


def test_converter_checks_tied_flow_tensors():
    key = 'module.backbone.transformer.resblocks.0.flow.{}.1.scale'
    src = torch.randn(1, 512)
    ok = convert_official_state_dict(
        {
            key.format('transforms'): src,
            key.format('log_jacobians'): src.clone()
        }, 'barleria')
    assert list(ok) == [
        'backbone.text.transformer.resblocks.0.flow.transforms.1.scale'
    ]
    with pytest.raises(ValueError, match='differs'):
        convert_official_state_dict(
            {
                key.format('transforms'): src,
                key.format('log_jacobians'): src + 1
            }, 'barleria')
    with pytest.raises(KeyError, match='missing'):
        convert_official_state_dict({key.format('log_jacobians'): src},
                                    'barleria')


@pytest.mark.parametrize('dataset', DATASETS)
def test_dataset_configs(dataset):
    cfg = Config.fromfile(osp.join(CONFIGS, f'barleria_vit-b16_{dataset}.py'))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        ds = cfg[loader].dataset
        assert ds.word_len == 17 and ds.img_size == 416
    assert cfg.train_cfg.max_epochs == 50
    assert cfg.param_scheduler[0].milestones == [35]
    assert cfg.model.side_network.prior_norm == 'per_sample'
    assert cfg.model.backbone.side_indices == (0, 3, 6, 9)


# -- tiny model: segmentor side slot, losses, batch independence -------------
def tiny_cfg(prior_norm='per_sample'):
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', 'quickstart', 'barleria-tiny_synthetic.py'))
    model = copy.deepcopy(cfg.model)
    model.backbone.trainable = ('positional_embedding', )
    model.side_network.prior_norm = prior_norm
    return model


def test_loss_includes_reconstruction_and_predict():
    torch.manual_seed(0)
    model = MODELS.build(tiny_cfg())
    ids = make_ids(2, 8)
    losses = model.loss(torch.randn(2, 3, 64, 64), make_samples(ids, 64))
    assert set(losses) == {'loss_bce', 'loss_var'}
    sum(losses.values()).backward()
    assert model.side_network.side_linear.weight.grad is not None
    assert model.backbone.token_injector.proj[0].weight.grad is not None
    flow = model.backbone.visual.blocks[0].flow2
    assert flow.transforms[0].scale.grad is not None
    model.eval()
    with torch.no_grad():
        out = model.predict(torch.randn(2, 3, 64, 64), make_samples(ids, 64))
    assert out[0].pred_sem_seg.data.shape == (1, 64, 64)


@pytest.mark.parametrize('prior_norm,independent', [('per_sample', True),
                                                    ('batch_axis', False)])
def test_prediction_batch_independence(prior_norm, independent):
    torch.manual_seed(0)
    model = MODELS.build(tiny_cfg(prior_norm)).eval()
    # strengthen the top-down path so that the batch-axis prior is visible
    san = model.side_network.side_adapter_network
    for dec in san.vit_model.decoders:
        for lin in (dec.linear, dec.linear2):
            torch.nn.init.normal_(lin.weight, std=0.5)
    torch.nn.init.normal_(san.proj[2].weight, std=1.)
    ids = make_ids(3, 8)
    img = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        batch = model._forward(img, make_samples(ids, 64))
        alone = model._forward(img[:1], make_samples(ids[:1], 64))
    diff = (batch[0] - alone[0]).abs().max()
    if independent:
        assert diff < 1e-5
    else:
        assert diff > 1e-4
