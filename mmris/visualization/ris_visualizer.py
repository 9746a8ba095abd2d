# Copyright (c) mmris contributors. All rights reserved.
"""The MMEngine visualizer of referring segmentation samples (ground truth
next to the prediction, sentence and IoU); the drawing itself is
:mod:`mmris.visualization.overlay`."""
from typing import List, Optional, Sequence, Tuple

import mmcv
import numpy as np
import torch
from mmengine.dist import master_only
from mmseg.registry import VISUALIZERS
from mmseg.structures import SegDataSample
from mmseg.visualization import SegLocalVisualizer

from ..evaluation.metrics.ris_metric import compute_iou_stats
from .overlay import (DEFAULT_ALPHA, DEFAULT_MIN_SIZE, GT_COLOR, PRED_COLOR,
                      as_bool_mask, count_caption_lines, render_overlay,
                      upscale_to)


def _as_mask(mask, shape: Tuple[int, int]) -> np.ndarray:
    """Any (h, w) / (1, h, w) tensor, ``PixelData`` or array -> bool
    (h, w)."""
    if hasattr(mask, 'data') and not isinstance(mask,
                                                (np.ndarray, torch.Tensor)):
        mask = mask.data  # PixelData
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    return as_bool_mask(mask, shape)


@VISUALIZERS.register_module()
class RISLocalVisualizer(SegLocalVisualizer):
    """Visualizer of referring segmentation samples.

    :meth:`add_datasample` draws the ground truth (green, left) and the
    prediction (blue, right) of one sentence side by side. Each panel is
    the whole image, scaled up to ``min_size`` when it is smaller, with
    the mask outlined and lightly tinted (the object's own colour stays
    visible, which matters for sentences about colour), and a caption strip
    below it (the sentence; the IoU on the prediction's), both strips of the
    same height. The picture goes to every visual backend
    (``LocalVisBackend``, ``TensorboardVisBackend``, ...) or to
    ``out_file``, so it works in testing, validation and stand-alone.

    Args:
        name (str): Instance name. Defaults to 'visualizer'.
        image (np.ndarray, optional): Image to draw. Defaults to None.
        vis_backends (list, optional): Visual backend configs.
            Defaults to None.
        save_dir (str, optional): Save dir of the backends. Defaults to None.
        alpha (float): Tint opacity. Defaults to 0.3 (light: the outline
            marks the mask, the tint only hints at it).
        min_size (int): Images whose shorter side is smaller are scaled up
            to it (masks with nearest neighbours). Defaults to 320.
        gt_color (Sequence[int]): Ground-truth RGB tint.
            Defaults to (40, 200, 60).
        pred_color (Sequence[int]): Prediction RGB tint.
            Defaults to (30, 144, 255).
        **kwargs: Passed to :class:`SegLocalVisualizer`.
    """

    def __init__(self,
                 name: str = 'visualizer',
                 image: Optional[np.ndarray] = None,
                 vis_backends: Optional[List[dict]] = None,
                 save_dir: Optional[str] = None,
                 alpha: float = DEFAULT_ALPHA,
                 min_size: int = DEFAULT_MIN_SIZE,
                 gt_color: Sequence[int] = GT_COLOR,
                 pred_color: Sequence[int] = PRED_COLOR,
                 **kwargs) -> None:
        kwargs.setdefault('classes', ('background', 'object'))
        kwargs.setdefault('palette', [[0, 0, 0], list(pred_color)])
        super().__init__(
            name=name,
            image=image,
            vis_backends=vis_backends,
            save_dir=save_dir,
            alpha=alpha,
            **kwargs)
        if min_size < 1:
            raise ValueError(f'min_size must be >= 1, got {min_size}')
        self.min_size = int(min_size)
        self.gt_color = tuple(int(c) for c in gt_color)
        self.pred_color = tuple(int(c) for c in pred_color)

    @staticmethod
    def sample_iou(data_sample: SegDataSample) -> Optional[float]:
        """IoU (0-1) of ``pred_sem_seg`` vs ``gt_sem_seg``, or None."""
        if 'pred_sem_seg' not in data_sample or \
                'gt_sem_seg' not in data_sample:
            return None
        inter, union = compute_iou_stats(data_sample.pred_sem_seg.data,
                                         data_sample.gt_sem_seg.data)
        return inter / (union + 1e-6)

    def draw_sample(self,
                    image: np.ndarray,
                    data_sample: SegDataSample,
                    draw_gt: bool = True,
                    draw_pred: bool = True) -> np.ndarray:
        """The picture :meth:`add_datasample` stores (RGB uint8).

        Args:
            image (np.ndarray): Original RGB image (h, w, 3).
            data_sample (SegDataSample): With ``gt_sem_seg`` and/or
                ``pred_sem_seg`` at the original resolution and the
                sentence in ``metainfo['text']``.
            draw_gt (bool): Draw the ground-truth panel. Defaults to True.
            draw_pred (bool): Draw the prediction panel. Defaults to True.

        Returns:
            np.ndarray: ``(H + caption, W * panels + 2 * (panels - 1), 3)``
            where ``(H, W)`` is the image scaled up to ``min_size``, or the
            bare image when there is nothing to draw.
        """
        text = data_sample.metainfo.get('text', '')
        # gRefCOCO: "no target" ground truth / predictions say so (no IoU
        # for a no-target ground truth: it is right or wrong)
        gt_nt = bool(data_sample.metainfo.get('no_target', False))
        pred_nt = bool(data_sample.metainfo.get('pred_no_target', False))
        panels = []  # (mask, colour, caption)
        if draw_gt and 'gt_sem_seg' in data_sample:
            panels.append((data_sample.gt_sem_seg, self.gt_color,
                           f'GT{" (no target)" if gt_nt else ""}: {text}'))
        if draw_pred and 'pred_sem_seg' in data_sample:
            iou = None if gt_nt else self.sample_iou(data_sample)
            label = 'pred (no target)' if pred_nt else 'pred'
            caption = f'{label}: {text}' if iou is None else \
                f'{label} (IoU {iou * 100:.1f}): {text}'
            panels.append((data_sample.pred_sem_seg, self.pred_color, caption))
        if not panels:
            return image
        h, w = image.shape[:2]
        big, _ = upscale_to(image, self.min_size)
        size = (big.shape[1], big.shape[0])
        lines = max(
            count_caption_lines(caption, *size) for _, _, caption in panels)
        drawn = [
            render_overlay(
                image,
                _as_mask(mask, (h, w)),
                caption,
                color,
                self.alpha,
                self.min_size,
                caption_lines=lines) for mask, color, caption in panels
        ]
        if len(drawn) > 1:  # thin white separator
            sep = np.full((drawn[0].shape[0], 2, 3), 255, np.uint8)
            drawn = [drawn[0], sep] + drawn[1:]
        return np.concatenate(drawn, axis=1)

    @master_only
    def add_datasample(self,
                       name: str,
                       image: np.ndarray,
                       data_sample: Optional[SegDataSample] = None,
                       draw_gt: bool = True,
                       draw_pred: bool = True,
                       show: bool = False,
                       wait_time: float = 0,
                       out_file: Optional[str] = None,
                       step: int = 0,
                       with_labels: Optional[bool] = True) -> None:
        """Draw one sentence's ground truth vs prediction and store it.

        Args:
            name (str): Image identifier (the backends' file name stem).
            image (np.ndarray): Original RGB image (h, w, 3).
            data_sample (SegDataSample, optional): See :meth:`draw_sample`.
                Defaults to None (the bare image).
            draw_gt (bool): Defaults to True.
            draw_pred (bool): Defaults to True.
            show (bool): Show it in a window. Defaults to False.
            wait_time (float): Seconds to show it. Defaults to 0.
            out_file (str, optional): Write it there (instead of the
                backends). Defaults to None.
            step (int): Global step for the backends. Defaults to 0.
            with_labels (bool, optional): Unused (kept for the
                :class:`SegLocalVisualizer` signature). Defaults to True.
        """
        drawn = image if data_sample is None else self.draw_sample(
            image, data_sample, draw_gt, draw_pred)
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            mmcv.imwrite(mmcv.rgb2bgr(drawn), out_file)
        else:
            self.add_image(name, drawn, step)
