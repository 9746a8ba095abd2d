# Copyright (c) mmris contributors. All rights reserved.
"""Referring image segmentation metric (as the ``inference`` of
kkakkkka/ETRIS, engine/engine.py, plus DETRIS's overall IoU)."""
import json
import os
import os.path as osp
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from mmseg.registry import METRICS

#: Pr@X thresholds exactly as the official ``torch.arange(0.5, 1.0, 0.1)``
#: (kkakkkka/ETRIS, engine/engine.py; float32: 0.5, 0.6000000238,
#: 0.6999999881, 0.8000000119, 0.8999999762). ``np.arange`` with float32
#: accumulates differently (0.7000000477, 0.9000000954), which would reject a
#: sentence with I/U = 0.7 or 0.9 that the official code counts.
PR_THRESHOLDS = torch.arange(0.5, 1.0, 0.1, dtype=torch.float32).numpy()
PR_NAMES = tuple(f'Pr@{int(round(t * 100))}' for t in PR_THRESHOLDS)
IOU_EPS = 1e-6


def _to_bool_numpy(mask: Any) -> np.ndarray:
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.ndim != 2:
        raise ValueError(f'Expected a (h, w) or (1, h, w) mask, got shape '
                         f'{mask.shape}')
    return mask != 0


def compute_iou_stats(pred: Any, gt: Any) -> Tuple[int, int]:
    """Intersection and union of two binary masks (non-zero = foreground).

    Args:
        pred (torch.Tensor | np.ndarray): Prediction, (h, w) or (1, h, w),
            at the original image resolution.
        gt (torch.Tensor | np.ndarray): Ground truth of the same shape.

    Returns:
        tuple[int, int]: ``(I, U)`` pixel counts.
    """
    pred, gt = _to_bool_numpy(pred), _to_bool_numpy(gt)
    if pred.shape != gt.shape:
        raise ValueError(f'Prediction shape {pred.shape} differs from ground '
                         f'truth shape {gt.shape}; predictions must be mapped '
                         'back to the original image size')
    inter = int(np.count_nonzero(pred & gt))
    union = int(np.count_nonzero(pred | gt))
    return inter, union


def ris_metrics_from_stats(inter: Sequence[int],
                           union: Sequence[int]) -> Dict[str, float]:
    """mIoU, oIoU and Pr@X (percentages) from per-sentence I and U.

    Args:
        inter (Sequence[int]): Per-sentence intersections.
        union (Sequence[int]): Per-sentence unions.

    Returns:
        dict[str, float]: Keys ``mIoU``, ``oIoU``, ``Pr@50`` ... ``Pr@90``.
    """
    inter_arr = np.asarray(inter, dtype=np.int64)
    union_arr = np.asarray(union, dtype=np.int64)
    metrics: Dict[str, float] = OrderedDict()
    if inter_arr.size == 0:
        metrics['mIoU'] = metrics['oIoU'] = 0.0
        for name in PR_NAMES:
            metrics[name] = 0.0
        return metrics
    # float64 IoU compared with float32 thresholds, as torch promotes them.
    iou = inter_arr / (union_arr + IOU_EPS)
    total_union = int(union_arr.sum())
    metrics['mIoU'] = float(iou.mean() * 100)
    metrics['oIoU'] = (
        float(inter_arr.sum() / total_union * 100) if total_union > 0 else 0.0)
    for name, thr in zip(PR_NAMES, PR_THRESHOLDS):
        metrics[name] = float((iou > thr.astype(np.float64)).mean() * 100)
    return metrics


