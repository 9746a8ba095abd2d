# Copyright (c) mmris contributors. All rights reserved.
"""ONNX export: settings read from the config, and (slow: each export
takes 15-50 s on 2 cores) onnxruntime against PyTorch for ETRIS, BarLeRIa,
DETRIS and a gRefCOCO model."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmris.apis import init_model
from mmris.datasets.transforms import CLIP_BORDER
from mmris.deployment import (METADATA_KEY, RISOnnxModel, example_inputs,
                              export_onnx, max_relative_error,
                              runtime_settings, torch_outputs)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
QUICK = osp.join(ROOT, 'configs', 'quickstart')


def test_runtime_settings_follow_the_test_pipeline():
    cfg = Config.fromfile(osp.join(QUICK, 'etris-tiny_synthetic.py'))
    assert runtime_settings(cfg) == dict(
        img_size=[96, 96],
        border=list(CLIP_BORDER),
        word_len=17,
        truncate=True)
    paper = Config.fromfile(
        osp.join(ROOT, 'configs', 'etris', 'etris_vit-b16_refcocog_umd.py'))
    settings = runtime_settings(paper)
    assert settings['img_size'] == [416, 416]
    assert settings['word_len'] == paper.test_dataloader.dataset.word_len


def test_transform_the_runtime_lacks_is_refused():
    cfg = Config.fromfile(osp.join(QUICK, 'etris-tiny_synthetic.py'))
    cfg.test_dataloader.dataset.pipeline.insert(
        2, dict(type='RandomFlip', prob=1.0))
    with pytest.raises(ValueError, match='RandomFlip'):
        runtime_settings(cfg)


def test_wrapper_needs_a_ris_segmentor():
    with pytest.raises(TypeError, match='data_preprocessor'):
        RISOnnxModel(torch.nn.Linear(2, 2))


def test_max_relative_error():
    assert max_relative_error(np.array([2., -4.]), np.array([2., -3.])) == 0.25
    with pytest.raises(ValueError, match='shapes differ'):
        max_relative_error(np.zeros(2), np.zeros(3))


@pytest.mark.slow
@pytest.mark.parametrize('name', [
    'etris-tiny_synthetic', 'barleria-tiny_synthetic', 'detris-tiny_synthetic',
    'etris-tiny_grefcoco'
])
def test_onnxruntime_equals_pytorch(name, tmp_path):
    import onnxruntime as ort
    torch.manual_seed(0)
    model = init_model(osp.join(QUICK, f'{name}.py'))
    out = str(tmp_path / 'export' / 'model.onnx')
    meta = export_onnx(model, out, config_name=f'{name}.py')
    assert osp.isfile(tmp_path / 'export' / 'bpe_simple_vocab_16e6.txt.gz')
    sess = ort.InferenceSession(out, providers=['CPUExecutionProvider'])
    assert json.loads(
        sess.get_modelmeta().custom_metadata_map[METADATA_KEY]) == meta
    gref = name.endswith('grefcoco')
    names = ['mask_logits', 'mask_prob'
             ] + (['no_target_score'] if gref else [])
    assert [o.name for o in sess.get_outputs()] == names == meta['outputs']
    s_h, s_w = meta['img_size']
    inputs = {i.name: i for i in sess.get_inputs()}
    assert inputs['image'].shape == ['batch', 3, s_h, s_w]
    assert inputs['text_ids'].shape == ['batch', meta['word_len']]
    texts = [
        'the red circle', 'a big green square on the left',
        'the small blue triangle!'
    ]
    for batch, seed in ((1, 1), (3, 2)):  # exported with a batch of 2
        feeds = example_inputs(meta, texts[:batch], seed=seed)
        ref = torch_outputs(model, feeds)
        got = dict(zip(names, sess.run(None, feeds)))
        for key in names:
            assert got[key].shape == ref[key].shape
            assert got[key].shape[0] == batch
            err = max_relative_error(ref[key], got[key])
            assert err <= 1e-4, (key, batch, err)
        assert (got['mask_prob'] >= 0).all() and (got['mask_prob']
                                                  <= 1.0001).all()
