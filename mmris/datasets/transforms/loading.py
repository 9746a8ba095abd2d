# Copyright (c) mmris contributors. All rights reserved.
"""Image and referred-mask loading for referring image segmentation."""
import math
import warnings
from typing import List, Optional, Sequence, Tuple

import cv2
import mmengine.fileio as fileio
import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from .image_size import check_image_pixels, max_image_pixels

#: Most pixels an annotated image (hence a decoded mask) may have:
#: 2**28 (a 16384 x 16384 image; 256 MiB as a uint8 mask).
MAX_MASK_PIXELS = 2**28
#: Polygon coordinates must lie within this many image sides of the image
#: (pycocotools rasterises NaN, infinite or huge coordinates with undefined
#: behaviour: a crash, or gigabytes for 1e7).
POLYGON_MARGIN = 1.0
#: A polygon's outline (sum of its edges' max(|dx|, |dy|)) may be at most
#: this many times the image's height + width (pycocotools allocates
#: memory in proportion to it).
POLYGON_OUTLINE_FACTOR = 200
#: Largest run length of an RLE (pycocotools stores counts as uint32).
RLE_COUNT_LIMIT = 2**32


def rle_counts(counts) -> List[int]:
    """The run lengths of an RLE ``counts``: a list, or COCO's compressed
    string (6 bits per character, offset 48, the last one of a value
    without the 0x20 continuation bit; from the third value on, each is
    stored as the difference with the value two places before).

    Args:
        counts (list | str | bytes): The RLE ``counts``.

    Returns:
        list[int]: The run lengths.

    Raises:
        ValueError: If a run is negative, not an integer or too long, or the
            string has a character outside '0'..'o' or ends inside a value.
    """
    if isinstance(counts, (list, tuple)):
        runs = list(counts)
        for k, run in enumerate(runs):
            if not isinstance(run, int) or isinstance(run, bool):
                raise ValueError(f'RLE count {k} is {run!r:.40}, not an '
                                 'integer')
    elif isinstance(counts, (str, bytes)):
        raw = counts
        if isinstance(counts, str):
            try:
                raw = counts.encode('ascii')
            except UnicodeEncodeError:
                raise ValueError('the RLE counts string is not ASCII: '
                                 f'{counts!r:.40}') from None
        runs = []
        value = shift = 0
        for pos, char in enumerate(raw):
            code = char - 48
            if not 0 <= code < 64:
                raise ValueError(f'RLE counts character {pos} is '
                                 f'{chr(char)!r}, outside "0".."o"')
            value |= (code & 0x1f) << shift
            shift += 5
            if code & 0x20:
                if shift > 40:
                    raise ValueError(f'RLE count {len(runs)} is too long')
                continue
            if code & 0x10:
                value -= 1 << shift
            if len(runs) > 2:
                value += runs[-2]
            runs.append(value)
            value = shift = 0
        if shift:
            raise ValueError('the RLE counts string ends inside a value')
    else:
        raise TypeError('RLE counts must be a list or a string, got '
                        f'{type(counts).__name__}')
    for k, run in enumerate(runs):
        if not 0 <= run < RLE_COUNT_LIMIT:
            raise ValueError(f'RLE count {k} is {run}, outside [0, 2**32)')
    return runs


