# Copyright (c) mmris contributors. All rights reserved.
"""Image and referred-mask loading for referring image segmentation."""
import warnings
from typing import Optional

import cv2
import mmengine.fileio as fileio
import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS


def decode_segmentation(segmentation, height: int, width: int) -> np.ndarray:
    """Rasterise a COCO ``segmentation`` into a binary mask.

    Polygons go through ``pycocotools.mask.frPyObjects`` and are decoded and
    summed over their parts (as the official ``data_process.py``); the result
    is ``sum > 0``. Uncompressed and compressed RLE dicts are accepted too.

    Args:
        segmentation (list | dict): Polygons ``[[x1, y1, x2, y2, ...], ...]``
            or an RLE dict ``{'size': [h, w], 'counts': ...}``.
        height (int): Image height.
        width (int): Image width.

    Returns:
        np.ndarray: uint8 mask of shape (height, width) with values {0, 1}.
    """
    from pycocotools import mask as mask_utils

    height, width = int(height), int(width)
    with warnings.catch_warnings():
        # pycocotools 2.0.x + numpy 2: harmless ``__array__(copy=...)``
        # DeprecationWarning on every decode.
        warnings.simplefilter('ignore', DeprecationWarning)
        decoded = _decode(mask_utils, segmentation, height, width)
    if decoded is None:
        return np.zeros((height, width), dtype=np.uint8)
    if decoded.ndim == 3:
        decoded = decoded.astype(np.int64).sum(axis=2)
    return (decoded > 0).astype(np.uint8)


def _decode(mask_utils, segmentation, height: int,
            width: int) -> Optional[np.ndarray]:
    if isinstance(segmentation, dict):
        if isinstance(segmentation.get('counts'), list):
            rle = mask_utils.frPyObjects(segmentation, height, width)
        else:
            rle = dict(segmentation)
            if isinstance(rle['counts'], str):
                rle['counts'] = rle['counts'].encode('ascii')
        return mask_utils.decode(rle)
    if isinstance(segmentation, (list, tuple)):
        polys = [list(map(float, p)) for p in segmentation if len(p) >= 6]
        if not polys:
            return None
        rles = mask_utils.frPyObjects(polys, height, width)
        # The union of the parts equals the official "sum > 0", and decoding
        # one merged RLE is several times cheaper than decoding every part.
        return mask_utils.decode(mask_utils.merge(rles))
    raise TypeError('segmentation must be polygons (list) or RLE (dict), '
                    f'got {type(segmentation)}')


@TRANSFORMS.register_module()
class LoadRefImage(BaseTransform):
    """Load an image as RGB uint8 (H, W, 3).

    The bytes are decoded with OpenCV ``IMREAD_COLOR`` exactly as the official
    RIS code (so EXIF orientation is applied, grayscale is replicated to three
    channels, an alpha channel is dropped and 16-bit images are scaled to
    8 bit), then converted from BGR to RGB.

    Required Keys:

    - img_path

    Added Keys:

    - img (np.ndarray): uint8 (H, W, 3), RGB
    - img_shape (tuple): (H, W)
    - ori_shape (tuple): (H, W)

    Args:
        ignore_orientation (bool): Ignore the EXIF orientation tag.
            Defaults to False (official behaviour).
        backend_args (dict, optional): Arguments of the mmengine file backend.
            Defaults to None.
    """

    def __init__(self,
                 ignore_orientation: bool = False,
                 backend_args: Optional[dict] = None) -> None:
        self.ignore_orientation = ignore_orientation
        self.backend_args = backend_args.copy() if backend_args else None

    def transform(self, results: dict) -> dict:
        filename = results['img_path']
        try:
            img_bytes = fileio.get(filename, backend_args=self.backend_args)
        except FileNotFoundError as e:
            raise FileNotFoundError(f'Image file not found: {filename}') from e
        except OSError as e:
            raise OSError(f'Cannot read image file {filename}: {e}') from e
        flags = cv2.IMREAD_COLOR
        if self.ignore_orientation:
            flags |= cv2.IMREAD_IGNORE_ORIENTATION
        buf = np.frombuffer(img_bytes, dtype=np.uint8)
        img = cv2.imdecode(buf, flags) if buf.size else None
        if img is None:
            raise OSError(f'Cannot decode image file {filename} (corrupt or '
                          'unsupported format)')
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(ignore_orientation='
                f'{self.ignore_orientation}, '
                f'backend_args={self.backend_args})')


@TRANSFORMS.register_module()
class LoadRefMask(BaseTransform):
    """Rasterise the referred object's annotation into ``gt_seg_map``.

    Required Keys:

    - segmentation (polygons or RLE, from the dataset)
    - height, width (annotation image size, from the dataset)

    Added Keys:

    - gt_seg_map (np.ndarray): uint8 (height, width), values {0, 1}, at
      the original image resolution.
    - seg_fields (list): ``'gt_seg_map'`` appended.
    """

    def transform(self, results: dict) -> dict:
        for key in ('segmentation', 'height', 'width'):
            if key not in results:
                raise KeyError(f'LoadRefMask: results has no "{key}" key '
                               '(it is provided by RefCOCODataset)')
        mask = decode_segmentation(results['segmentation'], results['height'],
                                   results['width'])
        results['gt_seg_map'] = mask
        results.setdefault('seg_fields', [])
        if 'gt_seg_map' not in results['seg_fields']:
            results['seg_fields'].append('gt_seg_map')
        return results
