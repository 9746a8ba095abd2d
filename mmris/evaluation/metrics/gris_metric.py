# Copyright (c) mmris contributors. All rights reserved.
"""Generalized referring segmentation metric (gRefCOCO), with the
definitions of ReLA's evaluator (henghuiding/ReLA,
gres_model/evaluation/refer_evaluation.py)."""
from collections import OrderedDict
from typing import Any, Dict, List, Sequence

import numpy as np
from mmengine.logging import MMLogger, print_log
from mmseg.registry import METRICS

from .ris_metric import RISMetric

#: Precision thresholds of ReLA (IoU >= threshold, target samples only).
GRIS_PR_THRESHOLDS = (0.7, 0.8, 0.9)
GRIS_PR_NAMES = tuple(f'Pr@{t:.1f}' for t in GRIS_PR_THRESHOLDS)
GRIS_METRIC_NAMES = ('gIoU', 'cIoU', 'N-acc', 'T-acc') + GRIS_PR_NAMES


def gris_metrics_from_stats(inter: Sequence[int], union: Sequence[int],
                            gt_no_target: Sequence[bool],
                            pred_no_target: Sequence[bool]
                            ) -> Dict[str, float]:
    """gIoU, cIoU, N-acc, T-acc and Pr@0.7..0.9 (percent) per ReLA.

    Per sample, with I = |pred & gt| and U = |pred | gt| of the masks:

    - no-target sample predicted as no-target: IoU 1, adds 0 to ΣI and ΣU;
    - no-target sample predicted with a target: IoU 0, adds U (the
      predicted area) to ΣU;
    - target sample predicted as no-target: I := 0, so IoU 0; adds U;
    - target sample predicted with a target: IoU = I / U (0 if U is 0).

    ``gIoU`` is the mean per-sample IoU over all samples, ``cIoU`` ΣI / ΣU,
    ``N-acc`` the share of no-target samples predicted as no-target,
    ``T-acc`` the share of target samples not predicted as no-target,
    ``Pr@X`` the share of target samples with IoU >= X. A share with no
    sample to count is reported as 0 (ReLA reports N-acc and T-acc as 0 on
    a set without no-target samples; here T-acc is still computed there).

    Args:
        inter (Sequence[int]): Per-sample intersections.
        union (Sequence[int]): Per-sample unions.
        gt_no_target (Sequence[bool]): Ground-truth no-target flags.
        pred_no_target (Sequence[bool]): Predicted no-target flags.

    Returns:
        dict[str, float]: Keys :data:`GRIS_METRIC_NAMES`, in percent.
    """
    inter_a = np.asarray(inter, dtype=np.int64)
    union_a = np.asarray(union, dtype=np.int64)
    gt_nt = np.asarray(gt_no_target, dtype=bool)
    pred_nt = np.asarray(pred_no_target, dtype=bool)
    if not inter_a.size:
        return OrderedDict((name, 0.0) for name in GRIS_METRIC_NAMES)
    inter_a = np.where(pred_nt | gt_nt, 0, inter_a)
    union_a = np.where(gt_nt & pred_nt, 0, union_a)
    iou = np.where(union_a > 0, inter_a / np.maximum(union_a, 1), 0.0)
    iou = np.where(gt_nt & pred_nt, 1.0, iou)
    target = ~gt_nt

    def share(hit: np.ndarray, of: np.ndarray) -> float:
        return float(hit[of].mean() * 100) if of.any() else 0.0

    total_union = int(union_a.sum())
    metrics: Dict[str, float] = OrderedDict()
    metrics['gIoU'] = float(iou.mean() * 100)
    metrics['cIoU'] = (float(inter_a.sum() / total_union * 100)
                       if total_union else 0.0)
    metrics['N-acc'] = share(pred_nt, gt_nt)
    metrics['T-acc'] = share(~pred_nt, target)
    for name, thr in zip(GRIS_PR_NAMES, GRIS_PR_THRESHOLDS):
        metrics[name] = share(iou >= thr, target)
    return metrics