def check_segmentation(segmentation, height: int, width: int) -> None:
    """Refuse what pycocotools cannot handle safely, before it sees it.

    - the image size: positive integers, at most :data:`MAX_MASK_PIXELS`;
    - an RLE dict: ``size`` two integers and ``counts`` runs (a list or
      COCO's compressed string) that sum to ``height x width`` exactly
      (pycocotools decodes shorter counts into uninitialised memory);
    - polygons: lists of finite numbers within :data:`POLYGON_MARGIN` image
      sides of the image, outlines at most :data:`POLYGON_OUTLINE_FACTOR`
      times height + width long.

    A ``size`` other than ``[height, width]`` is not checked here (
    :func:`inspect_segmentation` reports it).

    Args:
        segmentation (list | dict): Polygons or RLE.
        height (int): Image height.
        width (int): Image width.

    Raises:
        TypeError: If ``segmentation`` or a part has the wrong type.
        ValueError: If it is inconsistent or out of bounds.
    """
    for name, side in (('height', height), ('width', width)):
        if (not isinstance(side, (int, np.integer)) or isinstance(side, bool)
                or side < 1):
            raise ValueError(f'the image {name} is {side!r:.40}, not a '
                             'positive integer')
    height, width = int(height), int(width)
    if height * width > MAX_MASK_PIXELS:
        raise ValueError(f'the image is {height}x{width}, more than '
                         f'{MAX_MASK_PIXELS} pixels (MAX_MASK_PIXELS)')
    if isinstance(segmentation, dict):
        size, counts = segmentation.get('size'), segmentation.get('counts')
        if (size is None or counts is None
                or not isinstance(size, (list, tuple)) or len(size) != 2
                or not all(
                    isinstance(v, int) and not isinstance(v, bool) and v >= 0
                    for v in size)):
            raise TypeError('an RLE segmentation needs "size" (two '
                            'non-negative integers) and "counts", got '
                            f'{_first_items(segmentation)!r:.80}')
        if list(size) != [height, width]:
            return  # reported by inspect_segmentation
        total = sum(rle_counts(counts))
        if total != height * width:
            raise ValueError(f'RLE counts sum to {total}, not height x width '
                             f'= {height * width}')
        return
    if not isinstance(segmentation, (list, tuple)):
        raise TypeError('segmentation must be polygons (list) or RLE '
                        f'(dict), got {type(segmentation).__name__}')
    lo_x, hi_x = -POLYGON_MARGIN * width, (1 + POLYGON_MARGIN) * width
    lo_y, hi_y = -POLYGON_MARGIN * height, (1 + POLYGON_MARGIN) * height
    limit = POLYGON_OUTLINE_FACTOR * (height + width)
    for k, poly in enumerate(segmentation):
        if not isinstance(poly, (list, tuple)):
            raise TypeError('each polygon must be a list of coordinates '
                            f'[x1, y1, x2, y2, ...], got {poly!r:.60}')
        xs, ys = poly[0::2], poly[1::2]
        if not (all(type(v) is float or type(v) is int
                    for v in poly) and all(map(math.isfinite, poly)) and
                (not xs or lo_x <= min(xs) and max(xs) <= hi_x) and
                (not ys or lo_y <= min(ys) and max(ys) <= hi_y)):
            _refuse_coordinate(k, poly, (lo_x, hi_x, lo_y, hi_y), height,
                               width)
        # each edge is at most the polygon's extent long: sum them only
        # when that bound is not enough
        extent = max(max(xs) - min(xs), max(ys) - min(ys)) if ys else 0
        if len(ys) * extent <= limit:
            continue
        xs = xs[:len(ys)]
        outline = sum(
            max(abs(x1 - x0), abs(y1 - y0))
            for x0, y0, x1, y1 in zip(xs, ys, xs[1:] + xs[:1], ys[1:] +
                                      ys[:1]))
        if outline > limit:
            raise ValueError(
                f'polygon {k}: its outline is {outline:.0f} pixels long, '
                f'more than {POLYGON_OUTLINE_FACTOR} x (height + width) = '
                f'{limit}')


def _first_items(mapping: dict, count: int = 3) -> dict:
    """The first ``count`` items of ``mapping`` (for error messages)."""
    return {key: mapping[key] for key in list(mapping)[:count]}


