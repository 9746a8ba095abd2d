# Copyright (c) mmris contributors. All rights reserved.
"""Fuzz targets of the annotation loaders (:mod:`mmris.testing.fuzz`): the
REFER refs pickle, the gRefCOCO refs JSON and the COCO ``instances.json``.

Each target loads the input the way training and evaluation do: the
dataset (``RefCOCODataset`` / ``GRefCOCODataset``, test mode, each split;
``serialize_data=False``: MMEngine's serialisation only pickles the result
and its ``gc.collect()`` would take 98% of the time) reads it next to valid
files of a small synthetic root written by the seed function into the
campaign's scratch folder, then every sample's mask is decoded
(``LoadRefMask``). A clean refusal is an
``AnnotationFileError`` / ``RefusedGlobalError`` (or the datasets'
``KeyError`` / ``ValueError`` for an absent annotation, image or split)
naming the input file.
"""
import json
import os.path as osp
import pickle
from typing import List

from .fuzz import FuzzTarget, register_target

__all__ = [
    'refer_seeds', 'grefs_seeds', 'instances_seeds', 'load_refer',
    'load_grefs', 'load_instances'
]

#: Folder of the synthetic root inside the campaign's scratch folder.
ROOT = 'annotation_root'
#: Images per split of the synthetic roots (few: every input decodes all
#: masks).
SPLITS = dict(train=1, val=2, testA=1, testB=1)


def _root(folder: str) -> str:
    """Write (once) the synthetic REFER + gRefCOCO root of the targets."""
    from .synthetic import make_synthetic_grefcoco, make_synthetic_refer
    root = osp.join(folder, ROOT)
    if not osp.isdir(osp.join(root, 'grefcoco')):
        make_synthetic_refer(root, seed=0, num_images=SPLITS)
        make_synthetic_grefcoco(root, seed=0, num_images=SPLITS)
        _add_rle_and_crowd(root)
    return root


