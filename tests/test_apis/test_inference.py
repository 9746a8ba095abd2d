# Copyright (c) mmris contributors. All rights reserved.
"""init_model / inference_model on the tiny quick-start config (CPU)."""
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'quickstart', 'etris-tiny_synthetic.py')


@pytest.fixture(scope='module')
def tiny_ckpt(tmp_path_factory):
    from mmris.apis import init_model
    torch.manual_seed(0)
    model = init_model(CONFIG)
    path = str(tmp_path_factory.mktemp('ckpt') / 'tiny.pth')
    torch.save({'state_dict': model.state_dict()}, path)
    return path, model.state_dict()


@pytest.fixture(scope='module')
def model(tiny_ckpt):
    from mmris.apis import init_model
    return init_model(CONFIG, tiny_ckpt[0])


def _image(h=90, w=130):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    cv2.circle(img, (40, 45), 20, (220, 40, 40), -1)
    return img


def test_init_model_loads_checkpoint(model, tiny_ckpt):
    state = tiny_ckpt[1]
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert not model.training
    assert model.cfg.img_size == 96
    assert next(model.parameters()).device.type == 'cpu'


def test_inference_pipeline_follows_config(model):
    from mmris.apis import build_inference_pipeline, init_model
    pipe = build_inference_pipeline(model.cfg)
    out = pipe(dict(img=_image(), text='the red circle'))
    assert out["inputs"].shape == (3, 96, 96)
    assert out['data_samples'].text_ids.shape == (17, )
    assert out['data_samples'].ori_shape == (90, 130)
    cfg = model.cfg.copy()
    cfg.merge_from_dict({'test_dataloader.dataset.word_len': 22,
                         'test_dataloader.dataset.img_size': 48})
    out = build_inference_pipeline(cfg)(dict(img=_image(), text='a'))
    assert out['inputs'].shape == (3, 48, 48)
    assert out['data_samples'].text_ids.shape == (22, )
    with pytest.raises(TypeError):
        init_model(123)


def test_inference_model_single_and_batched(model, tmp_path):
    from mmris.apis import inference_model
    img = _image()
    single = inference_model(model, img, 'the red circle')
    assert single.pred_sem_seg.data.shape == (1, 90, 130)
    assert single.pred_sem_seg.data.dtype == torch.uint8
    assert single.seg_logits.data.shape == (1, 90, 130)
    assert single.metainfo['text'] == 'the red circle'
    prob = single.seg_logits.data
    assert torch.equal(single.pred_sem_seg.data,
                       (prob > 0.35).to(torch.uint8))

    texts = ['the red circle', 'the background', 'the object on the left']
    many = inference_model(model, img, texts, batch_size=2)
    assert [m.metainfo['text'] for m in many] == texts
    torch.testing.assert_close(many[0].seg_logits.data, prob, atol=1e-5,
                               rtol=0)
    # a path gives the same as the RGB array (PNG is lossless)
    path = str(tmp_path / 'img.png')
    cv2.imwrite(path, cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    from_path = inference_model(model, path, texts[:1])
    torch.testing.assert_close(from_path[0].seg_logits.data, prob,
                               atol=1e-5, rtol=0)
    bgr = inference_model(model, img[..., ::-1].copy(), 'the red circle',
                          channel_order='bgr')
    torch.testing.assert_close(bgr.seg_logits.data, prob, atol=1e-5, rtol=0)
    # threshold override
    thr = float(prob.median())
    low = inference_model(model, img, 'the red circle', threshold=thr)
    assert torch.equal(low.pred_sem_seg.data, (prob > thr).to(torch.uint8))


def test_inference_model_bad_inputs(model):
    from mmris.apis import inference_model
    with pytest.raises(ValueError):
        inference_model(model, _image(), [])
    with pytest.raises(TypeError):
        inference_model(model, _image(), [1, 2])
    with pytest.raises(TypeError):
        inference_model(model, [1, 2, 3], 'a')
    with pytest.raises(ValueError):
        inference_model(model, _image(), 'a', batch_size=0)
    with pytest.raises(FileNotFoundError):
        inference_model(model, '/nonexistent/image.jpg', 'a')
