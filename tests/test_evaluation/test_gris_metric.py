# Copyright (c) mmris contributors. All rights reserved.
"""GRISMetric against a hand computation of ReLA's definitions."""
import json
import os
import pickle
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import mmris  # noqa: F401
from mmris.evaluation import GRISMetric, gris_metrics_from_stats

H, W = 4, 5


def _mask(pixels):
    m = np.zeros((H, W), np.uint8)
    for k in pixels:
        m[k // W, k % W] = 1
    return m


#: (gt pixels, pred pixels, gt no-target, pred_no_target or None (decide by
#: the mask)), with I, U and the ReLA per-sample IoU worked out by hand.
CASES = [
    # 1 target, exact:                         I 4, U 4,  IoU 1
    (range(4), range(4), False, None),
    # 2 target, half right:                    I 2, U 6,  IoU 1/3
    (range(4), [2, 3, 10, 11], False, None),
    # 3 target, empty prediction = no-target:  I 0, U 4,  IoU 0 (FP)
    (range(4), [], False, None),
    # 4 no-target, empty prediction:           I 0, U 0,  IoU 1 (TP)
    ([], [], True, None),
    # 5 no-target, 3 pixels predicted:         I 0, U 3,  IoU 0 (FN)
    ([], [7, 8, 9], True, None),
    # 6 target, head says no-target though the mask covers the object:
    #   ReLA sets I = 0; U = 5:                IoU 0 (FP)
    (range(5), range(5), False, True),
    # 7 target with an empty (degenerate) gt, 2 pixels predicted:
    #                                          I 0, U 2,  IoU 0 (TN)
    ([], [0, 1], False, None),
    # 8 target, empty gt, empty prediction:    I 0, U 0,  IoU 0 (FP)
    ([], [], False, None),
    # 9 target, 7 of 10 pixels:                I 7, U 10, IoU 0.7 (>= 0.7)
    (range(10), range(7), False, False),
    # 10 no-target, head says no-target:        IoU 1 (TP), adds nothing
    ([], [], True, True),
]
IOU = [1, 1 / 3, 0, 1, 0, 0, 0, 0, 0.7, 1]
SUM_I = 4 + 2 + 7
SUM_U = 4 + 6 + 4 + 0 + 3 + 5 + 2 + 0 + 10 + 0
TARGETS = [0, 1, 2, 5, 6, 7, 8]  # indices of the target samples
EXPECTED = {
    'gIoU': 100 * sum(IOU) / 10,
    'cIoU': 100 * SUM_I / SUM_U,
    'N-acc': 100 * 2 / 3,  # samples 4, 10 of 4, 5, 10
    'T-acc': 100 * 4 / 7,  # samples 1, 2, 7, 9 of 7 targets
    'Pr@0.7': 100 * 2 / 7,  # samples 1, 9
    'Pr@0.8': 100 * 1 / 7,
    'Pr@0.9': 100 * 1 / 7,
}


def _samples(indices=None):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    out = []
    for k in (range(len(CASES)) if indices is None else indices):
        gt, pred, gt_nt, pred_nt = CASES[k]
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.from_numpy(_mask(gt)[None]))
        s.pred_sem_seg = PixelData(data=torch.from_numpy(_mask(pred)[None]))
        meta = dict(
            ref_id=k,
            sent_id=k,
            dataset='grefcoco',
            split='val',
            no_target=gt_nt)
        if pred_nt is not None:
            meta['pred_no_target'] = pred_nt
        s.set_metainfo(meta)
        out.append(s.to_dict())
    return out


def test_matches_hand_computation(tmp_path):
    out_file = str(tmp_path / 'raw.json')
    metric = GRISMetric(out_file=out_file)
    metric.process({}, _samples())
    res = metric.evaluate(len(CASES))
    assert list(res) == list(EXPECTED)
    for name, value in EXPECTED.items():
        assert res[name] == pytest.approx(value, abs=1e-9), name
    raw = json.load(open(out_file))
    assert [r['no_target'] for r in raw['sentences']] == [c[2] for c in CASES]
    # the gIoU contribution (ReLA's per-sample IoU): a correct no-target
    # sentence counts 1 though its I/U is 0
    assert [r['giou'] for r in raw['sentences']] == pytest.approx(IOU)
    assert raw['sentences'][3]['iou'] == 0.0
    assert raw['protocol'] == ('original image size; no-target union: '
                               'prediction (ReLA)')
    assert [r['pred_no_target'] for r in raw['sentences']] == [
        True if c[3] is None and not list(c[1]) else bool(c[3]) for c in CASES
    ]


