# Copyright (c) mmris contributors. All rights reserved.
"""Referring image segmentation metric (RIS-SPEC A.7)."""
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
    ``BaseMetric.evaluate(size)``.

    Args:
        collect_device (str): 'cpu' or 'gpu'. Defaults to 'cpu'.
        prefix (str, optional): Metric name prefix. Defaults to None.
        collect_dir (str, optional): Temporary directory for collecting
            results on CPU. Defaults to None.
    """

    default_prefix: Optional[str] = None

    def __init__(self,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(
            collect_device=collect_device,
            prefix=prefix,
            collect_dir=collect_dir)

    @staticmethod
    def _get(sample: Any, key: str, default: Any = None) -> Any:
        if isinstance(sample, dict):
            return sample.get(key, default)
        return getattr(sample, key, default)

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Store (I, U, ref_id, sent_id) of each sample.

        Args:
            data_batch (Any): Unused.
            data_samples (Sequence[dict | SegDataSample]): Model outputs with
                ``pred_sem_seg`` and ``gt_sem_seg``.
        """
        for sample in data_samples:
            pred = self._get(sample, 'pred_sem_seg')
            gt = self._get(sample, 'gt_sem_seg')
            if pred is None or gt is None:
                raise KeyError(
                    'RISMetric needs "pred_sem_seg" and "gt_sem_seg" in every '
                    'data sample (gt_sem_seg is packed from gt_seg_map: use '
                    'LoadRefMask and LetterboxAffine(warp_mask=False) in the '
                    'evaluation pipeline)')
            pred = self._get(pred, 'data')
            gt = self._get(gt, 'data')
            inter, union = compute_iou_stats(pred, gt)
            self.results.append((inter, union, self._get(sample, 'ref_id'),
                                 self._get(sample, 'sent_id')))

    def compute_metrics(self, results: List[tuple]) -> Dict[str, float]:
        """Compute the metrics from the collected per-sentence results.

        Args:
            results (list[tuple]): ``(I, U, ref_id, sent_id)`` per sentence.

        Returns:
            dict[str, float]: ``mIoU``, ``oIoU``, ``Pr@50`` ... ``Pr@90``.
        """
        inter = [r[0] for r in results]
        union = [r[1] for r in results]
        metrics = ris_metrics_from_stats(inter, union)
        self._log_table(metrics, len(results))
        return dict(metrics)

    @staticmethod
    def _log_table(metrics: Dict[str, float], num: int) -> None:
        try:
            from prettytable import PrettyTable
            table = PrettyTable()
            for name, value in metrics.items():
                table.add_column(name, [f'{value:.2f}'])
            text = table.get_string()
        except ImportError:  # pragma: no cover
            text = ' | '.join(f'{k}: {v:.2f}' for k, v in metrics.items())
        logger = MMLogger.get_current_instance()
        print_log(f'RIS results over {num} sentences:\n' + text, logger=logger)
