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
    ds = SegDataSample(metainfo=dict(
        text=text, img_path='a/COCO_1.jpg', ref_id=3, sent_id=7))
    ds.gt_sem_seg = PixelData(data=gt)
    ds.pred_sem_seg = PixelData(data=pred)
    return ds


def test_draw_referring_mask():
    from mmris.visualization import PRED_COLOR, draw_referring_mask
    img = np.full((60, 80, 3), 100, np.uint8)
    mask = np.zeros((60, 80), bool)
    mask[30:50, 10:40] = True
    out = draw_referring_mask(img, mask, alpha=0.5, text='the red circle')
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.array_equal(img, np.full((60, 80, 3), 100, np.uint8))
    inner = out[35:45, 15:35].reshape(-1, 3).astype(float)
    expected = (np.array([100.] * 3) + np.array(PRED_COLOR)) / 2
    assert np.abs(inner.mean(0) - expected).max() < 2
    assert (out[55:, 60:] == 100).all()  # untouched background
    assert (out[:8].astype(int) < 100).any()  # dark text banner
    # contour: pixels just around the mask changed, tensor (1, h, w) works
    out2 = draw_referring_mask(img, torch.from_numpy(mask[None]),
                               contour=True)
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
    assert drawn.shape == (60, 162, 3)
    vis.add_datasample('test_x', img, ds, step=3)
    files = glob.glob(str(tmp_path / 'vis_data' / 'vis_image' / '*.png'))
    assert [osp.basename(f) for f in files] == ['test_x_3.png']
    out_file = str(tmp_path / 'one.png')
    vis.add_datasample('x', img, ds, draw_gt=False, out_file=out_file)
    import cv2
    assert cv2.imread(out_file).shape == (60, 80, 3)


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