def test_target_only_set_and_missing_flag():
    # RefCOCO-style samples (no flag) are targets; no no-target sample:
    # N-acc has nothing to count (0, as ReLA), T-acc is still computed
    samples = _samples([0, 1, 2])
    for s in samples:
        s.pop('no_target')
    metric = GRISMetric()
    metric.process({}, samples)
    res = metric.evaluate(3)
    assert res['N-acc'] == 0.0
    assert res['T-acc'] == pytest.approx(100 * 2 / 3)
    assert res['gIoU'] == pytest.approx(100 * (1 + 1 / 3) / 3)
    assert res['cIoU'] == pytest.approx(100 * 6 / 14)
    empty = gris_metrics_from_stats([], [], [], [])
    assert set(empty.values()) == {0.0}


def test_trivial_baselines():
    # always "no target": gIoU = share of no-target samples, cIoU 0
    gt_nt = [c[2] for c in CASES]
    res = gris_metrics_from_stats([0] * 10, [4, 4, 4, 0, 0, 5, 0, 0, 10, 0],
                                  gt_nt, [True] * 10)
    assert res['gIoU'] == pytest.approx(30.0)
    assert res['cIoU'] == 0.0
    assert res['N-acc'] == 100.0 and res['T-acc'] == 0.0


def test_shape_mismatch_names_the_sample():
    samples = _samples([0])
    samples[0]['pred_sem_seg']['data'] = torch.zeros(1, H + 1, W)
    with pytest.raises(ValueError, match='ref_id 0'):
        GRISMetric().process({}, samples)


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _worker(rank, world_size, port, out_file, collect_dir):
    os.environ['MASTER_ADDR'] = '127.0.0.1'
    os.environ['MASTER_PORT'] = str(port)
    dist.init_process_group(
        'gloo', rank=rank, world_size=world_size, init_method='env://')
    try:
        from mmengine.dataset import DefaultSampler
        sampler = DefaultSampler(
            list(range(len(CASES) - 1)), shuffle=False, round_up=True)
        indices = list(iter(sampler))  # 9 samples: one padded duplicate
        metric = GRISMetric(collect_dir=collect_dir)
        for start in range(0, len(indices), 2):
            metric.process({}, _samples(indices[start:start + 2]))
        res = metric.evaluate(len(CASES) - 1)
        with open(f'{out_file}.{rank}', 'wb') as f:
            pickle.dump(res, f)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_distributed_equals_single(tmp_path):
    single = GRISMetric()
    single.process({}, _samples(range(len(CASES) - 1)))
    expected = single.evaluate(len(CASES) - 1)
    out_file = str(tmp_path / 'res')
    mp.spawn(
        _worker,
        args=(2, _free_port(), out_file, str(tmp_path / 'collect')),
        nprocs=2,
        join=True)
    with open(f'{out_file}.0', 'rb') as f:
        res = pickle.load(f)
    assert res == expected


def _sample(gt, pred, gt_nt, pred_nt=None, kept=None, h=H, w=W, **meta):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    s = SegDataSample()
    s.gt_sem_seg = PixelData(data=torch.from_numpy(gt[None]))
    s.pred_sem_seg = PixelData(data=torch.from_numpy(pred[None]))
    if kept is not None:
        s.target_pred_sem_seg = PixelData(data=torch.from_numpy(kept[None]))
    info = dict(
        ref_id=0,
        sent_id=0,
        dataset='grefcoco',
        split='val',
        no_target=gt_nt,
        ori_shape=(h, w),
        **meta)
    if pred_nt is not None:
        info['pred_no_target'] = pred_nt
    s.set_metainfo(info)
    return s.to_dict()