@METRICS.register_module()
class RISMetric(BaseMetric):
    """mIoU, oIoU and Pr@50..90 of referring image segmentation.

    Per sample (one sentence) the binary prediction ``pred_sem_seg`` and the
    ground truth ``gt_sem_seg``, both (1, h, w) at the original image
    resolution, give I = |pred & gt| and U = |pred | gt|; IoU =
    I / (U + 1e-6), so an empty prediction on an empty mask scores 0, as in
    the official code. Over the split:

    - ``mIoU``: mean per-sentence IoU ("IoU"/"Mean IoU" in the papers' logs),
    - ``oIoU``: ΣI / ΣU ("Overall IoU", cIoU),
    - ``Pr@X``: share of sentences with IoU strictly greater than the
      float32 threshold X/100,

    all in percent. Samples padded by a distributed sampler are dropped by
    ``BaseMetric.evaluate(size)``. The logged table names the dataset and
    split(s) it was computed on.

    Args:
        collect_device (str): 'cpu' or 'gpu'. Defaults to 'cpu'.
        prefix (str, optional): Metric name prefix. Defaults to None: no
            prefix (``mIoU``, ``oIoU``, ...), without MMEngine's "prefix is
            not set" warning.
        collect_dir (str, optional): Temporary directory for collecting
            results on CPU. Defaults to None.
        out_file (str, optional): Write the raw per-sentence results
            (dataset, split, ref/sent ids, image, sentence, I, U, IoU) and the
            metrics to this JSON file (``tools/test.py --out``). Written by
            rank 0 after collection, so it holds every sentence once.
            Defaults to None.
    """

    # '' (not None): the metric names stay unprefixed, and MMEngine does
    # not warn that no prefix is set
    default_prefix: Optional[str] = ''
    #: How the numbers are computed, printed with every table.
    PROTOCOL = 'original image size'

    def __init__(self,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None,
                 out_file: Optional[str] = None) -> None:
        super().__init__(
            collect_device=collect_device,
            prefix=prefix,
            collect_dir=collect_dir)
        if out_file is not None and not str(out_file).endswith('.json'):
            raise ValueError(
                f'out_file must be a .json path, got {out_file!r}')
        self.out_file = out_file

    @staticmethod
    def _get(sample: Any, key: str, default: Any = None) -> Any:
        if isinstance(sample, dict):
            return sample.get(key, default)
        return getattr(sample, key, default)

    #: Per-sentence meta information kept for ``out_file`` and the table.
    RECORD_KEYS = ('dataset', 'split', 'ref_id', 'sent_id', 'img_path', 'text')

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Store (I, U, ref_id, sent_id, meta) of each sample.

        Args:
            data_batch (Any): Unused.
            data_samples (Sequence[dict | SegDataSample]): Model outputs with
                ``pred_sem_seg`` and ``gt_sem_seg``.
        """
        for sample in data_samples:
            pred, gt = self._prediction_and_truth(sample)
            inter, union = self._iou_stats(sample, self._get(pred, 'data'),
                                           self._get(gt, 'data'))
            meta = {k: self._get(sample, k) for k in self.RECORD_KEYS}
            self.results.append(
                (inter, union, meta['ref_id'], meta['sent_id'], meta))

    def _prediction_and_truth(self, sample: Any) -> Tuple[Any, Any]:
        """``pred_sem_seg`` and ``gt_sem_seg`` of a sample, or a KeyError
        saying where the ground truth comes from."""
        pred = self._get(sample, 'pred_sem_seg')
        gt = self._get(sample, 'gt_sem_seg')
        if pred is None or gt is None:
            raise KeyError(
                f'{type(self).__name__} needs "pred_sem_seg" and "gt_sem_seg" '
                'in every data sample (gt_sem_seg is packed from gt_seg_map: '
                'use LoadRefMask and LetterboxAffine(warp_mask=False) in the '
                'evaluation pipeline)')
        return pred, gt

    @classmethod
    def _iou_stats(cls, sample: Any, pred: Any, gt: Any) -> Tuple[int, int]:
        """``compute_iou_stats``; a shape error names the sample."""
        try:
            return compute_iou_stats(pred, gt)
        except ValueError as err:
            where = ', '.join(f'{key} {cls._get(sample, key)}'
                              for key in ('img_path', 'ref_id', 'sent_id')
                              if cls._get(sample, key) is not None)
            raise ValueError(f'{cls.__name__}: sample {where or "?"}: '
                             f'{err}') from err

    def compute_metrics(self, results: List[tuple]) -> Dict[str, float]:
        """Compute the metrics from the collected per-sentence results.

        Args:
            results (list[tuple]): ``(I, U, ref_id, sent_id, meta)`` per
                sentence.

        Returns:
            dict[str, float]: ``mIoU``, ``oIoU``, ``Pr@50`` ... ``Pr@90``.
        """
        inter = [r[0] for r in results]
        union = [r[1] for r in results]
        metrics = ris_metrics_from_stats(inter, union)
        metas = [r[4] if len(r) > 4 else {} for r in results]
        self._log_table(metrics, len(results), self.describe_splits(metas),
                        self.PROTOCOL)
        if self.out_file is not None:
            self.dump_results(self.out_file, inter, union, metas, metrics,
                              self.PROTOCOL)
        return dict(metrics)

    @staticmethod
    def describe_splits(metas: Sequence[dict]) -> str:
        """``"refcoco val"``-style names of the splits in ``metas``."""
        names = []
        for meta in metas:
            parts = [meta.get('dataset'), meta.get('split')]
            name = ' '.join(str(p) for p in parts if p is not None)
            if name and name not in names:
                names.append(name)
        return ', '.join(names) or 'unnamed split'

    @classmethod
    def dump_results(cls,
                     out_file: str,
                     inter: Sequence[int],
                     union: Sequence[int],
                     metas: Sequence[dict],
                     metrics: Dict[str, float],
                     protocol: Optional[str] = None) -> None:
        """Write the per-sentence results, the metrics and the protocol
        they were computed with as JSON."""
        records = []
        for i, u, meta in zip(inter, union, metas):
            record = {k: meta.get(k) for k in cls.RECORD_KEYS}
            record.update(
                inter=int(i), union=int(u), iou=float(i / (u + IOU_EPS)))
            records.append(record)
        folder = osp.dirname(osp.abspath(out_file))
        os.makedirs(folder, exist_ok=True)
        with open(out_file, 'w') as f:
            json.dump(
                dict(
                    protocol=protocol or cls.PROTOCOL,
                    metrics=dict(metrics),
                    sentences=records),
                f,
                indent=1)
        print_log(
            f'Per-sentence results ({len(records)}) written to {out_file}',
            logger=MMLogger.get_current_instance())

    @staticmethod
    def _log_table(metrics: Dict[str, float],
                   num: int,
                   splits: str = 'unnamed split',
                   protocol: Optional[str] = None) -> None:
        try:
            from prettytable import PrettyTable
            table = PrettyTable()
            for name, value in metrics.items():
                table.add_column(name, [f'{value:.2f}'])
            text = table.get_string()
        except ImportError:  # pragma: no cover
            text = ' | '.join(f'{k}: {v:.2f}' for k, v in metrics.items())
        logger = MMLogger.get_current_instance()
        how = f' [protocol: {protocol}]' if protocol else ''
        print_log(
            f'RIS results on {splits} over {num} sentences{how}:\n' + text,
            logger=logger)
