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
    cfg.merge_from_dict({
        'test_dataloader.dataset.word_len': 22,
        'test_dataloader.dataset.img_size': 48
    })
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
    assert torch.equal(single.pred_sem_seg.data, (prob > 0.35).to(torch.uint8))

    texts = ['the red circle', 'the background', 'the object on the left']
    many = inference_model(model, img, texts, batch_size=2)
    assert [m.metainfo['text'] for m in many] == texts
    torch.testing.assert_close(
        many[0].seg_logits.data, prob, atol=1e-5, rtol=0)
    # a path gives the same as the RGB array (PNG is lossless)
    path = str(tmp_path / 'img.png')
    cv2.imwrite(path, cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    from_path = inference_model(model, path, texts[:1])
    torch.testing.assert_close(
        from_path[0].seg_logits.data, prob, atol=1e-5, rtol=0)
    bgr = inference_model(
        model, img[..., ::-1].copy(), 'the red circle', channel_order='bgr')
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


# --- strict checkpoint loading -----------------------------------------------
@pytest.fixture(scope='module')
def width_configs(tmp_path_factory):
    """Two tiny configs of different width (32, 64) and a width-32
    checkpoint."""
    from mmengine.config import Config

    from mmris.apis import init_model
    from test_reliability._helpers import tiny_model_cfg
    root = tmp_path_factory.mktemp('widths')
    cfgs = {}
    for width in (32, 64):
        cfg = Config.fromfile(CONFIG)
        cfg.model = tiny_model_cfg(width)
        cfgs[width] = cfg
    torch.manual_seed(0)
    small = init_model(cfgs[32])
    ckpt = str(root / 'tiny_w32.pth')
    torch.save({'state_dict': small.state_dict(), 'meta': {}}, ckpt)
    return cfgs, ckpt, small.state_dict()


def test_init_model_refuses_checkpoint_of_another_width(width_configs):
    from mmris.apis import init_model
    from mmris.checkpoint import CheckpointMismatchError
    cfgs, ckpt, state = width_configs
    with pytest.raises(CheckpointMismatchError) as info:
        init_model(cfgs[64], ckpt)
    msg = str(info.value)
    assert f'Checkpoint "{ckpt}"' in msg
    assert 'shape-mismatched' in msg
    assert 'checkpoint (32,) vs model (64,)' in msg
    assert info.value.report.mismatched and not info.value.report.missing
    # the matching config loads every tensor
    model = init_model(cfgs[32], ckpt)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    # explicit opt-outs: strict=False, or strict_load=False in the config
    for kwargs in (dict(strict=False),
                   dict(cfg_options=dict(strict_load=False))):
        lax = init_model(cfgs[64], ckpt, **kwargs)
        key = 'backbone.visual.conv1.weight'
        assert lax.state_dict()[key].shape != state[key].shape


# --- input rules ----------------------------------------------------------
def test_load_image_dtype_rules(tmp_path):
    from mmris.apis import load_image
    img = _image(20, 30)
    # uint8: as is; other integer arrays in [0, 255]: the same picture
    assert np.array_equal(load_image(img)['img'], img)
    assert np.array_equal(load_image(img.astype(np.int64))['img'], img)
    # float: 0..255, rounded; a [0, 1] image is NOT rescaled, so one value
    # slightly above 1 changes nothing else (no data-dependent switch)
    as_float = img.astype(np.float32)
    assert np.array_equal(load_image(as_float)['img'], img)
    unit = img.astype(np.float32) / 255.
    with pytest.warns(UserWarning, match='0..255'):
        dark = load_image(unit)['img']
    assert dark.max() <= 1
    bumped = unit.copy()
    bumped[0, 0, 0] = 1.001
    out = load_image(bumped)['img']
    assert np.array_equal(out[1:], dark[1:]) and out[0, 0, 0] == 1
    # uint16: the array and the same picture as a 16-bit PNG file agree
    # (OpenCV's IMREAD_COLOR keeps the high byte: v >> 8)
    wide = img.astype(np.uint16) * 256 + 200  # high byte = img
    path = str(tmp_path / 'img16.png')
    cv2.imwrite(path, cv2.cvtColor(wide, cv2.COLOR_RGB2BGR))
    from_file = load_image(path)['img']
    from_array = load_image(wide)['img']
    assert np.array_equal(from_file, from_array)
    assert np.array_equal(from_array, img)


@pytest.mark.parametrize('bad,error,match', [
    (np.nan, ValueError, 'image.*not finite'),
    (np.inf, ValueError, 'image.*not finite'),
    (-0.5, ValueError, r'image.*\[0, 255\]'),
    (300.0, ValueError, r'image.*\[0, 255\]'),
])
def test_load_image_rejects_bad_float_values(bad, error, match):
    from mmris.apis import load_image
    img = _image(20, 30).astype(np.float64)
    img[3, 4, 1] = bad
    with pytest.raises(error, match=match):
        load_image(img)


def test_load_image_rejects_bad_integer_arrays():
    from mmris.apis import load_image
    img = _image(20, 30).astype(np.int32)
    img[0, 0, 0] = 256
    with pytest.raises(ValueError, match=r'image.*int32.*\[0, 255\]'):
        load_image(img)
    with pytest.raises(TypeError, match='image.*bool'):
        load_image(np.zeros((4, 4, 3), bool))


@pytest.mark.parametrize('threshold', [float('nan'), float('inf'), 2, -0.1])
def test_inference_model_rejects_bad_threshold(model, threshold):
    from mmris.apis import inference_model
    with pytest.raises(ValueError, match=r'threshold.*\[0, 1\]'):
        inference_model(model, _image(), 'a', threshold=threshold)


@pytest.mark.parametrize('texts,error,match', [
    (None, TypeError, 'texts must be a str or a non-empty list'),
    ('', ValueError, 'texts is an empty sentence'),
    (['the cat', '  '], ValueError, r'texts\[1\] is an empty sentence'),
    (['the cat', None], TypeError, r'texts\[1\] must be a str'),
    ([], ValueError, 'texts is empty'),
])
def test_inference_model_rejects_bad_texts(model, texts, error, match):
    from mmris.apis import inference_model
    with pytest.raises(error, match=match):
        inference_model(model, _image(), texts)


def test_demo_refuses_checkpoint_of_another_width(width_configs, tmp_path,
                                                  monkeypatch):
    from mmris.checkpoint import CheckpointMismatchError
    from test_reliability._helpers import run_tool_inprocess
    cfgs, ckpt, _ = width_configs
    config = str(tmp_path / 'tiny_w64.py')
    cfgs[64].dump(config)
    image = str(tmp_path / 'img.png')
    cv2.imwrite(image, _image())
    out = tmp_path / 'overlay.png'
    with pytest.raises(CheckpointMismatchError, match='tiny_w32.pth'):
        run_tool_inprocess(
            osp.join(ROOT, 'tools', 'demo.py'), [
                image, 'the red circle', '--config', config, '--checkpoint',
                ckpt, '--out', out
            ], monkeypatch)
    assert not out.exists()