def _refuse_coordinate(k: int, poly: Sequence, bounds: Tuple[float, ...],
                       height: int, width: int) -> None:
    """Raise naming the first coordinate of polygon ``k`` that is not a
    finite number within ``bounds`` (x low, x high, y low, y high)."""
    lo_x, hi_x, lo_y, hi_y = bounds
    for i, v in enumerate(poly):
        lo, hi = (lo_y, hi_y) if i % 2 else (lo_x, hi_x)
        number = (
            isinstance(v, (int, float, np.integer, np.floating))
            and not isinstance(v, (bool, np.bool_)))
        if not number or not math.isfinite(v) or not lo <= v <= hi:
            raise ValueError(
                f'polygon {k}: coordinate {i} is {v!r:.40}; coordinates '
                f'must be numbers within [{lo_x:g}, {hi_x:g}] (x) and '
                f'[{lo_y:g}, {hi_y:g}] (y) for a {height}x{width} image')


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

    Raises:
        TypeError | ValueError: If :func:`check_segmentation` refuses it
            (e.g. RLE counts that do not cover the image, coordinates far
            outside it) or an RLE ``size`` is not ``[height, width]``.
    """
    from pycocotools import mask as mask_utils

    check_segmentation(segmentation, height, width)
    if isinstance(segmentation, dict) and [
            int(v) for v in segmentation['size']
    ] != [int(height), int(width)]:
        raise ValueError(f'RLE size {list(segmentation["size"])} differs '
                         f'from the image size [{height}, {width}]')
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


def _polygons(segmentation: Sequence) -> List[List[float]]:
    """The polygons pycocotools rasterises: >= 3 points, even length.

    A polygon with fewer than 6 coordinates is dropped (pycocotools would
    take one of 4 for a box), an odd trailing coordinate is cut (as
    pycocotools does).
    """
    polys = []
    for poly in segmentation:
        if not isinstance(poly, (list, tuple)):
            raise TypeError('each polygon must be a list of coordinates '
                            f'[x1, y1, x2, y2, ...], got {poly!r:.60}')
        if len(poly) >= 6:
            polys.append([float(v) for v in poly[:len(poly) // 2 * 2]])
    return polys


def _rle(mask_utils, segmentation: dict, height: int, width: int) -> dict:
    if isinstance(segmentation.get('counts'), list):
        return mask_utils.frPyObjects(segmentation, height, width)
    rle = dict(segmentation)
    if isinstance(rle.get('counts'), str):
        rle['counts'] = rle['counts'].encode('ascii')
    return rle


def _decode(mask_utils, segmentation, height: int,
            width: int) -> Optional[np.ndarray]:
    if isinstance(segmentation, dict):
        return mask_utils.decode(_rle(mask_utils, segmentation, height, width))
    if isinstance(segmentation, (list, tuple)):
        polys = _polygons(segmentation)
        if not polys:
            return None
        rles = mask_utils.frPyObjects(polys, height, width)
        # The union of the parts equals the official "sum > 0", and decoding
        # one merged RLE is several times cheaper than decoding every part.
        return mask_utils.decode(mask_utils.merge(rles))
    raise TypeError('segmentation must be polygons (list) or RLE (dict), '
                    f'got {type(segmentation)}')


def _may_cover_no_pixel(poly: List[float], height: int, width: int) -> bool:
    """Cheap pre-test of a polygon before rasterising it.

    False only when the polygon certainly covers a pixel: it lies inside
    the image and its area is at least its perimeter, i.e. it is on average
    at least 2 px wide (for a convex polygon the inradius is then >= 1).
    Thin, tiny, degenerate polygons and those reaching outside the image
    return True and are rasterised.
    """
    xs, ys = poly[0::2], poly[1::2]
    if not (0 <= min(xs) and max(xs) <= width and 0 <= min(ys)
            and max(ys) <= height):
        return True  # partly or wholly outside the image
    xn, yn = xs[1:] + xs[:1], ys[1:] + ys[:1]
    area = abs(sum(a * d - c * b for a, b, c, d in zip(xs, ys, xn, yn))) / 2
    perimeter = sum(
        map(math.hypot, (c - a for a, c in zip(xs, xn)),
            (d - b for b, d in zip(ys, yn))))
    return area < max(perimeter, 1.0)


def inspect_segmentation(segmentation, height: int,
                         width: int) -> Tuple[List[str], int]:
    """Problems of a COCO ``segmentation``, and whether its mask is empty.

    Reports what :func:`decode_segmentation` would silently drop or
    truncate: an empty list, a polygon with fewer than 3 points, an odd
    number of coordinates, a polygon covering no pixel (zero area,
    sub-pixel or outside the image), an RLE whose ``size`` is not
    (height, width), and an empty mask. What pycocotools cannot handle
    safely is refused first (:func:`check_segmentation`). Cheap enough for
    a whole dataset at load time (about 20 us per polygon): only thin, tiny
    or out-of-image polygons are rasterised (run-length encoded, never
    decoded).

    Args:
        segmentation (list | dict): Polygons or RLE, as in
            :func:`decode_segmentation`.
        height (int): Image height.
        width (int): Image width.

    Returns:
        tuple[list[str], int]: The problems (empty if none) and a positive
        number if the decoded mask has foreground pixels, 0 if it is empty
        (for RLE the pixel count; for polygons the number of parts covering
        at least one pixel).

    Raises:
        TypeError: If ``segmentation`` is neither polygons nor an RLE dict,
            or a part has the wrong type.
        ValueError: If :func:`check_segmentation` refuses it.
    """
    from pycocotools import mask as mask_utils

    check_segmentation(segmentation, height, width)
    height, width = int(height), int(width)
    problems: List[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        if isinstance(segmentation, dict):
            size = segmentation.get('size')
            if size is None or 'counts' not in segmentation:
                raise TypeError('an RLE segmentation needs "size" and '
                                f'"counts", got keys {sorted(segmentation)}')
            if [int(v) for v in size] != [height, width]:
                problems.append(f'RLE size {list(size)} differs from the '
                                f'image size [{height}, {width}]')
                # counts unchecked (the size is refused anyway): no area
                return problems, 1
            area = int(
                mask_utils.area(_rle(mask_utils, segmentation, height, width)))
        elif isinstance(segmentation, (list, tuple)):
            if not segmentation:
                problems.append('empty segmentation list')
            polys = _polygons(segmentation)
            for k, poly in enumerate(segmentation):
                if len(poly) < 6:
                    problems.append(f'polygon {k} has {len(poly)} '
                                    'coordinates (fewer than 3 points): '
                                    'ignored')
                elif len(poly) % 2:
                    problems.append(f'polygon {k} has an odd number of '
                                    f'coordinates ({len(poly)}): the last '
                                    'one is ignored')
            kept = [k for k, p in enumerate(segmentation) if len(p) >= 6]
            covered = 0
            for k, poly in zip(kept, polys):
                if _may_cover_no_pixel(poly, height, width) and not int(
                        mask_utils.area(
                            mask_utils.frPyObjects([poly], height, width))):
                    problems.append(f'polygon {k} covers no pixel (zero or '
                                    'sub-pixel area, or outside the image)')
                else:
                    covered += 1
            # Only whether the mask is empty matters: a covering part is
            # enough (the exact count would need the union rasterised).
            area = covered
        else:
            raise TypeError('segmentation must be polygons (list) or RLE '
                            f'(dict), got {type(segmentation).__name__}')
    if area == 0:
        problems.append('the mask is empty')
    return problems, area


@TRANSFORMS.register_module()
class LoadRefImage(BaseTransform):
    """Load an image as RGB uint8 (H, W, 3).

    The bytes are decoded with OpenCV ``IMREAD_COLOR`` as the official RIS
    code (``cv2.imdecode(..., cv2.IMREAD_COLOR)`` in jiaqihuang01/DETRIS,
    utils/dataset.py, the same in kkakkkka/ETRIS): grayscale is replicated
    to three channels, an alpha channel is dropped and 16-bit images are
    scaled to 8 bit; then BGR is converted to RGB.

    EXIF orientation. OpenCV (>= 3.1) rotates a JPEG according to its EXIF
    ``Orientation`` tag, but COCO annotations (polygons, RLE, ``height`` /
    ``width`` of ``instances.json``) are in the stored pixel order of the
    file: they were drawn in browsers, which ignored the tag until 2020.
    So by default (``ignore_orientation=None``) the tag is ignored for an
    annotated sample (``results`` holds ``height`` and ``width``, as
    :class:`RefCOCODataset` provides), keeping image and mask aligned, and
    applied for a free image (inference on a photo). For the COCO images
    without the tag this is exactly the official decoding; the official code
    rotates tagged ones and thus misaligns their masks.

    Image size. When ``results`` holds the annotation's ``height`` and
    ``width``, the decoded image must have that size (a resized or rotated
    copy would silently misalign the target, and fail only at evaluation);
    otherwise a ``ValueError`` names the file, the ref and both sizes.

    Pixel limit. The size is read from the file's header first, and an
    image declaring more than ``max_pixels`` pixels is refused with
    :class:`ImageTooLargeError` before anything is decoded (a small crafted
    PNG can declare gigabytes of pixels); a file without a readable header
    raises :class:`ImageHeaderError` (an ``OSError``).

    Required Keys:

    - img_path
    - height, width (optional: annotation image size)

    Added Keys:

    - img (np.ndarray): uint8 (H, W, 3), RGB
    - img_shape (tuple): (H, W)
    - ori_shape (tuple): (H, W)

    Args:
        ignore_orientation (bool, optional): Ignore the EXIF orientation
            tag (True), apply it (False), or decide per sample (None: ignore
            it for annotated samples). Defaults to None.
        check_size (bool): Check the decoded size against ``height`` /
            ``width`` when present. Defaults to True.
        backend_args (dict, optional): Arguments of the mmengine file backend.
            Defaults to None.
        max_pixels (int, optional): Largest width x height decoded. Defaults
            to None: ``$MMRIS_MAX_IMAGE_PIXELS`` when set, else
            :data:`DEFAULT_MAX_IMAGE_PIXELS` (2**26, e.g. 8192 x 8192).
    """

    def __init__(self,
                 ignore_orientation: Optional[bool] = None,
                 check_size: bool = True,
                 backend_args: Optional[dict] = None,
                 max_pixels: Optional[int] = None) -> None:
        if ignore_orientation not in (None, True, False):
            raise TypeError('ignore_orientation must be None, True or False, '
                            f'got {ignore_orientation!r}')
        self.ignore_orientation = ignore_orientation
        self.check_size = check_size
        self.backend_args = backend_args.copy() if backend_args else None
        if max_pixels is not None:
            max_image_pixels(max_pixels)  # a clear error now, not per image
        self.max_pixels = max_pixels

    def transform(self, results: dict) -> dict:
        filename = results['img_path']
        try:
            img_bytes = fileio.get(filename, backend_args=self.backend_args)
        except FileNotFoundError as e:
            raise FileNotFoundError(f'Image file not found: {filename}') from e
        except OSError as e:
            raise OSError(f'Cannot read image file {filename}: {e}') from e
        annotated = 'height' in results and 'width' in results
        ignore = (
            annotated
            if self.ignore_orientation is None else self.ignore_orientation)
        flags = cv2.IMREAD_COLOR
        if ignore:
            flags |= cv2.IMREAD_IGNORE_ORIENTATION
        if not img_bytes:
            raise OSError(f'Cannot decode image file {filename} (empty file)')
        # the size from the header, refused over the limit before decoding
        check_image_pixels(img_bytes, filename, self.max_pixels)
        buf = np.frombuffer(img_bytes, dtype=np.uint8)
        img = cv2.imdecode(buf, flags)
        if img is None:
            raise OSError(f'Cannot decode image file {filename} (corrupt or '
                          'unsupported format)')
        if annotated and self.check_size:
            self._check_size(results, img.shape[:2])
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    @staticmethod
    def _check_size(results: dict, shape: Tuple[int, int]) -> None:
        expected = (int(results['height']), int(results['width']))
        if tuple(shape) == expected:
            return
        ids = ', '.join(f'{k} {results[k]}'
                        for k in ('ref_id', 'ann_id', 'image_id')
                        if k in results)
        raise ValueError(
            f'Image {results["img_path"]} ({ids or "no ref"}) decodes to '
            f'{shape[0]}x{shape[1]} (height x width) but its annotation '
            f'(instances.json height/width) is {expected[0]}x{expected[1]}: '
            'the mask would not be aligned with the image. Use the original '
            'COCO file, not a resized or rotated copy (EXIF orientation is '
            'ignored for annotated images; see LoadRefImage).')

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(ignore_orientation='
                f'{self.ignore_orientation}, check_size={self.check_size}, '
                f'backend_args={self.backend_args}, '
                f'max_pixels={self.max_pixels})')


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
