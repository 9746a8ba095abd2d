# Copyright (c) mmris contributors. All rights reserved.
"""test_cfg.postprocess='device': the batched inverse letterbox warp on the
model's device against the per-sample cv2 path (default)."""
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import mmris  # noqa: F401
from mmris.datasets.transforms.letterbox import get_letterbox_affine
from mmris.models.utils import warp_affine_cubic

ROOT = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
CONFIG = osp.join(ROOT, 'configs', 'quickstart', 'etris-tiny_synthetic.py')
SIZE = 96
# (h, w) of COCO-like originals: landscape, portrait, square, small, odd
SHAPES = [(480, 640), (640, 427), (500, 500), (75, 100), (333, 517),
          (612, 612)]


def _model(**test_cfg):
    cfg = Config.fromfile(CONFIG)
    init_default_scope('mmseg')
    cfg.model.test_cfg = test_cfg
    return MODELS.build(cfg.model)


def _samples():
    samples = []
    for h, w in SHAPES:
        affine, inv = get_letterbox_affine((h, w), SIZE)
        samples.append(
            SegDataSample(
                metainfo=dict(
                    ori_shape=(h, w),
                    img_shape=(SIZE, SIZE),
                    affine=affine,
                    inv_affine=inv)))
    return samples


def _probs(model):
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(len(SHAPES), 1, SIZE // 4, SIZE // 4, generator=g)
    return model.probabilities(logits, (SIZE, SIZE))


def test_default_is_cv2_and_bad_value_names_the_key():
    assert _model().test_cfg['postprocess'] == 'cv2'
    with pytest.raises(
            ValueError,
            match=r"test_cfg.postprocess must be "
            r"'cv2' or 'device', got 'gpu'"):
        _model(postprocess='gpu')


def test_warp_matches_cv2_inter_cubic():
    g = torch.Generator().manual_seed(1)
    img = F.interpolate(
        torch.rand(len(SHAPES), 2, 12, 12, generator=g), (SIZE, SIZE),
        mode='bicubic',
        align_corners=True)
    invs = [get_letterbox_affine(s, SIZE)[1] for s in SHAPES]
    out = warp_affine_cubic(img, invs, SHAPES)
    for i, ((h, w), inv) in enumerate(zip(SHAPES, invs)):
        assert out[i].shape == (2, h, w)
        for c in range(2):
            ref = cv2.warpAffine(
                img[i, c].numpy(),
                inv, (w, h),
                flags=cv2.INTER_CUBIC,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0)
            np.testing.assert_allclose(out[i][c].numpy(), ref, atol=1e-4)
    with pytest.raises(ValueError, match='one matrix and one size per image'):
        warp_affine_cubic(img, invs[:1], SHAPES)
    with pytest.raises(ValueError, match=r'matrix 0 must be \(2, 3\)'):
        warp_affine_cubic(img[:1], [np.eye(3)], SHAPES[:1])


def test_device_masks_agree_with_cv2_path():
    model_cv2 = _model()
    model_dev = _model(postprocess='device')
    probs = _probs(model_cv2)
    ref = model_cv2.postprocess_result(probs, _samples())
    out = model_dev.postprocess_result(probs, _samples())
    agree = total = 0
    for r, o, (h, w) in zip(ref, out, SHAPES):
        rm, om = r.pred_sem_seg.data, o.pred_sem_seg.data
        assert rm.shape == om.shape == (1, h, w)
        assert om.dtype == torch.uint8
        assert 0 < rm.float().mean() < 1  # both classes present
        torch.testing.assert_close(
            o.seg_logits.data, r.seg_logits.data, atol=1e-4, rtol=0)
        agree += int((rm == om).sum())
        total += rm.numel()
    rate = agree / total
    print(f'pixel agreement device vs cv2: {rate:.6f} '
          f'({total - agree} of {total} pixels differ)')
    assert rate > 0.999
