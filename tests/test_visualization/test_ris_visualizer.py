# Copyright (c) mmris contributors. All rights reserved.
"""Overlay drawing, RISLocalVisualizer and the visualization hook naming."""
import glob
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample


def _sample(h=60, w=80, text='the red circle'):
    gt = torch.zeros(1, h, w, dtype=torch.uint8)
    gt[:, 30:50, 10:40] = 1
    pred = torch.zeros_like(gt)
    pred[:, 30:50, 20:40] = 1
    ds = SegDataSample(
        metainfo=dict(text=text, img_path='a/COCO_1.jpg', ref_id=3, sent_id=7))
    ds.gt_sem_seg = PixelData(data=gt)
    ds.pred_sem_seg = PixelData(data=pred)
    return ds


def test_draw_referring_mask():
    from mmris.visualization import PRED_COLOR, draw_referring_mask
    img = np.full((60, 80, 3), 100, np.uint8)
    mask = np.zeros((60, 80), bool)
    mask[30:50, 10:40] = True
    out = draw_referring_mask(img, mask, alpha=0.5, text='the red circle')
    # the caption goes on a strip below: the image keeps its size and rows
    assert out.shape[1:] == img.shape[1:] and out.shape[0] > img.shape[0]
    assert out.dtype == np.uint8
    assert np.array_equal(img, np.full((60, 80, 3), 100, np.uint8))
    inner = out[35:45, 15:35].reshape(-1, 3).astype(float)
    expected = (np.array([100.] * 3) + np.array(PRED_COLOR)) / 2
    assert np.abs(inner.mean(0) - expected).max() < 2
    assert (out[:25].astype(int) == 100).all()  # nothing drawn over the top
    assert (out[55:60, 60:] == 100).all()  # untouched background
    assert (out[60:].astype(int) < 100).any()  # dark caption strip
    assert draw_referring_mask(img, mask).shape == img.shape  # no text
    # contour: pixels just around the mask changed, tensor (1, h, w) works
    out2 = draw_referring_mask(img, torch.from_numpy(mask[None]), contour=True)
    assert (out2[29, 20] != 100).any()
    with pytest.raises(ValueError):
        draw_referring_mask(img, mask[:10])
    with pytest.raises(ValueError):
        draw_referring_mask(img, mask, alpha=2)
    with pytest.raises(ValueError):
        draw_referring_mask(img[..., 0], mask)


def test_ris_local_visualizer_backends(tmp_path):
    from mmseg.registry import VISUALIZERS

    import mmris  # noqa: F401
    vis = VISUALIZERS.build(
        dict(
            type='RISLocalVisualizer',
            name='ris_vis_test',
            vis_backends=[dict(type='LocalVisBackend')],
            save_dir=str(tmp_path)))
    ds = _sample()
    assert vis.sample_iou(ds) == pytest.approx(20 * 20 / (20 * 30), 1e-4)
    img = np.full((60, 80, 3), 120, np.uint8)
    drawn = vis.draw_sample(img, ds)
    # scaled up to a 320 px short side, two panels, captions below
    assert drawn.shape[1] == 2 * 427 + 2 and drawn.shape[0] > 320
    vis.add_datasample('test_x', img, ds, step=3)
    files = glob.glob(str(tmp_path / 'vis_data' / 'vis_image' / '*.png'))
    assert [osp.basename(f) for f in files] == ['test_x_3.png']
    out_file = str(tmp_path / 'one.png')
    vis.add_datasample('x', img, ds, draw_gt=False, out_file=out_file)
    import cv2
    assert cv2.imread(out_file).shape[:2] == (drawn.shape[0], 427)


def test_tensorboard_backend(tmp_path):
    pytest.importorskip('tensorboard')
    from mmris.visualization import RISLocalVisualizer
    vis = RISLocalVisualizer(
        name='ris_vis_tb',
        vis_backends=[dict(type='TensorboardVisBackend')],
        save_dir=str(tmp_path))
    vis.add_datasample('tb', np.zeros((60, 80, 3), np.uint8), _sample())
    vis.close()
    assert glob.glob(str(tmp_path / 'vis_data' / 'events.out.tfevents.*'))


def test_sample_name():
    from mmris.engine.hooks import sample_name
    assert sample_name(_sample(), 'val') == 'val_COCO_1_ref3_sent7'
    ds = SegDataSample(metainfo=dict(img_path='x y/b c.png', sample_idx=4))
    assert sample_name(ds) == 'test_b_c_idx4'


def test_show_picture_layout():
    """Captions outside the image, small images scaled up, the object's
    colour visible under the GT tint, same layout for GT and prediction."""
    from mmris.visualization import RISLocalVisualizer
    vis = RISLocalVisualizer(name='ris_vis_layout')
    img = np.full((60, 80, 3), 128, np.uint8)
    img[30:50, 10:40] = (200, 30, 30)  # a red object
    long = 'the red rectangle at the bottom left of the picture, ' * 2
    ds = _sample(text=long)
    drawn = vis.draw_sample(img, ds)
    factor = 320 / 60
    big_h, big_w = 320, int(round(80 * factor))
    gt, pred = drawn[:, :big_w], drawn[:, big_w + 2:]
    assert gt.shape == pred.shape  # same layout, same caption height
    assert drawn.shape[0] > big_h
    # no text over the image: the rows above the object are the image
    assert (gt[:int(29 * factor) - 4] == 128).all()
    assert (pred[:int(29 * factor) - 4] == 128).all()
    # the caption strips hold the text (dark strip with white glyphs)
    for panel in (gt, pred):
        strip = panel[big_h:]
        assert (strip == 32).mean() > 0.5 and (strip > 200).any()
    # inside the GT mask the object stays red under the green tint
    inner = gt[int(35 * factor):int(45 * factor),
               int(15 * factor):int(35 * factor)].reshape(-1, 3)
    assert (inner[:, 0] > inner[:, 1]).all()
    assert (inner[:, 0] > inner[:, 2]).all()
    # an image at least min_size keeps its size
    big = np.zeros((400, 500, 3), np.uint8)
    ds_big = _sample(h=400, w=500)
    assert vis.draw_sample(big, ds_big).shape[1] == 2 * 500 + 2


def test_default_hook_and_metric_do_not_warn():
    """The silent default hook (draw=False) and RISMetric without a prefix
    print no warning on every run; the metric names stay unprefixed."""
    import warnings

    from mmengine.visualization import Visualizer

    import mmris  # noqa: F401
    from mmris.engine.hooks.ris_visualization_hook import RISVisualizationHook
    from mmris.evaluation.metrics.ris_metric import RISMetric
    Visualizer.get_instance('default_hook_warning_test')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        RISVisualizationHook(draw=False)
    assert not [w for w in caught if 'draw is False' in str(w.message)]
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    records = []
    import logging
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logger.addHandler(handler)
    try:
        metric = RISMetric()
    finally:
        logger.removeHandler(handler)
    assert not [r for r in records if 'prefix is not set' in r], records
    assert metric.prefix == ''
    assert RISMetric(prefix='val').prefix == 'val'
