# Copyright (c) mmris contributors. All rights reserved.
"""Letterbox affine warp of the official RIS code (kkakkkka/ETRIS and
jiaqihuang01/DETRIS, utils/dataset.py)."""
from typing import Sequence, Union

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

# The geometry is torch-free (the ONNX runtime uses the same file).
from .letterbox_geometry import (CLIP_BORDER, CLIP_MEAN, CLIP_STD,
                                 get_letterbox_affine, letterbox_image)

__all__ = [
    'LetterboxAffine', 'get_letterbox_affine', 'CLIP_MEAN', 'CLIP_STD',
    'CLIP_BORDER'
]


@TRANSFORMS.register_module()
class LetterboxAffine(BaseTransform):
    """Scale and centre the image into an S x S canvas with an affine warp.

    Image: ``cv2.warpAffine(img, M, (S, S), INTER_CUBIC,
    borderValue=border)``, dtype kept (uint8). Mask (training): the
    {0, 1} ``gt_seg_map`` is turned into 0/255 uint8, warped with
    ``INTER_LINEAR`` and border 0, then divided by 255 into a *soft* float32
    ``gt_mask`` (not re-binarised, as the official
    utils/dataset.py).

    Required Keys:

    - img (np.ndarray): (h, w, 3)
    - gt_seg_map (np.ndarray, optional): (h, w) {0, 1}

    Modified Keys:

    - img: (S_h, S_w, 3)
    - img_shape: (S_h, S_w)
    - gt_seg_map: removed when it was warped and ``keep_gt_seg_map`` is
      False

    Added Keys:

    - ori_shape (tuple): (h, w) of the input image
    - affine (np.ndarray): float64 (2, 3), original -> letterbox
    - inv_affine (np.ndarray): float64 (2, 3), letterbox -> original
    - scale_factor (tuple): (scale, scale)
    - gt_mask (np.ndarray): float32 (S_h, S_w) in [0, 1] (only when
      ``warp_mask`` and ``gt_seg_map`` is present)

    Args:
        size (int | Sequence[int], optional): Output side S, or (S_h, S_w).
            Defaults to None: the ``input_size`` that ``RefCOCODataset``
            puts in the results (its ``img_size``).
        border (Sequence[float]): Border fill, RGB. Defaults to the CLIP mean
            in 0-255 scale ``(122.77, 116.75, 104.09)``.
        warp_mask (bool): Warp ``gt_seg_map`` into ``gt_mask`` (training).
            Defaults to True.
        keep_gt_seg_map (bool): Keep the original-resolution ``gt_seg_map``
            after warping it (it is then packed as ``gt_sem_seg``). Defaults
            to False. When ``warp_mask`` is False ``gt_seg_map`` is always
            kept (evaluation).
    """

    def __init__(self,
                 size: Union[int, Sequence[int], None] = None,
                 border: Sequence[float] = CLIP_BORDER,
                 warp_mask: bool = True,
                 keep_gt_seg_map: bool = False) -> None:
        self.size = None if size is None else self._as_size(size)
        if len(border) != 3:
            raise ValueError(f'border must have 3 values (RGB), got {border}')
        self.border = tuple(float(b) for b in border)
        self.warp_mask = warp_mask
        self.keep_gt_seg_map = keep_gt_seg_map

    @staticmethod
    def _as_size(size) -> tuple:
        if isinstance(size, int):
            size = (size, size)
        size = tuple(int(s) for s in size)
        if len(size) != 2 or min(size) <= 0:
            raise ValueError(f'size must be a positive int or (h, w), '
                             f'got {size}')
        return size

    def transform(self, results: dict) -> dict:
        size = self.size
        if size is None:
            if results.get('input_size') is None:
                raise KeyError('LetterboxAffine has no size: pass `size` or '
                               'set `img_size` on the dataset')
            size = self._as_size(results['input_size'])
        img = results['img']
        ori_h, ori_w = img.shape[:2]
        out_h, out_w = size
        results['img'], affine, inv_affine = letterbox_image(
            img, size, self.border)
        results['ori_shape'] = (ori_h, ori_w)
        results['img_shape'] = (out_h, out_w)
        results['affine'] = affine
        results['inv_affine'] = inv_affine
        scale = min(out_h / ori_h, out_w / ori_w)
        results['scale_factor'] = (scale, scale)
        if self.warp_mask and results.get('gt_seg_map') is not None:
            seg = results['gt_seg_map']
            mask255 = ((seg > 0).astype(np.uint8) * 255)
            warped = cv2.warpAffine(
                mask255,
                affine, (out_w, out_h),
                flags=cv2.INTER_LINEAR,
                borderValue=0)
            results['gt_mask'] = warped.astype(np.float32) / 255.
            if not self.keep_gt_seg_map:
                results.pop('gt_seg_map')
                if 'gt_seg_map' in results.get('seg_fields', []):
                    results['seg_fields'].remove('gt_seg_map')
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(size={self.size}, '
                f'border={self.border}, warp_mask={self.warp_mask}, '
                f'keep_gt_seg_map={self.keep_gt_seg_map})')
