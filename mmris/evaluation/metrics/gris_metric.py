# Copyright (c) mmris contributors. All rights reserved.
"""Generalized referring segmentation metric (gRefCOCO), with the
definitions of ReLA's evaluator (henghuiding/ReLA,
gres_model/evaluation/refer_evaluation.py)."""
import warnings
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from mmengine.logging import MMLogger, print_log
from mmseg.registry import METRICS

from .ris_metric import RISMetric

#: Precision thresholds of ReLA (IoU >= threshold, target samples only).
GRIS_PR_THRESHOLDS = (0.7, 0.8, 0.9)
GRIS_PR_NAMES = tuple(f'Pr@{t:.1f}' for t in GRIS_PR_THRESHOLDS)
GRIS_METRIC_NAMES = ('gIoU', 'cIoU', 'N-acc', 'T-acc') + GRIS_PR_NAMES
#: Where the masks are compared: the original image ('original', the RIS
#: convention) or ReLA's resized network input ('rela').
RESOLUTIONS = ('original', 'rela')
#: What a target sample predicted as "no target" adds to the cIoU union:
#: its predicted mask with the ground truth ('prediction', ReLA) or the
#: ground truth only ('empty': the emptied mask, mmris before 2026-12).
NO_TARGET_UNIONS = ('prediction', 'empty')
#: ReLA's input size (configs/referring_R50.yaml ``INPUT.IMAGE_SIZE``).
RELA_SIZE = 480


def gris_sample_iou(inter: Sequence[int], union: Sequence[int],
                    gt_no_target: Sequence[bool],
                    pred_no_target: Sequence[bool]) -> np.ndarray:
    """Per-sample IoU as ReLA counts it in gIoU (see
    :func:`gris_metrics_from_stats`): 1 for a no-target sample predicted as
    no-target, 0 for any other no-target decision error, I / U otherwise.

    Args:
        inter (Sequence[int]): Per-sample intersections.
        union (Sequence[int]): Per-sample unions.
        gt_no_target (Sequence[bool]): Ground-truth no-target flags.
        pred_no_target (Sequence[bool]): Predicted no-target flags.

    Returns:
        np.ndarray: float64 IoU per sample.
    """
    inter_a = np.asarray(inter, dtype=np.int64)
    union_a = np.asarray(union, dtype=np.int64)
    gt_nt = np.asarray(gt_no_target, dtype=bool)
    pred_nt = np.asarray(pred_no_target, dtype=bool)
    inter_a = np.where(pred_nt | gt_nt, 0, inter_a)
    union_a = np.where(gt_nt & pred_nt, 0, union_a)
    iou = np.where(union_a > 0, inter_a / np.maximum(union_a, 1), 0.0)
    return np.where(gt_nt & pred_nt, 1.0, iou)


def _nearest_index(size_in: int, size_out: int) -> np.ndarray:
    """Source pixel of each output pixel in Pillow's nearest-neighbour
    resize (``ImagingScaleAffine``): the centre ``(i + 0.5) * in / out``,
    accumulated step by step in float64 as Pillow does, truncated."""
    step = size_in / size_out
    pos = np.add.accumulate(
        np.concatenate([[step * 0.5],
                        np.full(size_out - 1, step)]))
    return np.minimum(pos.astype(np.int64), size_in - 1)


def resize_nearest(mask: Any, size: int) -> np.ndarray:
    """Nearest-neighbour resize of a (h, w) or (1, h, w) mask to
    ``size x size`` exactly as PIL's ``NEAREST`` (what detectron2's
    ``ResizeTransform`` applies to segmentation maps, hence what ReLA's
    ``T.Resize`` does): output pixel ``i`` reads the input pixel under its
    centre, ``(i + 0.5) * in / size``, with Pillow's float64 accumulation.

    Args:
        mask (Tensor | np.ndarray): The mask.
        size (int): Output side.

    Returns:
        np.ndarray: The (size, size) mask, same dtype.
    """
    if hasattr(mask, 'detach'):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[0] == 1:
        mask = mask[0]
    rows = _nearest_index(mask.shape[0], size)
    cols = _nearest_index(mask.shape[1], size)
    return mask[rows][:, cols]


