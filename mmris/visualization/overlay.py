# Copyright (c) mmris contributors. All rights reserved.
"""Overlays of referring masks: tint, outline and a caption strip.

One renderer for every picture mmris draws: ``tools/test.py --show-dir``
(:class:`mmris.visualization.RISLocalVisualizer`), ``tools/demo.py``, the
web demo and the ONNX demo (``tools/deployment/onnx_demo.py``, which runs
without torch). This module therefore needs only numpy and OpenCV and
imports nothing of mmris: it can be loaded by file path.

:func:`render_overlay` is the picture with the ``--show-dir`` settings:
small images scaled up to a 320 px shorter side, the mask lightly tinted
(alpha 0.3, so the object's own colour stays visible) and outlined, the
sentence on a caption strip below the image, never over it.
"""
import textwrap
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

#: Tint of ground-truth masks (RGB, green).
GT_COLOR = (40, 200, 60)
#: Tint of predicted masks (RGB, dodger blue).
PRED_COLOR = (30, 144, 255)
#: Tint opacity: light, the outline marks the mask.
DEFAULT_ALPHA = 0.3
#: Shorter side small images are scaled up to.
DEFAULT_MIN_SIZE = 320


def as_bool_mask(mask, shape: Tuple[int, int]) -> np.ndarray:
    """A (h, w) or (1, h, w) mask (array or anything ``np.asarray`` takes)
    as bool (h, w), checked against the image ``shape``."""
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[0] == 1:
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
                        alpha: float = DEFAULT_ALPHA,
                        contour: bool = True,
                        text: Optional[str] = None,
                        caption_lines: Optional[int] = None) -> np.ndarray:
    """Tint the mask region of ``image``, outline it and caption it.

    Args:
        image (np.ndarray): RGB uint8 (h, w, 3); not modified.
        mask (np.ndarray): Binary mask (h, w) or (1, h, w) at the image
            resolution (non-zero = object); anything ``np.asarray`` takes
            (a CPU tensor too).
        color (Sequence[int]): RGB tint. Defaults to :data:`PRED_COLOR`.
        alpha (float): Tint opacity in [0, 1]. Defaults to
            :data:`DEFAULT_ALPHA` (0.3).
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
    mask = as_bool_mask(mask, (h, w))
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


def render_overlay(image: np.ndarray,
                   mask,
                   text: Optional[str] = None,
                   color: Sequence[int] = PRED_COLOR,
                   alpha: float = DEFAULT_ALPHA,
                   min_size: int = DEFAULT_MIN_SIZE,
                   caption_lines: Optional[int] = None) -> np.ndarray:
    """The overlay of one mask as ``tools/test.py --show-dir`` draws it.

    The image is scaled up (bilinear; the mask with nearest neighbours) so
    that its shorter side is at least ``min_size``, the mask is tinted with
    ``alpha`` and outlined, and ``text`` goes on a caption strip below.

    Args:
        image (np.ndarray): RGB uint8 (h, w, 3); not modified.
        mask (np.ndarray): Binary (h, w) or (1, h, w) at the image size.
        text (str, optional): Caption. Defaults to None (no strip).
        color (Sequence[int]): RGB tint. Defaults to :data:`PRED_COLOR`.
        alpha (float): Tint opacity in [0, 1]. Defaults to
            :data:`DEFAULT_ALPHA`.
        min_size (int): Shorter side of the drawn image (>= 1; larger
            images are kept as they are). Defaults to
            :data:`DEFAULT_MIN_SIZE`.
        caption_lines (int, optional): Strip height in lines (see
            :func:`draw_caption`). Defaults to None.

    Returns:
        np.ndarray: RGB uint8 (H + strip height, W, 3), where (H, W) is the
        image size after scaling.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'image must be (h, w, 3), got {image.shape}')
    if min_size < 1:
        raise ValueError(f'min_size must be >= 1, got {min_size}')
    h, w = image.shape[:2]
    mask = as_bool_mask(mask, (h, w)).astype(np.uint8)
    big, _ = upscale_to(image, min_size)
    if big.shape[:2] != (h, w):
        mask = cv2.resize(
            mask, (big.shape[1], big.shape[0]),
            interpolation=cv2.INTER_NEAREST)
    return draw_referring_mask(
        big, mask, color, alpha, text=text, caption_lines=caption_lines)