def predicted_no_target(decision: Any, pred_mask: Any) -> bool:
    """Whether a prediction says "no target".

    The model's decision (``pred_no_target`` of a model with a
    ``NoTargetHead``; ReLA decides with its no-target classifier) when
    there is one, otherwise whether the predicted mask is empty.

    Args:
        decision (bool, optional): The model's no-target decision, or None.
        pred_mask (Tensor | np.ndarray): The predicted mask.

    Returns:
        bool: True for a no-target prediction.
    """
    if decision is not None:
        return bool(decision)
    if hasattr(pred_mask, 'detach'):
        pred_mask = pred_mask.detach().cpu().numpy()
    return not bool((np.asarray(pred_mask) != 0).any())


@METRICS.register_module()
class GRISMetric(RISMetric):
    """gIoU, cIoU, N-acc, T-acc and Pr@0.7/0.8/0.9 of generalized RIS.

    The definitions are those of ReLA's ``ReferEvaluator`` (see
    :func:`gris_metrics_from_stats`), computed at the original image
    resolution like :class:`RISMetric` (whose I/U computation, shape checks,
    per-split naming and ``out_file`` it reuses). Per sample:

    - ground truth no-target: the ``no_target`` metainfo flag
      (``GRefCOCODataset``); a sample without it (e.g. a RefCOCO sample in
      a mixed evaluation) is a target sample;
    - predicted no-target: the model's decision ``pred_no_target`` when the
      sample has one (``RISEncoderDecoder`` with a ``no_target_head``: as
      ReLA, the no-target classifier decides), otherwise an empty predicted
      mask.

    Distributed evaluation gives exactly the single-process numbers
    (``BaseMetric`` gathers the per-sample records and drops the samples
    padded by the sampler).

    Args:
        collect_device (str): 'cpu' or 'gpu'. Defaults to 'cpu'.
        prefix (str, optional): Metric name prefix. Defaults to None.
        collect_dir (str, optional): Temporary directory for collecting
            results on CPU. Defaults to None.
        out_file (str, optional): Per-sentence JSON (adds ``no_target`` and
            ``pred_no_target`` to RISMetric's records). Defaults to None.
    """

    RECORD_KEYS = RISMetric.RECORD_KEYS + ('no_target', 'pred_no_target')

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Store (I, U, ref_id, sent_id, meta) of each sample, where meta
        holds the ground-truth and predicted no-target flags.

        Args:
            data_batch (Any): Unused.
            data_samples (Sequence[dict | SegDataSample]): Model outputs with
                ``pred_sem_seg``, ``gt_sem_seg`` and, for gRefCOCO,
                ``no_target`` (and ``pred_no_target`` from the model).
        """
        start = len(self.results)
        super().process(data_batch, data_samples)
        for k, sample in enumerate(data_samples):
            inter, union, ref_id, sent_id, meta = self.results[start + k]
            pred = self._get(self._get(sample, 'pred_sem_seg'), 'data')
            meta = dict(
                meta,
                no_target=bool(self._get(sample, 'no_target', False)),
                pred_no_target=predicted_no_target(
                    self._get(sample, 'pred_no_target'), pred))
            self.results[start + k] = (inter, union, ref_id, sent_id, meta)

    def compute_metrics(self, results: List[tuple]) -> Dict[str, float]:
        """Compute the metrics from the collected per-sample records.

        Args:
            results (list[tuple]): ``(I, U, ref_id, sent_id, meta)`` per
                sentence.

        Returns:
            dict[str, float]: ``gIoU``, ``cIoU``, ``N-acc``, ``T-acc``,
            ``Pr@0.7``, ``Pr@0.8``, ``Pr@0.9``.
        """
        metas = [r[4] for r in results]
        inter = [r[0] for r in results]
        union = [r[1] for r in results]
        metrics = gris_metrics_from_stats(
            inter, union, [m['no_target'] for m in metas],
            [m['pred_no_target'] for m in metas])
        num_nt = sum(m['no_target'] for m in metas)
        self._log_table(metrics, len(results), self.describe_splits(metas))
        print_log(
            f'gRIS: {num_nt} no-target and {len(results) - num_nt} target '
            'sentences', logger=MMLogger.get_current_instance())
        if self.out_file is not None:
            self.dump_results(self.out_file, inter, union, metas, metrics)
        return dict(metrics)
