# Copyright (c) mmris contributors. All rights reserved.
"""RISInferencer (mmengine BaseInferencer) on the tiny quick-start configs."""
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'quickstart', 'etris-tiny_synthetic.py')
GREF = osp.join(ROOT, 'configs', 'quickstart', 'etris-tiny_grefcoco.py')
DEMO = osp.join(ROOT, 'demo', 'demo.jpg')
TEXTS = ['the red circle', 'the big green square']


@pytest.fixture(scope='module')
def tiny_ckpt(tmp_path_factory):
    from mmris.apis import init_model
    torch.manual_seed(0)
    model = init_model(CONFIG)
    path = str(tmp_path_factory.mktemp('ckpt') / 'tiny.pth')
    torch.save({'state_dict': model.state_dict()}, path)
    return path


@pytest.fixture(scope='module')
def inferencer(tiny_ckpt):
    from mmris.apis import RISInferencer
    return RISInferencer(CONFIG, weights=tiny_ckpt, device='cpu')


def _image(h=90, w=130, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    cv2.circle(img, (40, 45), 20, (220, 40, 40), -1)
    return img


def _reference(model, img, text):
    """Probability map of one (image, sentence) by the test pipeline and
    ``test_step`` directly (no inferencer)."""
    from mmengine.dataset import pseudo_collate

    from mmris.apis import build_inference_pipeline
    sample = build_inference_pipeline(model.cfg)(
        dict(
            img=img,
            text=text,
            ori_shape=img.shape[:2],
            img_shape=img.shape[:2]))
    with torch.no_grad():
        out = model.test_step(pseudo_collate([sample]))[0]
    return out.seg_logits.data[0].numpy()


def test_images_times_sentences_batched(inferencer, tmp_path):
    from mmris.apis import load_image
    path = str(tmp_path / 'photo.png')
    img1 = _image(60, 80, seed=1)
    cv2.imwrite(path, cv2.cvtColor(img1, cv2.COLOR_RGB2BGR))
    img0 = _image()
    out = inferencer([img0, path], TEXTS, batch_size=3)
    preds = out['predictions']
    assert out['visualization'] is None
    assert len(preds) == 2 and [len(p) for p in preds] == [2, 2]
    for img, per_image in zip([img0, load_image(path)['img']], preds):
        for text, pred in zip(TEXTS, per_image):
            assert pred['text'] == text
            assert pred['mask'].shape == img.shape[:2]
            assert pred['mask'].dtype == np.uint8
            assert pred['prob'].dtype == np.float32
            assert pred['no_target'] is False
            assert pred['no_target_score'] is None
            ref = _reference(inferencer.model, img, text)
            np.testing.assert_allclose(pred['prob'], ref, atol=1e-5)
            np.testing.assert_array_equal(pred['mask'], (pred['prob'] > 0.35))
    # one at a time gives the same as batched across images
    one = inferencer(img0, TEXTS[1], batch_size=1)['predictions']
    assert len(one) == 1
    np.testing.assert_allclose(one[0]['prob'], preds[0][1]['prob'], atol=1e-5)
    # one list of sentences per image
    own = inferencer([img0, path], [['the red circle'], TEXTS])
    assert [len(p) for p in own['predictions']] == [1, 2]
    with pytest.raises(ValueError, match='3 lists of sentences for 2'):
        inferencer([img0, path], [['a'], ['b'], ['c']])
    with pytest.raises(ValueError, match=r'texts\[1\]\[0\] is an empty'):
        inferencer([img0, path], [['a'], ['  ']])
    with pytest.raises(ValueError, match='batch_size must be >= 1'):
        inferencer(img0, 'a', batch_size=0)


def test_visualization_threshold_and_files(inferencer, tmp_path):
    from mmris.visualization import render_overlay
    img = _image()
    prob = inferencer(img, TEXTS[0])['predictions'][0]['prob']
    thr = float(np.median(prob))
    out = inferencer([img, DEMO],
                     TEXTS,
                     threshold=thr,
                     return_vis=True,
                     out_dir=str(tmp_path / 'vis'))
    first = out['predictions'][0][0]
    np.testing.assert_array_equal(first['mask'], prob > thr)
    assert 0.3 < first['mask'].mean() < 0.7
    overlay = out['visualization'][0][0]
    np.testing.assert_array_equal(overlay,
                                  render_overlay(img, first['mask'], TEXTS[0]))
    files = sorted(p.name for p in (tmp_path / 'vis').iterdir())
    assert files == [
        'demo_0.png', 'demo_1.png', 'image_0_0.png', 'image_0_1.png'
    ]
    written = cv2.imread(str(tmp_path / 'vis' / 'demo_1.png'))
    np.testing.assert_array_equal(
        cv2.cvtColor(written, cv2.COLOR_BGR2RGB), out['visualization'][1][1])
    with pytest.raises(ValueError, match=r'threshold.*\[0, 1\]'):
        inferencer(img, 'a', threshold=1.5)
    # a directory is its files
    assert len(inferencer(str(tmp_path / 'vis'), 'a')['predictions']) == 4


def test_model_names_datasamples_and_limits(inferencer, tiny_ckpt):
    from mmris.apis import RISInferencer, find_config, inference_model
    from mmris.datasets.transforms import ImageTooLargeError
    assert find_config('etris-tiny_synthetic') == CONFIG
    assert find_config('ETRIS_vit-b16_refcoco').endswith(
        osp.join('configs', 'etris', 'etris_vit-b16_refcoco.py'))
    with pytest.raises(ValueError, match="Unknown model 'no-such-model'"):
        find_config('no-such-model')
    by_name = RISInferencer(
        'etris-tiny_synthetic', weights=tiny_ckpt, device='cpu')
    img = _image()
    a = by_name(img, TEXTS)['predictions']
    b = inferencer(img, TEXTS)['predictions']
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x['prob'], y['prob'])
    # data samples, as inference_model returns them
    samples = inferencer(img, TEXTS, return_datasamples=True)['predictions']
    direct = inference_model(inferencer.model, img, TEXTS)
    for s, d in zip(samples, direct):
        assert s.metainfo['text'] == d.metainfo['text']
        assert torch.equal(s.pred_sem_seg.data, d.pred_sem_seg.data)
    # an existing model is used as it is
    assert RISInferencer(inferencer.model).model is inferencer.model
    # the pixel limit, for arrays and (from the header) files
    small = RISInferencer(inferencer.model, max_pixels=1000)
    with pytest.raises(ImageTooLargeError, match='130x90'):
        small(img, 'a')
    with pytest.raises(ImageTooLargeError, match='demo.jpg is 157x152'):
        small(DEMO, 'a')
    with pytest.raises(FileNotFoundError, match='missing.py'):
        RISInferencer('configs/missing.py')


def test_no_target_flags_of_a_grefcoco_model():
    from mmris.apis import RISInferencer
    torch.manual_seed(0)
    inferencer = RISInferencer(GREF, device='cpu')
    out = inferencer(_image(), TEXTS, threshold=0.0)['predictions']
    for pred in out:
        assert isinstance(pred['no_target'], bool)
        assert 0.0 <= pred['no_target_score'] <= 1.0
        assert pred['no_target'] == (pred['no_target_score'] > 0.5) or \
            pred['no_target_score'] == pytest.approx(0.5)
        if pred['no_target']:  # "no such object": empty at any threshold
            assert pred['mask'].sum() == 0
        else:
            assert pred['mask'].all()  # threshold 0: every pixel
