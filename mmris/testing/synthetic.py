# Copyright (c) mmris contributors. All rights reserved.
"""A tiny synthetic dataset in the exact REFER format, for tests and demos.

Each image shows 2-4 non-overlapping coloured shapes (circle, square,
triangle; small or big) on a noisy textured background. Every shape is one
referred object with 2-3 sentences that identify it unambiguously within
its image by colour, shape, size and/or position, e.g. "the red circle",
"the big square", "the triangle on the left", "the object at the top".
Colours are distinct within an image, so a model can learn the task.

The files written are those of the real datasets (REFER format)::

    <root>/images/train2014/COCO_train2014_%012d.jpg
    <root>/<dataset>/instances.json        (COCO format, polygon masks)
    <root>/<dataset>/refs(<split_by>).p    (pickle protocol 2)

Scenes depend only on ``seed`` and the image index, so several
``(dataset, split_by)`` pairs generated with the same seed and the same
total number of images into one root share identical images.
"""
import json
import os
import os.path as osp
import pickle
import struct
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

COLOURS = {
    'red': (220, 40, 40),
    'green': (40, 175, 60),
    'blue': (40, 80, 225),
    'yellow': (235, 215, 40),
    'purple': (150, 60, 200),
    'white': (245, 245, 245),
}
SHAPES = ('circle', 'square', 'triangle')
CATEGORIES = [
    dict(id=i + 1, name=name, supercategory='shape')
    for i, name in enumerate(SHAPES)
]

#: Images per split for each ``split_by`` (same total: scenes are shared).
DEFAULT_SPLITS = {
    'unc': dict(train=200, val=40, testA=20, testB=20),
    'umd': dict(train=200, val=40, test=40),
    'google': dict(train=240, val=40),
}
SMALL_NUM_IMAGES = 16
IMAGE_ID_OFFSET = 100000