def rela_ground_truth(segmentation: Any,
                      height: int,
                      width: int,
                      size: int = RELA_SIZE) -> np.ndarray:
    """The ground truth ReLA scores against, at its ``size x size`` input.

    ReLA resizes the image to ``size x size`` (aspect ratio not kept,
    gres_model/data/dataset_mappers/refcoco_mapper.py ``T.Resize``);
    detectron2 scales the polygon coordinates (x by size / width, y by
    size / height) and the mapper rasterises them with pycocotools. As
    ReLA's loader (gres_model/data/datasets/grefcoco.py), polygons with an
    odd number of coordinates or fewer than 3 points are dropped. An RLE
    (not used by COCO for non-crowd objects, which ReLA's pipeline cannot
    read) is decoded at the original size and resized with
    :func:`resize_nearest`.

    Args:
        segmentation (list | dict): Polygons or an RLE, at the original size.
        height (int): Original image height.
        width (int): Original image width.
        size (int): ReLA's input side. Defaults to 480.

    Returns:
        np.ndarray: uint8 (size, size) mask with values {0, 1}.
    """
    from mmris.datasets.transforms.loading import (check_segmentation,
                                                   decode_segmentation)
    check_segmentation(segmentation, height, width)
    if isinstance(segmentation, dict):
        return resize_nearest(
            decode_segmentation(segmentation, height, width), size)
    from pycocotools import mask as mask_utils
    polys = [[
        float(v) * (size / width if k % 2 == 0 else size / height)
        for k, v in enumerate(poly)
    ] for poly in segmentation if len(poly) % 2 == 0 and len(poly) >= 6]
    if not polys:
        return np.zeros((size, size), np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        rles = mask_utils.frPyObjects(polys, size, size)
        return mask_utils.decode(mask_utils.merge(rles)).astype(np.uint8)


def gris_metrics_from_stats(
        inter: Sequence[int], union: Sequence[int],
        gt_no_target: Sequence[bool],
        pred_no_target: Sequence[bool]) -> Dict[str, float]:
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
    iou = gris_sample_iou(inter_a, union_a, gt_nt, pred_nt)
    inter_a = np.where(pred_nt | gt_nt, 0, inter_a)
    union_a = np.where(gt_nt & pred_nt, 0, union_a)
    target = ~gt_nt

    def share(hit: np.ndarray, of: np.ndarray) -> float:
        return float(hit[of].mean() * 100) if of.any() else 0.0

    total_union = int(union_a.sum())
    metrics: Dict[str, float] = OrderedDict()
    metrics['gIoU'] = float(iou.mean() * 100)
    metrics['cIoU'] = (
        float(inter_a.sum() / total_union * 100) if total_union else 0.0)
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
    :func:`gris_metrics_from_stats`). Per sample:

    - ground truth no-target: the ``no_target`` metainfo flag
      (``GRefCOCODataset``); a sample without it (e.g. a RefCOCO sample in
      a mixed evaluation) is a target sample;
    - predicted no-target: the model's decision ``pred_no_target`` when the
      sample has one (``RISEncoderDecoder`` with a ``no_target_head``: as
      ReLA, the no-target classifier decides), otherwise an empty predicted
      mask;
    - the cIoU union of a target sample predicted as no-target: with
      ``no_target_union='prediction'`` (default, as ReLA, whose evaluator
      scores the mask it predicted whatever its classifier says) the mask
      the model predicted before its decision (``target_pred_sem_seg``)
      joined with the ground truth; with ``'empty'`` the ground truth only.

    The masks are compared at the original image size (``resolution=
    'original'``, the RIS convention, default) or, as ReLA, at its
    ``rela_size x rela_size`` resized input (``'rela'``: see
    :func:`rela_ground_truth`; the prediction is resized with
    :func:`resize_nearest`; needs ``segmentation`` in the sample's
    metainfo, which ``PackRISInputs`` puts there). The protocol is printed
    with every table and written to ``out_file``.

    Distributed evaluation gives exactly the single-process numbers
    (``BaseMetric`` gathers the per-sample records and drops the samples
    padded by the sampler).

    Args:
        collect_device (str): 'cpu' or 'gpu'. Defaults to 'cpu'.
        prefix (str, optional): Metric name prefix. Defaults to None.
        collect_dir (str, optional): Temporary directory for collecting
            results on CPU. Defaults to None.
        out_file (str, optional): Per-sentence JSON: RISMetric's records
            plus ``no_target``, ``pred_no_target`` and ``giou`` (the
            sentence's contribution to gIoU: 1 for a correct no-target
            decision, whose I / U is 0), and the protocol. Defaults to None.
        resolution (str): 'original' or 'rela'. Defaults to 'original'.
        rela_size (int): ReLA's input side. Defaults to 480.
        no_target_union (str): 'prediction' or 'empty'.
            Defaults to 'prediction'.
    """

    RECORD_KEYS = RISMetric.RECORD_KEYS + ('no_target', 'pred_no_target',
                                           'giou')

    def __init__(self,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None,
                 out_file: Optional[str] = None,
                 resolution: str = 'original',
                 rela_size: int = RELA_SIZE,
                 no_target_union: str = 'prediction') -> None:
        super().__init__(
            collect_device=collect_device,
            prefix=prefix,
            collect_dir=collect_dir,
            out_file=out_file)
        if resolution not in RESOLUTIONS:
            raise ValueError(f'resolution must be one of {RESOLUTIONS}, got '
                             f'{resolution!r}')
        if no_target_union not in NO_TARGET_UNIONS:
            raise ValueError(f'no_target_union must be one of '
                             f'{NO_TARGET_UNIONS}, got {no_target_union!r}')
        if not isinstance(rela_size, int) or rela_size < 1:
            raise ValueError(
                f'rela_size must be a positive int, got {rela_size!r}')
        self.resolution = resolution
        self.rela_size = rela_size
        self.no_target_union = no_target_union

    @property
    def protocol(self) -> str:
        """How the numbers are computed, printed with every table."""
        where = ('original image size' if self.resolution == 'original' else
                 f'ReLA, {self.rela_size}x{self.rela_size} resized input')
        union = ('prediction (ReLA)' if self.no_target_union == 'prediction'
                 else 'empty mask (mmris before 2026-12)')
        return f'{where}; no-target union: {union}'

    def _masks(self, sample: Any) -> tuple:
        """Prediction, ground truth and the mask kept by a no-target
        decision (or None), at the protocol's resolution."""
        pred = self._get(self._get(sample, 'pred_sem_seg'), 'data')
        gt = self._get(self._get(sample, 'gt_sem_seg'), 'data')
        kept = self._get(self._get(sample, 'target_pred_sem_seg'), 'data')
        if self.resolution == 'original':
            return pred, gt, kept
        seg = self._get(sample, 'segmentation')
        shape = self._get(sample, 'ori_shape')
        if seg is None or shape is None:
            raise KeyError(
                "GRISMetric(resolution='rela') rasterises the ground truth "
                'at ReLA\'s input size from the annotation: every sample '
                "needs 'segmentation' and 'ori_shape' in its metainfo "
                "(PackRISInputs' default meta_keys)")
        size = self.rela_size
        gt = rela_ground_truth(seg, int(shape[0]), int(shape[1]), size)
        kept = None if kept is None else resize_nearest(kept, size)
        return resize_nearest(pred, size), gt, kept

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Store (I, U, ref_id, sent_id, meta) of each sample, where meta
        holds the ground-truth and predicted no-target flags.

        Args:
            data_batch (Any): Unused.
            data_samples (Sequence[dict | SegDataSample]): Model outputs with
                ``pred_sem_seg``, ``gt_sem_seg`` and, for gRefCOCO,
                ``no_target`` (and ``pred_no_target`` from the model, with
                ``target_pred_sem_seg`` when it says "no target").
        """
        for sample in data_samples:
            original = self._get(self._prediction_and_truth(sample)[0], 'data')
            pred, gt, kept = self._masks(sample)
            inter, union = self._iou_stats(sample, pred, gt)
            if kept is not None and self.no_target_union == 'prediction':
                union = self._iou_stats(sample, kept, gt)[1]
            meta = {k: self._get(sample, k) for k in RISMetric.RECORD_KEYS}
            meta.update(
                no_target=bool(self._get(sample, 'no_target', False)),
                pred_no_target=predicted_no_target(
                    self._get(sample, 'pred_no_target'), original))
            self.results.append(
                (inter, union, meta['ref_id'], meta['sent_id'], meta))

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
        gt_nt = [m['no_target'] for m in metas]
        pred_nt = [m['pred_no_target'] for m in metas]
        metrics = gris_metrics_from_stats(inter, union, gt_nt, pred_nt)
        num_nt = sum(gt_nt)
        self._log_table(metrics, len(results), self.describe_splits(metas),
                        self.protocol)
        print_log(
            f'gRIS: {num_nt} no-target and {len(results) - num_nt} target '
            'sentences',
            logger=MMLogger.get_current_instance())
        if self.out_file is not None:
            giou = gris_sample_iou(inter, union, gt_nt, pred_nt)
            metas = [dict(m, giou=float(g)) for m, g in zip(metas, giou)]
            self.dump_results(self.out_file, inter, union, metas, metrics,
                              self.protocol)
        return dict(metrics)