def test_no_target_union_counts_the_prediction_as_rela():
    """ReLA (gres_model/evaluation/refer_evaluation.py) scores the mask it
    predicted even when its no-target classifier fires: a target sentence
    wrongly called "no target" has I = 0 and U = |mask | gt|. The segmentor
    empties ``pred_sem_seg`` and keeps the mask as ``target_pred_sem_seg``.
    """
    samples = [
        # target, head fires; the mask before the decision: 4 px, 2 on gt
        #   ReLA: I 0, U |{0..5}| = 6 ; the emptied mask: U 4
        _sample(
            _mask(range(4)), _mask([]), False, True, kept=_mask([2, 3, 4, 5])),
        # target, 7 of 10:                      I 7, U 10
        _sample(_mask(range(10)), _mask(range(7)), False, False),
        # no target, head fires (mask kept):    U 0 (correct: IoU 1)
        _sample(_mask([]), _mask([]), True, True, kept=_mask([10, 11])),
        # no target, 3 pixels predicted:        U 3
        _sample(_mask([]), _mask([12, 13, 14]), True, False),
    ]
    rela = GRISMetric()
    rela.process({}, samples)
    res = rela.evaluate(4)
    assert res['cIoU'] == pytest.approx(100 * 7 / (6 + 10 + 0 + 3))
    assert res['gIoU'] == pytest.approx(100 * (0 + 0.7 + 1 + 0) / 4)
    empty = GRISMetric(no_target_union='empty')
    empty.process({}, samples)
    res = empty.evaluate(4)
    assert res['cIoU'] == pytest.approx(100 * 7 / (4 + 10 + 0 + 3))
    assert res['gIoU'] == pytest.approx(100 * (0 + 0.7 + 1 + 0) / 4)
    with pytest.raises(ValueError, match='no_target_union'):
        GRISMetric(no_target_union='zero')


def _pil_nearest(mask, size):
    """detectron2's ResizeTransform on a segmentation: PIL NEAREST."""
    from PIL import Image
    return np.asarray(
        Image.fromarray(mask).resize((size, size), Image.NEAREST))


def _pycoco_poly(polys, h, w):
    import warnings

    from pycocotools import mask as mask_utils
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        rles = mask_utils.frPyObjects(polys, h, w)
        return mask_utils.decode(rles).max(axis=2).astype(np.uint8)


def test_rela_resolution_scores_at_the_resized_input(capsys):
    """ReLA resizes image and polygons to 480 x 480 (refcoco_mapper.py,
    T.Resize; detectron2 scales the polygon coordinates) and scores there.
    Here at 16 x 16 for a 24 x 40 image: the ground truth is the polygon
    scaled and rasterised by pycocotools, the prediction resized with PIL's
    nearest neighbour (what detectron2 does to segmentation maps)."""
    from mmengine.logging import MMLogger
    h, w, size = 24, 40, 16
    logger = MMLogger.get_instance('gris_res_test')
    poly = [[3.0, 2.0, 30.0, 2.0, 30.0, 15.0, 3.0, 15.0]]
    gt = _pycoco_poly(poly, h, w)
    pred = np.zeros((h, w), np.uint8)
    pred[4:18, 5:36] = 1  # overlaps the box, spills below and right
    scaled = [[
        v * (size / w) if k % 2 == 0 else v * (size / h)
        for k, v in enumerate(poly[0])
    ]]
    gt_s = _pycoco_poly(scaled, size, size)
    pred_s = _pil_nearest(pred, size)
    expected = {}
    for name, (g, p) in dict(original=(gt, pred), rela=(gt_s, pred_s)).items():
        inter = int((g & p).sum())
        union = int((g | p).sum())
        expected[name] = 100 * inter / union
    assert abs(expected['original'] - expected['rela']) > 1  # they differ
    for resolution in ('original', 'rela'):
        metric = GRISMetric(resolution=resolution, rela_size=size)
        metric.process(
            {}, [_sample(gt, pred, False, False, h=h, w=w, segmentation=poly)])
        res = metric.evaluate(1)
        assert res['gIoU'] == pytest.approx(expected[resolution])
        assert res['cIoU'] == pytest.approx(expected[resolution])
    log = capsys.readouterr()
    assert 'protocol: original image size' in log.out + log.err
    assert f'protocol: ReLA, {size}x{size} resized input' in log.out + log.err
    # without the segmentation the ReLA resolution cannot be computed
    metric = GRISMetric(resolution='rela', rela_size=size)
    with pytest.raises(KeyError, match='segmentation'):
        metric.process({}, [_sample(gt, pred, False, False, h=h, w=w)])
    del logger


def test_resize_nearest_equals_pil():
    """Pillow accumulates the sampling positions in float64: e.g. 384 ->
    480 reads row 5 for output row 7 (6 with exact arithmetic)."""
    from mmris.evaluation.metrics.gris_metric import resize_nearest
    rng = np.random.default_rng(0)
    for h, w, size in [(384, 500, 480), (427, 640, 480), (640, 480, 480),
                       (24, 40, 16), (1, 7, 37), (97, 3, 480)]:
        mask = (rng.random((h, w)) < 0.5).astype(np.uint8)
        np.testing.assert_array_equal(
            resize_nearest(mask, size), _pil_nearest(mask, size))
