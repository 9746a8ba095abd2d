# Copyright (c) mmris contributors. All rights reserved.
"""Overlays of referring masks: tint, contour, sentence and IoU."""
import textwrap
from typing import List, Optional, Sequence, Tuple

import cv2
import mmcv
import numpy as np
import torch
from mmengine.dist import master_only
from mmseg.registry import VISUALIZERS
from mmseg.structures import SegDataSample
from mmseg.visualization import SegLocalVisualizer

from ..evaluation.metrics.ris_metric import compute_iou_stats

#: Tint of ground-truth masks (RGB, green).
GT_COLOR = (40, 200, 60)
#: Tint of predicted masks (RGB, dodger blue).
PRED_COLOR = (30, 144, 255)


def _as_mask(mask, shape: Tuple[int, int]) -> np.ndarray:
    """Any (h, w) / (1, h, w) tensor or array -> bool (h, w)."""
    if hasattr(mask, 'data') and not isinstance(mask,
                                                (np.ndarray, torch.Tensor)):
        mask = mask.data  # PixelData
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.ndim == 3:
        mask = mask[0]
    if mask.shape != tuple(shape):
        raise ValueError(f'mask shape {mask.shape} differs from the image '
                         f'shape {tuple(shape)}')
    return mask != 0


def _text_layout(text: str, width: int,
                 height: int) -> Tuple[List[str], float, int, int]:
    """Wrap ``text`` to ``width`` pixels; returns lines, font scale,
    thickness and line height."""
    scale = float(np.clip(min(width, height) / 600., 0.3, 1.0))
    thickness = 1 if scale < 0.7 else 2
    (char_w, char_h), base = cv2.getTextSize('n', cv2.FONT_HERSHEY_SIMPLEX,
                                             scale, thickness)
    chars = max(4, int((width - 6) / max(char_w * 1.15, 1)))
    lines = textwrap.wrap(text, chars) or ['']
    line_h = int(char_h * 1.6) + base
    return lines, scale, thickness, line_h


def _ascii(text: str) -> str:
    # OpenCV's Hershey font has ASCII glyphs only
    return text.encode('ascii', 'replace').decode('ascii')


def count_caption_lines(text: str, width: int, height: int) -> int:
    """Number of lines :func:`draw_caption` needs for ``text`` under an
    image of ``width`` x ``height`` pixels."""
    return len(_text_layout(_ascii(text), width, height)[0]) if text else 0


def draw_caption(image: np.ndarray,
                 text: str,
                 num_lines: Optional[int] = None) -> np.ndarray:
    """Append a caption strip with ``text`` below ``image``.

    The image itself is left whole (nothing of it is covered): the text is
    written in white on a dark strip of its own under the picture.

    Args:
        image (np.ndarray): RGB uint8 (h, w, 3); not modified.
        text (str): Caption (wrapped to the image width; OpenCV's Hershey
            font, so non-ASCII characters print as '?').
        num_lines (int, optional): Height of the strip in lines, at least
            the lines ``text`` needs; pass the same value to the panels of
            one picture so their strips line up. Defaults to None (as many
            as ``text`` needs).

    Returns:
        np.ndarray: RGB uint8 (h + strip height, w, 3).
    """
    h, w = image.shape[:2]
    lines, scale, thick, line_h = _text_layout(_ascii(text), w, h)
    num_lines = max(len(lines), num_lines or 0)
    strip = np.full((line_h * num_lines + 6, w, 3), 32, np.uint8)
    for i, line in enumerate(lines):
        y = 3 + line_h * (i + 1) - max(2, line_h // 4)
        cv2.putText(strip, line, (3, y), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), thick, cv2.LINE_AA)
    return np.concatenate([image, strip], axis=0)


