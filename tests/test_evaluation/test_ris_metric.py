# Copyright (c) mmris contributors. All rights reserved.
import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

import mmris  # noqa: F401
from mmris.evaluation import (PR_NAMES, PR_THRESHOLDS, RISMetric,
                              compute_iou_stats, ris_metrics_from_stats)

KEYS = {'mIoU', 'oIoU', 'Pr@50', 'Pr@60', 'Pr@70', 'Pr@80', 'Pr@90'}


def _masks(n_inter, n_union, size=(4, 8)):
    """pred/gt masks with exactly the given intersection and union."""
    h, w = size
    pred = np.zeros(h * w, bool)
    gt = np.zeros(h * w, bool)
    gt[:n_inter] = pred[:n_inter] = True
    extra = n_union - n_inter
    pred[n_inter:n_inter + extra // 2] = True
    gt[n_inter + extra // 2:n_union] = True
    return pred.reshape(h, w), gt.reshape(h, w)


# (I, U) cases: perfect, empty/empty, IoU just under the 0.5/0.6/0.7
# boundaries (strict ">" against float32 thresholds), and some others.
CASES = [(8, 8), (0, 0), (1, 2), (3, 5), (7, 10), (9, 10), (0, 6), (20, 24),
         (5, 6)]


def _sample(pred, gt, ref_id=0, sent_id=0):
    s = SegDataSample()
    s.pred_sem_seg = PixelData(data=torch.from_numpy(pred[None]))
    s.gt_sem_seg = PixelData(data=torch.from_numpy(gt[None].astype(np.uint8)))
    s.set_metainfo(dict(ref_id=ref_id, sent_id=sent_id))
    return s


def _hand_metrics(cases):
    ious = [i / (u + 1e-6) for i, u in cases]
    thresholds = [
        0.5, 0.6000000238418579, 0.699999988079071, 0.800000011920929,
        0.8999999761581421
    ]
    out = {
        'mIoU': 100 * sum(ious) / len(ious),
        'oIoU': 100 * sum(i for i, _ in cases) / sum(u for _, u in cases)
    }
    for name, t in zip(['Pr@50', 'Pr@60', 'Pr@70', 'Pr@80', 'Pr@90'],
                       thresholds):
        out[name] = 100 * sum(iou > t for iou in ious) / len(ious)
    return out


def test_thresholds_are_float32():
    assert PR_NAMES == ('Pr@50', 'Pr@60', 'Pr@70', 'Pr@80', 'Pr@90')
    assert PR_THRESHOLDS.dtype == np.float32
    assert float(PR_THRESHOLDS[1]) == pytest.approx(
        0.6000000238418579, abs=1e-12)


def test_thresholds_equal_official_torch_arange():
    """The official Pr@X loop is ``for thres in torch.arange(0.5, 1.0, 0.1)``
    (kkakkkka/ETRIS, engine/engine.py); numpy's float32 arange accumulates
    differently (0.7000000477, 0.9000000954)."""
    official = torch.arange(0.5, 1.0, 0.1)
    assert official.dtype == torch.float32
    assert PR_THRESHOLDS.tolist() == official.tolist()
    assert PR_THRESHOLDS.tolist() == [
        0.5, 0.6000000238418579, 0.699999988079071, 0.800000011920929,
        0.8999999761581421
    ]


@pytest.mark.parametrize('inter,union,name', [(63, 90, 'Pr@70'),
                                              (90, 100, 'Pr@90')])
def test_iou_just_above_official_threshold_counts(inter, union, name):
    """I/U = 0.7 (0.9) exactly: IoU = I / (U + 1e-6) lies between the
    official float32 threshold 0.6999999881 (0.8999999762) and numpy's
    0.7000000477 (0.9000000954); the official code counts it."""
    metrics = ris_metrics_from_stats([inter], [union])
    assert metrics[name] == 100.0
    iou = torch.tensor([inter / (union + 1e-6)], dtype=torch.float64)
    official = {
        f'Pr@{int(round(float(t) * 100))}': float(
            (iou > t).float().mean()) * 100
        for t in torch.arange(0.5, 1.0, 0.1)
    }
    assert {k: metrics[k] for k in PR_NAMES} == official


def test_shape_mismatch_names_the_sample():
    s = SegDataSample()
    s.pred_sem_seg = PixelData(data=torch.zeros(1, 4, 6, dtype=torch.bool))
    s.gt_sem_seg = PixelData(data=torch.zeros(1, 6, 4, dtype=torch.uint8))
    s.set_metainfo(dict(ref_id=5, sent_id=51, img_path='data/x/img_9.jpg'))
    with pytest.raises(ValueError) as info:
        RISMetric().process({}, [s])
    msg = str(info.value)
    assert 'data/x/img_9.jpg' in msg and 'ref_id 5' in msg
    assert 'sent_id 51' in msg and '(4, 6)' in msg and '(6, 4)' in msg


def test_iou_stats():
    for inter, union in CASES:
        pred, gt = _masks(inter, union)
        assert compute_iou_stats(pred, gt) == (inter, union)
        assert compute_iou_stats(
            torch.from_numpy(pred[None]).float() * 3,
            torch.from_numpy(gt[None]).to(torch.uint8) * 255) == (inter, union)
    with pytest.raises(ValueError, match='shape'):
        compute_iou_stats(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError):
        compute_iou_stats(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)))


