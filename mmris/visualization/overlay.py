# Copyright (c) mmris contributors. All rights reserved.
"""Overlays of referring masks: tint, contour and caption strip.

numpy and OpenCV only, nothing of mmris (or torch) imported: the
visualizer, ``tools/demo.py``, the web demo and the torch-free
``tools/deployment/onnx_demo.py`` (which loads this file by path) draw the
same pictures.
"""
import textwrap
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

#: Tint of ground-truth masks (RGB, green).
GT_COLOR = (40, 200, 60)
#: Tint of predicted masks (RGB, dodger blue).
PRED_COLOR = (30, 144, 255)


def _as_mask(mask, shape: Tuple[int, int]) -> np.ndarray:
    """Any (h, w) / (1, h, w) array, tensor or ``PixelData`` -> bool (h, w)
    (duck-typed: this module does not import torch)."""
    def is_tensor(x) -> bool:
        return type(x).__module__.split('.')[0] == 'torch'

    if not (isinstance(mask, np.ndarray) or is_tensor(mask)) and hasattr(
            mask, 'data'):
        mask = mask.data  # PixelData
    if is_tensor(mask):
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