def draw_text_banner(image: np.ndarray,
                     text: str,
                     max_lines: int = 4) -> np.ndarray:
    """Write ``text`` in white on a dark translucent banner at the top
    (covers the top of the image; :func:`draw_caption` does not).

    Args:
        image (np.ndarray): RGB uint8 (h, w, 3); not modified.
        text (str): Text to write (wrapped to the image width).
        max_lines (int): Lines kept at most (the last one ends in '...').
            Defaults to 4.

    Returns:
        np.ndarray: A new RGB uint8 image of the same shape.
    """
    out = image.copy()
    h, w = out.shape[:2]
    if not text:
        return out
    lines, scale, thick, line_h = _text_layout(_ascii(text), w, h)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][:max(1, len(lines[-1]) - 3)] + '...'
    box_h = min(h, line_h * len(lines) + 4)
    region = out[:box_h].astype(np.float32)
    out[:box_h] = (region * 0.35).astype(np.uint8)
    for i, line in enumerate(lines):
        y = 2 + line_h * (i + 1) - max(2, line_h // 4)
        cv2.putText(out, line, (3, y), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), thick, cv2.LINE_AA)
    return out


def draw_referring_mask(image: np.ndarray,
                        mask,
                        color: Sequence[int] = PRED_COLOR,
                        alpha: float = 0.5,
                        contour: bool = True,
                        text: Optional[str] = None,
                        caption_lines: Optional[int] = None) -> np.ndarray:
    """Tint the mask region of ``image``, outline it and caption it.

    Args:
        image (np.ndarray): RGB uint8 (h, w, 3); not modified.
        mask (np.ndarray | torch.Tensor | PixelData): Binary mask (h, w) or
            (1, h, w) at the image resolution (non-zero = object).
        color (Sequence[int]): RGB tint. Defaults to :data:`PRED_COLOR`.
        alpha (float): Tint opacity in [0, 1]. Defaults to 0.5.
        contour (bool): Draw the mask outline in ``color`` (on a dark halo).
            Defaults to True.
        text (str, optional): Written on a caption strip below the image
            (see :func:`draw_caption`), so no pixel of the image is hidden.
            Defaults to None (no strip).
        caption_lines (int, optional): Strip height in lines (see
            :func:`draw_caption`). Defaults to None.

    Returns:
        np.ndarray: The overlay, RGB uint8: (h, w, 3) without ``text``,
        (h + strip height, w, 3) with it.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'image must be (h, w, 3), got {image.shape}')
    if not 0 <= alpha <= 1:
        raise ValueError(f'alpha must be in [0, 1], got {alpha}')
    h, w = image.shape[:2]
    mask = _as_mask(mask, (h, w))
    out = image.astype(np.float32)
    color_arr = np.asarray(color, dtype=np.float32).reshape(1, 3)
    out[mask] = out[mask] * (1 - alpha) + color_arr * alpha
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    if contour and mask.any():
        contours, _ = cv2.findContours(
            mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        thickness = max(2, int(round(min(h, w) / 200)))
        # dark halo under the coloured line: visible on any background
        cv2.drawContours(out, contours, -1, (0, 0, 0), thickness + 1,
                         cv2.LINE_AA)
        cv2.drawContours(out, contours, -1, tuple(int(c) for c in color),
                         thickness, cv2.LINE_AA)
    if text:
        out = draw_caption(out, text, caption_lines)
    return out


def upscale_to(image: np.ndarray, min_size: int) -> Tuple[np.ndarray, float]:
    """Scale ``image`` up (bilinear) so its shorter side is ``min_size``.

    Returns:
        tuple: The (possibly) enlarged image and the factor (>= 1).
    """
    h, w = image.shape[:2]
    factor = max(1.0, min_size / max(1, min(h, w)))
    if factor == 1.0:
        return image, factor
    size = (int(round(w * factor)), int(round(h * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR), factor


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
                 alpha: float = 0.3,
                 min_size: int = 320,
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
            panels.append((data_sample.pred_sem_seg, self.pred_color,
                           caption))
        if not panels:
            return image
        h, w = image.shape[:2]
        big, _ = upscale_to(image, self.min_size)
        size = (big.shape[1], big.shape[0])
        lines = max(
            count_caption_lines(caption, *size) for _, _, caption in panels)
        drawn = []
        for mask, color, caption in panels:
            mask = _as_mask(mask, (h, w)).astype(np.uint8)
            if size != (w, h):
                mask = cv2.resize(
                    mask, size, interpolation=cv2.INTER_NEAREST)
            drawn.append(
                draw_referring_mask(
                    big,
                    mask,
                    color,
                    self.alpha,
                    text=caption,
                    caption_lines=lines))
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