def test_metric_matches_hand_computation():
    metric = RISMetric()
    samples = []
    for k, (inter, union) in enumerate(CASES):
        pred, gt = _masks(inter, union)
        samples.append(_sample(pred, gt, ref_id=k, sent_id=10 + k))
    # mixed input kinds: data samples and their dict form (Evaluator)
    metric.process({}, samples[:4])
    metric.process({}, [s.to_dict() for s in samples[4:]])
    assert metric.results[0][:4] == (8, 8, 0, 10)
    res = metric.evaluate(len(CASES))
    assert set(res) == KEYS
    expected = _hand_metrics(CASES)
    for key in KEYS:
        assert res[key] == pytest.approx(expected[key], abs=1e-9), key
    # spot values: IoUs 1, 0, .5-, .6-, .7-, .9-, 0, .83-, .83-
    # (x- = just below x)
    assert res['Pr@50'] == pytest.approx(100 * 6 / 9)
    assert res['Pr@70'] == pytest.approx(100 * 4 / 9)
    assert res['Pr@90'] == pytest.approx(100 * 1 / 9)
    assert res['oIoU'] == pytest.approx(100 * 53 / 71)


def test_boundaries_and_empty():
    metric = RISMetric(prefix='refcoco_val')
    pred, gt = _masks(0, 0)
    metric.process({}, [_sample(pred, gt)])
    res = metric.evaluate(1)
    assert res == {f'refcoco_val/{k}': 0.0 for k in KEYS}
    metric = RISMetric()
    for inter, union in [(1, 2), (3, 5)]:  # IoU 0.5 and 0.6 minus epsilon
        metric.process({}, [_sample(*_masks(inter, union))])
    res = metric.evaluate(2)
    assert res['Pr@50'] == 50.0 and res['Pr@60'] == 0.0
    assert res['mIoU'] == pytest.approx(55, abs=1e-3)


@pytest.mark.parametrize('name', ['RISMetric', 'GRISMetric'])
def test_missing_gt(name):
    from mmris.evaluation import GRISMetric
    metric = dict(RISMetric=RISMetric, GRISMetric=GRISMetric)[name]()
    s = SegDataSample()
    s.pred_sem_seg = PixelData(data=torch.zeros(1, 2, 2))
    with pytest.raises(KeyError, match=f'^.{name} needs .*gt_sem_seg'):
        metric.process({}, [s])


def test_out_file_and_split_names(tmp_path):
    """``out_file`` holds one record per sentence with its own I, U and IoU;
    the table names the splits."""
    import json
    out = tmp_path / 'raw' / 'results.json'
    metric = RISMetric(out_file=str(out))
    samples = []
    for k, (i, u) in enumerate([(3, 4), (0, 5)]):
        gt = torch.zeros(1, 2, 5, dtype=torch.uint8)
        pred = torch.zeros_like(gt)
        gt.view(-1)[:u] = 1  # u pixels of GT, the first i predicted
        pred.view(-1)[:i] = 1
        ds = SegDataSample(
            metainfo=dict(
                ref_id=k,
                sent_id=7 + k,
                text=f's{k}',
                img_path=f'i{k}.jpg',
                split='testA',
                dataset='refcoco'))
        ds.pred_sem_seg = PixelData(data=pred)
        ds.gt_sem_seg = PixelData(data=gt)
        samples.append(ds)
    metric.process({}, samples)
    metrics = metric.compute_metrics(metric.results)
    raw = json.load(open(out))
    assert [(r['ref_id'], r['sent_id'], r['inter'], r['union'])
            for r in raw['sentences']] == [(0, 7, 3, 4), (1, 8, 0, 5)]
    assert raw['sentences'][0]['iou'] == pytest.approx(0.75)
    assert raw['sentences'][1]['split'] == 'testA'
    assert raw['metrics']['mIoU'] == pytest.approx(metrics['mIoU'])
    assert metrics['mIoU'] == pytest.approx(37.5, abs=1e-4)
    assert RISMetric.describe_splits([r for r in raw['sentences']
                                      ]) == 'refcoco testA'
    with pytest.raises(ValueError, match='json'):
        RISMetric(out_file='x.pkl')