def _split_counts(split_by: str, num_images: Union[None, int, Dict[str, int]],
                  small: bool) -> Dict[str, int]:
    if split_by not in DEFAULT_SPLITS:
        raise ValueError(f'split_by must be one of {tuple(DEFAULT_SPLITS)}, '
                         f'got {split_by!r}')
    default = DEFAULT_SPLITS[split_by]
    if isinstance(num_images, dict):
        unknown = set(num_images) - set(default)
        if unknown:
            raise ValueError(f'Unknown splits {sorted(unknown)} for '
                             f'split_by={split_by!r}; use {tuple(default)}')
        return {k: int(v) for k, v in num_images.items()}
    if num_images is None:
        if not small:
            return dict(default)
        num_images = SMALL_NUM_IMAGES
    total = int(num_images)
    if total < len(default):
        raise ValueError(f'num_images must be >= {len(default)} '
                         f'(one per split), got {total}')
    ref_total = sum(default.values())
    counts = {
        k: max(1, int(round(v * total / ref_total)))
        for k, v in default.items()
    }
    counts['train'] += total - sum(counts.values())
    if counts['train'] < 1:
        raise ValueError(f'num_images={total} too small')
    return counts


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Muted, low-saturation texture with noise."""
    base = rng.uniform(70, 150)
    grid = rng.normal(0, 18, size=(4, 4, 3)) + base
    grid += rng.normal(0, 6, size=(1, 1, 3))
    bg = cv2.resize(
        grid.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    freq = rng.uniform(0.05, 0.25)
    phase = rng.uniform(0, 2 * np.pi)
    stripes = 8 * np.sin(freq * (xx * np.cos(phase) + yy * np.sin(phase)))
    return bg + stripes[..., None]


def _polygon(shape: str, cx: float, cy: float, r: float,
             angle: float) -> np.ndarray:
    if shape == 'circle':
        theta = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    elif shape == 'square':
        theta = angle + np.pi / 4 + np.arange(4) * np.pi / 2
    else:
        theta = angle - np.pi / 2 + np.arange(3) * 2 * np.pi / 3
    return np.stack([cx + r * np.cos(theta), cy + r * np.sin(theta)], 1)


def _place_objects(rng: np.random.Generator, h: int, w: int) -> List[dict]:
    n = int(rng.integers(2, 5))
    colours = rng.permutation(list(COLOURS))[:n]
    side = min(h, w)
    objs: List[dict] = []
    for colour in colours:
        for _ in range(200):
            size = 'big' if rng.random() < 0.5 else 'small'
            frac = rng.uniform(0.2, 0.26) if size == 'big' else rng.uniform(
                0.09, 0.13)
            r = frac * side
            cx = rng.uniform(r + 2, w - r - 2)
            cy = rng.uniform(r + 2, h - r - 2)
            if all((cx - o['cx'])**2 + (cy - o['cy'])**2 > (r + o['r'] + 3)**2
                   for o in objs):
                objs.append(
                    dict(
                        colour=str(colour),
                        shape=SHAPES[int(rng.integers(3))],
                        size=size,
                        r=r,
                        cx=cx,
                        cy=cy,
                        angle=rng.uniform(-0.35, 0.35)))
                break
    return objs


def _extreme(obj: dict, group: List[dict], key: str, sign: int,
             margin: float) -> bool:
    """Whether ``obj`` is the unique extreme of ``group`` along ``key``."""
    others = [o for o in group if o is not obj]
    return bool(others) and all(sign * (obj[key] - o[key]) > margin
                                for o in others)


def _sentences(obj: dict, objs: List[dict], h: int, w: int) -> List[str]:
    """Expressions that identify ``obj`` unambiguously among ``objs``."""
    c, s, z = obj['colour'], obj['shape'], obj['size']
    same_shape = [o for o in objs if o['shape'] == s]
    cands = [
        f'the {c} {s}', f'{c} {s}', f'the {c} one', f'{c} object',
        f'the {z} {c} {s}'
    ]
    if len(same_shape) == 1:
        cands += [f'the {s}', s]
    if sum(o['shape'] == s and o['size'] == z for o in objs) == 1:
        cands.append(f'the {z} {s}')
    if sum(o['size'] == z for o in objs) == 1:
        cands.append(f'the {z} object')
    for key, sign, word, margin in (('cx', -1, 'on the left', 0.1 * w),
                                    ('cx', 1, 'on the right', 0.1 * w),
                                    ('cy', -1, 'at the top', 0.1 * h),
                                    ('cy', 1, 'at the bottom', 0.1 * h)):
        if _extreme(obj, objs, key, sign, margin):
            cands += [f'the object {word}', f'the {c} {s} {word}']
        if len(same_shape) > 1 and _extreme(obj, same_shape, key, sign,
                                            margin):
            cands.append(f'the {s} {word}')
    return cands


def _render(rng: np.random.Generator, h: int,
            w: int) -> Tuple[np.ndarray, List[dict]]:
    img = _background(rng, h, w)
    objs = _place_objects(rng, h, w)
    for obj in objs:
        poly = _polygon(obj['shape'], obj['cx'], obj['cy'], obj['r'],
                        obj['angle'])
        obj['poly'] = poly
        pts = np.round(poly * 16).astype(np.int32)
        colour = np.array(COLOURS[obj['colour']], np.float64)
        colour = np.clip(colour + rng.normal(0, 8, 3), 0, 255)
        cv2.fillPoly(
            img, [pts],
            tuple(float(v) for v in colour),
            lineType=cv2.LINE_8,
            shift=4)
    img = img + rng.normal(0, 6, size=img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8), objs


def python2_pickle_dumps(obj: Any, protocol: int = 2) -> bytes:
    """Pickle ``obj`` byte for byte as Python 2's ``cPickle`` would.

    The original REFER ``refs(*).p`` files were written by Python 2, whose
    ``str`` is a byte string: ``bytes`` values here are written as Python 2
    ``str`` (``STRING`` in protocol 0, ``SHORT_BINSTRING`` / ``BINSTRING``
    in protocol 2), ``str`` values as Python 2 ``unicode`` (``UNICODE`` /
    ``BINUNICODE``). Python 3's pickler cannot do this: it pickles ``bytes``
    as a call of ``_codecs.encode`` below protocol 3. No memo is written.

    Args:
        obj (Any): Nested dicts, lists, tuples, bytes, str, int, float,
            bool and None.
        protocol (int): 0 or 2. Defaults to 2.

    Returns:
        bytes: The pickle.
    """
    if protocol not in (0, 2):
        raise ValueError(f'protocol must be 0 or 2, got {protocol!r}')
    out = [b'\x80\x02'] if protocol == 2 else []

    def put(value: Any) -> None:
        if value is None:
            out.append(b'N')
        elif isinstance(value, bool):
            out.append((b'\x88' if value else b'\x89') if protocol else (
                b'I01\n' if value else b'I00\n'))
        elif isinstance(value, int):
            if protocol == 0:
                out.append(b'I%d\n' %
                           value if -2**31 <= value < 2**31 else b'L%dL\n' %
                           value)
            elif 0 <= value < 256:
                out.append(b'K' + bytes([value]))
            elif -2**31 <= value < 2**31:
                out.append(b'J' + struct.pack('<i', value))
            else:
                raw = value.to_bytes(
                    (value.bit_length() + 8) // 8, 'little', signed=True)
                out.append(b'\x8a' + bytes([len(raw)]) + raw)
        elif isinstance(value, float):
            out.append(b'G' + struct.pack('>d', value) if protocol else b'F' +
                       repr(value).encode('ascii') + b'\n')
        elif isinstance(value, bytes):
            if protocol == 0:
                out.append(b'S' + repr(value)[1:].encode('ascii') + b'\n')
            elif len(value) < 256:
                out.append(b'U' + bytes([len(value)]) + value)
            else:
                out.append(b'T' + struct.pack('<i', len(value)) + value)
        elif isinstance(value, str):
            if protocol == 0:
                escaped = value.replace('\\',
                                        '\\u005c').replace('\n', '\\u000a')
                out.append(b'V' + escaped.encode('raw-unicode-escape') + b'\n')
            else:
                raw = value.encode('utf-8')
                out.append(b'X' + struct.pack('<I', len(raw)) + raw)
        elif isinstance(value, (list, dict, tuple)):
            if isinstance(value, tuple):
                out.append(b'(')
                for item in value:
                    put(item)
                out.append(b't')
                return
            is_dict = isinstance(value, dict)
            out.append((b'}' if is_dict else b']') if protocol else (
                b'(d' if is_dict else b'(l'))
            for item in (value.items() if is_dict else value):
                for part in (item if is_dict else (item, )):
                    put(part)
                out.append(b's' if is_dict else b'a')
        else:
            raise TypeError('python2_pickle_dumps supports dict, list, '
                            'tuple, bytes, str, int, float, bool and None, '
                            f'got {type(value).__name__}')

    put(obj)
    out.append(b'.')
    return b''.join(out)


def _write_scene(
        img_dir: str, seed: int, index: int, lo: int,
        hi: int) -> Tuple[np.random.Generator, dict, List[dict], List[dict]]:
    """Render scene ``index``, write its JPEG and build its COCO entries.

    Returns:
        tuple: The scene's generator (for the sentence draws that follow),
        the COCO image dict, its annotation dicts (one per object, in the
        order of the objects) and the objects.
    """
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng([seed, index])
    h, w = (int(v) for v in rng.integers(lo, hi + 1, size=2))
    img, objs = _render(rng, h, w)
    image_id = IMAGE_ID_OFFSET + index
    file_name = f'COCO_train2014_{image_id:012d}.jpg'
    ok = cv2.imwrite(
        osp.join(img_dir, file_name), img[..., ::-1],
        [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise OSError(f'Cannot write {osp.join(img_dir, file_name)}')
    anns = []
    for k, obj in enumerate(objs):
        poly = [float(round(v, 2)) for v in obj['poly'].reshape(-1)]
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', DeprecationWarning)
            rle = mask_utils.merge(mask_utils.frPyObjects([poly], h, w))
            x, y, bw, bh = (float(v) for v in mask_utils.toBbox(rle))
            area = float(mask_utils.area(rle))
        anns.append(
            dict(
                id=image_id * 10 + k,
                image_id=image_id,
                category_id=SHAPES.index(obj['shape']) + 1,
                segmentation=[poly],
                area=area,
                bbox=[x, y, bw, bh],
                iscrowd=0))
    image = dict(id=image_id, file_name=file_name, height=h, width=w)
    return rng, image, anns, objs


def _pick_sentences(rng: np.random.Generator,
                    cands: List[str],
                    first_id: int,
                    most: int = 3) -> List[dict]:
    """2..``most`` of ``cands`` as REFER sentence dicts (ids from
    ``first_id``)."""
    n_sent = min(len(cands), int(rng.integers(2, most + 1)))
    chosen = [cands[i] for i in rng.permutation(len(cands))[:n_sent]]
    sentences = []
    for k, sent in enumerate(chosen):
        raw = sent[0].upper() + sent[1:] + ('.' if rng.random() < 0.5 else '')
        sentences.append(
            dict(
                tokens=sent.split(), raw=raw, sent_id=first_id + k, sent=sent))
    return sentences


def _ref_dict(ref_id: int, ann_id: Any, category_id: Any, image_id: int,
              split: str, sentences: List[dict]) -> dict:
    """A REFER ref (gRefCOCO: ``ann_id`` / ``category_id`` lists)."""
    first = ann_id[0] if isinstance(ann_id, list) else ann_id
    return dict(
        ref_id=ref_id,
        ann_id=ann_id,
        image_id=image_id,
        split=split,
        sentences=sentences,
        sent_ids=[s['sent_id'] for s in sentences],
        category_id=category_id,
        file_name=f'COCO_train2014_{image_id:012d}_{first}.jpg')


def _output_folders(root: str, img_prefix: str, folder: str,
                    image_size: Tuple[int, int]) -> Tuple[int, int, str, str]:
    """Check ``image_size`` and create the image and annotation folders.

    Returns:
        tuple: ``(min side, max side, image folder, annotation folder)``.
    """
    lo, hi = int(image_size[0]), int(image_size[1])
    if not 1 <= lo <= hi:
        raise ValueError(f'image_size must be (min, max) with 1 <= min <= '
                         f'max, got {image_size}')
    img_dir = osp.join(root, img_prefix)
    ann_dir = osp.join(root, folder)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    return lo, hi, img_dir, ann_dir


def make_synthetic_refer(root: str,
                         seed: int = 0,
                         num_images: Union[None, int, Dict[str, int]] = None,
                         image_size: Tuple[int, int] = (96, 160),
                         dataset: str = 'refcoco',
                         split_by: str = 'unc',
                         small: bool = False,
                         img_prefix: str = 'images/train2014') -> dict:
    """Write a synthetic REFER-format dataset under ``root``.

    Args:
        root (str): Output data root (created if needed).
        seed (int): Random seed; the output is a deterministic function of
            the arguments. Defaults to 0.
        num_images (int | dict, optional): Total number of images (spread
            over the splits like the defaults) or an explicit
            ``{split: n}``. Defaults to None: 280 images (unc: train 200,
            val 40, testA 20, testB 20; umd: train 200, val 40, test 40;
            google: train 240, val 40), or 16 if ``small``.
        image_size (tuple[int, int]): Range (min, max) of each image side;
            height and width are drawn independently, so aspect ratios vary.
            Defaults to (96, 160).
        dataset (str): Dataset folder name. Defaults to 'refcoco'.
        split_by (str): 'unc', 'umd' or 'google'. Defaults to 'unc'.
        small (bool): Use 16 images when ``num_images`` is None (tests).
            Defaults to False.
        img_prefix (str): Image folder relative to ``root``.
            Defaults to 'images/train2014'.

    Returns:
        dict: Summary with keys ``root``, ``dataset``, ``split_by``,
        ``refs_file``, ``instances_file``, ``image_dir``, ``num_images``,
        ``num_refs``, ``num_sentences`` and ``splits`` (per split
        ``dict(images, refs, sentences)``).
    """
    counts = _split_counts(split_by, num_images, small)
    lo, hi, img_dir, ann_dir = _output_folders(root, img_prefix, dataset,
                                               image_size)

    images, annotations, refs = [], [], []
    splits: Dict[str, dict] = {}
    split_of_image = [name for name, n in counts.items() for _ in range(n)]
    ref_id = sent_id = 0
    for index, split in enumerate(split_of_image):
        rng, image, anns, objs = _write_scene(img_dir, seed, index, lo, hi)
        images.append(image)
        annotations.extend(anns)
        stat = splits.setdefault(split, dict(images=0, refs=0, sentences=0))
        stat['images'] += 1
        h, w = image['height'], image['width']
        for obj, ann in zip(objs, anns):
            cands = _sentences(obj, objs, h, w)
            sentences = _pick_sentences(rng, cands, sent_id)
            sent_id += len(sentences)
            refs.append(
                _ref_dict(ref_id, ann['id'], ann['category_id'], image['id'],
                          split, sentences))
            ref_id += 1
            stat['refs'] += 1
            stat['sentences'] += len(sentences)

    instances_file = osp.join(ann_dir, 'instances.json')
    with open(instances_file, 'w') as f:
        json.dump(
            dict(
                info=dict(description=f'mmris synthetic REFER, seed {seed}'),
                images=images,
                annotations=annotations,
                categories=CATEGORIES), f)
    refs_file = osp.join(ann_dir, f'refs({split_by}).p')
    with open(refs_file, 'wb') as f:
        pickle.dump(refs, f, protocol=2)
    return dict(
        root=root,
        dataset=dataset,
        split_by=split_by,
        refs_file=refs_file,
        instances_file=instances_file,
        image_dir=img_dir,
        num_images=len(images),
        num_refs=len(refs),
        num_sentences=sent_id,
        splits=splits)


def make_synthetic_refer_all(
    root: str,
    seed: int = 0,
    num_images: Optional[int] = None,
    image_size: Tuple[int, int] = (96, 160),
    small: bool = False,
    names: Sequence[Tuple[str,
                          str]] = (('refcoco', 'unc'), ('refcoco+', 'unc'),
                                   ('refcocog', 'umd'), ('refcocog', 'google'))
) -> Dict[Tuple[str, str], dict]:
    """Generate several ``(dataset, split_by)`` pairs sharing one image set.

    Args:
        root (str): Output data root.
        seed (int): Random seed. Defaults to 0.
        num_images (int, optional): Total images (shared). Defaults to None.
        image_size (tuple[int, int]): Side range. Defaults to (96, 160).
        small (bool): Small variant for tests. Defaults to False.
        names (Sequence[tuple[str, str]]): Pairs to write. Defaults to the
            four standard RIS pairs.

    Returns:
        dict: Summary per ``(dataset, split_by)``.
    """
    return {
        (d, s):
        make_synthetic_refer(
            root,
            seed=seed,
            num_images=num_images,
            image_size=image_size,
            dataset=d,
            split_by=s,
            small=small)
        for d, s in names
    }


_COUNT_WORDS = {2: 'two', 3: 'three', 4: 'four'}


def _multi_sentences(objs: List[dict]) -> List[Tuple[List[int], List[str]]]:
    """Multi-target expressions of a scene: ``(object indices, sentences)``.

    Groups of >= 2 objects sharing a shape ("the two circles", "all the
    circles"), a size ("the big objects") or all the objects ("all the
    shapes"). Colours are distinct within an image, so no colour group.
    """
    groups: Dict[Tuple[int, ...], List[str]] = {}
    n = len(objs)
    for shape in SHAPES:
        idx = tuple(k for k, o in enumerate(objs) if o['shape'] == shape)
        if len(idx) >= 2:
            num = _COUNT_WORDS[len(idx)]
            cands = [
                f'the {num} {shape}s', f'all the {shape}s', f'every {shape}'
            ]
            if len(idx) == 2:
                cands.append(f'both {shape}s')
            groups.setdefault(idx, []).extend(cands)
    for size in ('big', 'small'):
        idx = tuple(k for k, o in enumerate(objs) if o['size'] == size)
        if 2 <= len(idx) < n:
            groups.setdefault(idx, []).extend([
                f'the {size} objects', f'all the {size} shapes',
                f'the {_COUNT_WORDS[len(idx)]} {size} ones'
            ])
    groups.setdefault(tuple(range(n)), []).extend(
        ['all the shapes', 'every object', f'all {_COUNT_WORDS[n]} objects'])
    # one ref per set of objects (its expressions merged)
    return [(list(idx), cands) for idx, cands in groups.items()]


def _no_target_sentences(objs: List[dict]) -> List[str]:
    """Expressions that match no object of the scene.

    An absent colour ("the purple circle"), an absent shape ("the
    triangle") or a present colour with another shape ("the red square"
    where the red object is a circle).
    """
    present = {o['colour'] for o in objs}
    shapes = {o['shape'] for o in objs}
    cands = []
    for colour in COLOURS:
        if colour not in present:
            cands += [f'the {colour} {s}' for s in SHAPES]
            cands.append(f'the {colour} one')
    for shape in SHAPES:
        if shape not in shapes:
            cands += [f'the {shape}', f'the big {shape}', f'the small {shape}']
    for o in objs:
        cands += [f'the {o["colour"]} {s}' for s in SHAPES if s != o['shape']]
    return cands


def make_synthetic_grefcoco(root: str,
                            seed: int = 0,
                            num_images: Union[None, int, Dict[str,
                                                              int]] = None,
                            image_size: Tuple[int, int] = (96, 160),
                            small: bool = False,
                            refs_format: str = 'json',
                            img_prefix: str = 'images/train2014') -> dict:
    """Write a synthetic dataset in the gRefCOCO format under ``root``.

    The images are those :func:`make_synthetic_refer` writes with the same
    ``seed``, ``num_images`` and ``image_size`` (so a RefCOCO-format and a
    gRefCOCO-format root can share them, as the real datasets do). Per
    image the refs are: one single-target ref per object (the RefCOCO
    sentences), one multi-target ref per group of >= 2 objects sharing a
    shape or size, plus "all the shapes" (``ann_id`` lists every member),
    and one no-target ref (``ann_id == [-1]``, ``category_id == [-1]``)
    such as "the purple circle" where there is none. Deterministic in the
    arguments.

    Files::

        <root>/images/train2014/COCO_train2014_%012d.jpg
        <root>/grefcoco/instances.json
        <root>/grefcoco/grefs(unc).json   (or grefs(unc).p, protocol 2)

    Args:
        root (str): Output data root (created if needed).
        seed (int): Random seed. Defaults to 0.
        num_images (int | dict, optional): As :func:`make_synthetic_refer`
            (UNC splits train/val/testA/testB). Defaults to None.
        image_size (tuple[int, int]): Side range. Defaults to (96, 160).
        small (bool): 16 images when ``num_images`` is None.
            Defaults to False.
        refs_format (str): 'json' or 'pickle'. Defaults to 'json'.
        img_prefix (str): Image folder relative to ``root``.
            Defaults to 'images/train2014'.

    Returns:
        dict: Summary with ``root``, ``refs_file``, ``instances_file``,
        ``image_dir``, ``num_images``, ``num_refs``, ``num_sentences`` and
        per split ``dict(images, refs, sentences, no_target_refs,
        multi_target_refs)``.
    """
    if refs_format not in ('json', 'pickle'):
        raise ValueError(
            f"refs_format must be 'json' or 'pickle', got {refs_format!r}")
    counts = _split_counts('unc', num_images, small)
    lo, hi, img_dir, ann_dir = _output_folders(root, img_prefix, 'grefcoco',
                                               image_size)

    images, annotations, refs = [], [], []
    splits: Dict[str, dict] = {}
    split_of_image = [name for name, n in counts.items() for _ in range(n)]
    ref_id = sent_id = 0
    for index, split in enumerate(split_of_image):
        _, image, anns, objs = _write_scene(img_dir, seed, index, lo, hi)
        images.append(image)
        annotations.extend(anns)
        stat = splits.setdefault(
            split,
            dict(
                images=0,
                refs=0,
                sentences=0,
                no_target_refs=0,
                multi_target_refs=0))
        stat['images'] += 1
        h, w = image['height'], image['width']
        # Sentence draws use their own generator: the images stay those of
        # make_synthetic_refer whatever the gRefCOCO expressions are.
        srng = np.random.default_rng([seed, index, 1])
        targets = [([k], _sentences(o, objs, h, w))
                   for k, o in enumerate(objs)]
        targets += _multi_sentences(objs)
        targets.append(([], _no_target_sentences(objs)))
        for members, cands in targets:
            sentences = _pick_sentences(srng, cands, sent_id)
            sent_id += len(sentences)
            ann_ids = [anns[k]['id'] for k in members] or [-1]
            cat_ids = [anns[k]['category_id'] for k in members] or [-1]
            refs.append(
                _ref_dict(ref_id, ann_ids, cat_ids, image['id'], split,
                          sentences))
            ref_id += 1
            stat['refs'] += 1
            stat['sentences'] += len(sentences)
            stat['no_target_refs'] += int(not members)
            stat['multi_target_refs'] += int(len(members) > 1)

    instances_file = osp.join(ann_dir, 'instances.json')
    with open(instances_file, 'w') as f:
        json.dump(
            dict(
                info=dict(
                    description=f'mmris synthetic gRefCOCO, seed {seed}'),
                images=images,
                annotations=annotations,
                categories=CATEGORIES), f)
    if refs_format == 'json':
        refs_file = osp.join(ann_dir, 'grefs(unc).json')
        with open(refs_file, 'w') as f:
            json.dump(refs, f)
    else:
        refs_file = osp.join(ann_dir, 'grefs(unc).p')
        with open(refs_file, 'wb') as f:
            pickle.dump(refs, f, protocol=2)
    return dict(
        root=root,
        dataset='grefcoco',
        split_by='unc',
        refs_file=refs_file,
        instances_file=instances_file,
        image_dir=img_dir,
        num_images=len(images),
        num_refs=len(refs),
        num_sentences=sent_id,
        splits=splits)


#: Refs of :func:`make_planted_overlap_root`: benchmark -> ``(split,
#: image_id, ann_ids, number of sentences)`` (``[-1]``: gRefCOCO no-target).
#: Object ``k`` of image ``i`` has annotation id ``10 * i + k``. Planted:
#: refcoco+ train uses image 4 (refcoco val; object 41 too), refcoco train
#: image 1 / object 11 is in refcoco+ val, image 2 / object 21 in refcocog
#: umd test, refcocog umd train uses image 5 (refcoco testA; object 52 only
#: in gRefCOCO testA), refcocog google train has objects 61 (refcoco testB)
#: and 111 (refcocog umd val), gRefCOCO train image 1 / objects 11, 12.
PLANTED_OVERLAP = {
    'refcoco': [('train', 1, [11], 2), ('train', 1, [12], 1),
                ('train', 2, [21], 3), ('train', 3, [31], 1),
                ('val', 4, [41], 2), ('val', 4, [42], 1),
                ('testA', 5, [51], 2), ('testB', 6, [61], 1)],
    'refcoco+': [('train', 4, [41], 3), ('train', 4, [43], 1),
                 ('train', 7, [71], 2), ('val', 1, [11], 1),
                 ('val', 1, [13], 2), ('testA', 8, [81], 1),
                 ('testB', 9, [91], 2)],
    'refcocog_umd': [('train', 5, [52], 2), ('train', 10, [101], 1),
                     ('val', 11, [111], 2), ('test', 2, [21], 1)],
    'refcocog_google': [('train', 6, [61], 2), ('train', 11, [111], 1),
                        ('val', 12, [121], 1)],
    'grefcoco': [('train', 1, [11, 12], 1), ('train', 13, [-1], 2),
                 ('val', 4, [41], 1), ('val', 4, [-1], 1),
                 ('testA', 5, [51, 52], 2), ('testB', 14, [141], 1)],
}

_PLANTED_FILES = {
    'refcoco': ('refcoco', 'refs(unc).p'),
    'refcoco+': ('refcoco+', 'refs(unc).p'),
    'refcocog_umd': ('refcocog', 'refs(umd).p'),
    'refcocog_google': ('refcocog', 'refs(google).p'),
    'grefcoco': ('grefcoco', 'grefs(unc).json'),
}


def make_planted_overlap_root(root: str,
                              spec: Optional[Dict[str, list]] = None
                              ) -> Dict[str, str]:
    """Write tiny REFER / gRefCOCO annotation files with known overlaps.

    For ``tools/analysis_tools/dataset_overlap.py`` and
    ``RefCOCODataset(exclude_images_of=...)`` tests: every benchmark of
    ``spec`` (default :data:`PLANTED_OVERLAP`) gets its refs file and an
    ``instances.json`` with the images (16 x 16, ``COCO_train2014_<id>``)
    and objects (a 4 x 4 square each) its refs use; refcocog's two split
    files share one ``instances.json``. No image file is written.

    Args:
        root (str): Output data root.
        spec (dict, optional): Benchmark -> refs as in
            :data:`PLANTED_OVERLAP`. Defaults to None (that).

    Returns:
        dict[str, str]: Benchmark -> refs file written.
    """
    spec = PLANTED_OVERLAP if spec is None else spec
    instances: Dict[str, dict] = {}
    written = {}
    sent_id = ref_id = 0
    for name, refs in spec.items():
        folder, filename = _PLANTED_FILES[name]
        inst = instances.setdefault(folder, dict(images={}, annotations={}))
        out = []
        for split, image_id, ann_ids, n_sents in refs:
            inst['images'][image_id] = dict(
                id=image_id,
                file_name=f'COCO_train2014_{image_id:012d}.jpg',
                height=16,
                width=16)
            for ann_id in ann_ids:
                if ann_id == -1:
                    continue
                x = 4 * (ann_id % 3)
                inst['annotations'][ann_id] = dict(
                    id=ann_id,
                    image_id=image_id,
                    category_id=1,
                    iscrowd=0,
                    segmentation=[[x, 2, x + 4, 2, x + 4, 6, x, 6]],
                    area=16.0,
                    bbox=[x, 2, 4, 4])
            sentences = [
                dict(
                    sent=f'object {s}',
                    raw=f'Object {s}.',
                    tokens=['object', str(s)],
                    sent_id=s) for s in range(sent_id, sent_id + n_sents)
            ]
            sent_id += n_sents
            ann = ann_ids if name == 'grefcoco' else ann_ids[0]
            out.append(
                _ref_dict(ref_id, ann,
                          [1 if a != -1 else -1
                           for a in ann_ids] if name == 'grefcoco' else 1,
                          image_id, split, sentences))
            ref_id += 1
        os.makedirs(osp.join(root, folder), exist_ok=True)
        path = osp.join(root, folder, filename)
        if filename.endswith('.json'):
            with open(path, 'w') as f:
                json.dump(out, f)
        else:
            with open(path, 'wb') as f:
                pickle.dump(out, f, protocol=2)
        written[name] = path
    for folder, inst in instances.items():
        with open(osp.join(root, folder, 'instances.json'), 'w') as f:
            json.dump(
                dict(
                    images=list(inst['images'].values()),
                    annotations=list(inst['annotations'].values()),
                    categories=CATEGORIES[:1]), f)
    return written