def _add_rle_and_crowd(root: str) -> None:
    """Give the gRefCOCO root an RLE object (compressed counts) and a crowd
    region (uncompressed counts) listed in a multi-target ref, as COCO has
    them."""
    import numpy as np
    from pycocotools import mask as mask_utils
    path = osp.join(root, 'grefcoco', 'instances.json')
    with open(path) as f:
        inst = json.load(f)
    img = inst['images'][-1]
    h, w = img['height'], img['width']
    block = np.zeros((h, w), np.uint8, order='F')
    block[h // 4:h // 2, w // 4:w // 2] = 1
    rle = mask_utils.encode(block)
    flat = block.T.reshape(-1)
    edges = np.flatnonzero(np.diff(flat)) + 1
    counts = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    ids = [a['id'] for a in inst['annotations']]
    inst['annotations'] += [
        dict(
            id=max(ids) + 1,
            image_id=img['id'],
            category_id=1,
            iscrowd=0,
            segmentation=dict(
                size=[h, w], counts=rle['counts'].decode('ascii')),
            area=float(block.sum()),
            bbox=[w // 4, h // 4, w // 4, h // 4]),
        dict(
            id=max(ids) + 2,
            image_id=img['id'],
            category_id=1,
            iscrowd=1,
            segmentation=dict(size=[h, w], counts=counts),
            area=float(block.sum()),
            bbox=[w // 4, h // 4, w // 4, h // 4]),
    ]
    with open(path, 'w') as f:
        json.dump(inst, f)
    refs_path = osp.join(root, 'grefcoco', 'grefs(unc).json')
    with open(refs_path) as f:
        refs = json.load(f)
    multi = next(r for r in refs
                 if r['image_id'] == img['id'] and len(r['ann_id']) > 1)
    multi['ann_id'] += [max(ids) + 1, max(ids) + 2]
    multi['category_id'] += [1, 1]
    with open(refs_path, 'w') as f:
        json.dump(refs, f)


def _python2(obj):
    """``obj`` with every str as a Python 2 byte string (UTF-8)."""
    if isinstance(obj, str):
        return obj.encode('utf-8')
    if isinstance(obj, dict):
        return {_python2(k): _python2(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_python2(v) for v in obj]
    return obj


def refer_seeds(folder: str) -> List[bytes]:
    """The synthetic refcoco ``refs(unc).p`` as Python 3 writes it
    (protocol 2, with memo references) and as Python 2 wrote the originals
    (protocol 0 and 2, byte strings; one sentence not valid UTF-8)."""
    from .synthetic import python2_pickle_dumps
    with open(osp.join(_root(folder), 'refcoco', 'refs(unc).p'), 'rb') as f:
        raw = f.read()
    refs = pickle.loads(raw)
    py2 = _python2(refs)
    py2[0][b'sentences'][0][b'sent'] = b'the gar\xe7on'
    return [
        raw,
        python2_pickle_dumps(_python2(refs), 0),
        python2_pickle_dumps(py2, 2)
    ]


def grefs_seeds(folder: str) -> List[bytes]:
    """The synthetic ``grefs(unc).json`` (single, multi-target with an RLE
    object and a crowd region, no-target refs)."""
    with open(osp.join(_root(folder), 'grefcoco', 'grefs(unc).json'),
              'rb') as f:
        return [f.read()]


def instances_seeds(folder: str) -> List[bytes]:
    """The synthetic gRefCOCO ``instances.json`` (polygons, compressed and
    uncompressed RLE, a crowd region)."""
    with open(osp.join(_root(folder), 'grefcoco', 'instances.json'),
              'rb') as f:
        return [f.read()]


def _decode_all(dataset) -> None:
    from mmris.datasets.transforms import LoadRefMask
    load = LoadRefMask()
    for i in range(len(dataset)):
        load(dict(dataset.get_data_info(i)))


def _load_splits(dataset_cls, path: str) -> None:
    """Every split of ``dataset_cls`` read from the refs file ``path``,
    every mask decoded."""
    root = osp.join(osp.dirname(path), ROOT)
    for split in SPLITS:
        dataset = dataset_cls(
            root,
            split=split,
            mode='test',
            lazy_init=True,
            serialize_data=False)
        dataset.ann_file = path
        try:
            dataset.full_init()
        except ValueError as err:
            if f"Split {split!r} has no refs" in str(err):
                continue  # a mutation moved every ref to another split
            raise
        _decode_all(dataset)


def load_refer(path: str) -> None:
    """RefCOCODataset reading the refs pickle ``path``."""
    from mmris.datasets import RefCOCODataset
    _load_splits(RefCOCODataset, path)


def load_grefs(path: str) -> None:
    """GRefCOCODataset reading the refs JSON ``path``."""
    from mmris.datasets import GRefCOCODataset
    _load_splits(GRefCOCODataset, path)


def load_instances(path: str) -> None:
    """GRefCOCODataset reading the COCO instances file ``path``."""
    from mmris.datasets import GRefCOCODataset

    class Dataset(GRefCOCODataset):

        @property
        def instances_file(self) -> str:
            return path

    root = osp.join(osp.dirname(path), ROOT)
    for split in SPLITS:
        _decode_all(
            Dataset(root, split=split, mode='test', serialize_data=False))


_ERRORS = ('mmris.datasets.refer_io.AnnotationFileError',
           'mmris.datasets.refer_io.RefusedGlobalError', 'builtins.KeyError',
           'builtins.ValueError')

register_target(
    FuzzTarget(
        name='refer_pickle',
        load='mmris.testing.fuzz_annotation_targets:load_refer',
        seeds='mmris.testing.fuzz_annotation_targets:refer_seeds',
        errors=_ERRORS,
        suffix='.p',
        mutators=('mmris.testing.fuzz:mutate_pickle', )))

register_target(
    FuzzTarget(
        name='grefcoco_json',
        load='mmris.testing.fuzz_annotation_targets:load_grefs',
        seeds='mmris.testing.fuzz_annotation_targets:grefs_seeds',
        errors=_ERRORS,
        suffix='.json',
        mutators=('mmris.testing.fuzz:mutate_json', )))

register_target(
    FuzzTarget(
        name='instances_json',
        load='mmris.testing.fuzz_annotation_targets:load_instances',
        seeds='mmris.testing.fuzz_annotation_targets:instances_seeds',
        errors=_ERRORS,
        suffix='.json',
        mutators=('mmris.testing.fuzz:mutate_json', )))
