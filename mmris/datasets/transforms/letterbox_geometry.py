# Copyright (c) mmris contributors. All rights reserved.
"""Letterbox geometry of the official RIS code (kkakkkka/ETRIS and
jiaqihuang01/DETRIS, utils/dataset.py), on numpy and OpenCV only.

Nothing of mmris (or torch) is imported here: :class:`.LetterboxAffine`
(training, evaluation, ``inference_model``) and the torch-free ONNX runtime
(:mod:`mmris.deployment.ort_inference`, which loads this file by path) share
it.
"""
from typing import Sequence, Tuple, Union

import cv2
import numpy as np

#: CLIP (OpenAI) pixel mean, RGB, 0-255 scale. Also the letterbox border.
CLIP_MEAN = (0.48145466 * 255, 0.4578275 * 255, 0.40821073 * 255)
#: CLIP (OpenAI) pixel std, RGB, 0-255 scale.
CLIP_STD = (0.26862954 * 255, 0.26130258 * 255, 0.27577711 * 255)
#: The border value written in the official configs (CLIP mean, rounded).
CLIP_BORDER = (122.77, 116.75, 104.09)


def get_letterbox_affine(
        ori_shape: Sequence[int],
        size: Union[int, Sequence[int]]) -> Tuple[np.ndarray, np.ndarray]:
    """Forward and inverse letterbox affine matrices.

    scale = min(S_h / h, S_w / w); the image is scaled and centred. The
    forward matrix maps (0, 0), (w, 0), (0, h) to the scaled, centred
    corners; the inverse one is built from the same points swapped
    (``cv2.getAffineTransform(dst, src)``), as the official code.

    Args:
        ori_shape (Sequence[int]): Original (h, w).
        size (int | Sequence[int]): Output side S or (S_h, S_w).

    Returns:
        tuple[np.ndarray, np.ndarray]: ``affine`` and ``inv_affine``,
        float64 arrays of shape (2, 3).
    """
    ori_h, ori_w = int(ori_shape[0]), int(ori_shape[1])
    if ori_h <= 0 or ori_w <= 0:
        raise ValueError(f'Invalid image shape {tuple(ori_shape)}')
    inp_h, inp_w = (size, size) if isinstance(size, int) else size
    scale = min(inp_h / ori_h, inp_w / ori_w)
    new_h, new_w = ori_h * scale, ori_w * scale
    bias_x, bias_y = (inp_w - new_w) / 2., (inp_h - new_h) / 2.
    src = np.array([[0, 0], [ori_w, 0], [0, ori_h]], np.float32)
    dst = np.array(
        [[bias_x, bias_y], [new_w + bias_x, bias_y], [bias_x, new_h + bias_y]],
        np.float32)
    affine = cv2.getAffineTransform(src, dst)
    inv_affine = cv2.getAffineTransform(dst, src)
    return affine, inv_affine


def letterbox_image(
    img: np.ndarray,
    size: Union[int, Sequence[int]],
    border: Sequence[float] = CLIP_BORDER
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scale and centre ``img`` into the letterbox canvas.

    ``cv2.warpAffine(img, affine, (S_w, S_h), INTER_CUBIC,
    borderValue=border)``, dtype kept (as the official code).

    Args:
        img (np.ndarray): (h, w, 3) image.
        size (int | Sequence[int]): Output side S or (S_h, S_w).
        border (Sequence[float]): Border fill, RGB. Defaults to
            :data:`CLIP_BORDER`.

    Returns:
        tuple[np.ndarray, np.ndarray, np.ndarray]: The (S_h, S_w, 3) image,
        ``affine`` and ``inv_affine`` (see :func:`get_letterbox_affine`).
    """
    out_h, out_w = (size, size) if isinstance(size, int) else size
    affine, inv_affine = get_letterbox_affine(img.shape[:2], (out_h, out_w))
    warped = cv2.warpAffine(
        img,
        affine, (int(out_w), int(out_h)),
        flags=cv2.INTER_CUBIC,
        borderValue=tuple(float(b) for b in border))
    return warped, affine, inv_affine
