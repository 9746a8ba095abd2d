# Copyright (c) mmris contributors. All rights reserved.
"""gRefCOCO (generalized RIS, GRES, CVPR 2023) read straight from its files.

Expected layout (the gRefCOCO release of henghuiding/ReLA, loaded there by
``gres_model/data/datasets/grefcoco.py`` / ``grefer.py``)::

    <data_root>/
    ├── images/train2014/COCO_train2014_000000000009.jpg ...
    └── grefcoco/{grefs(unc).json | grefs(unc).p, instances.json}

A gRefCOCO ref is a REFER ref whose ``ann_id`` and ``category_id`` are
lists: one id for a single target, several ids for a multi-target
expression (its ground truth is the union of their masks), ``[-1]`` for a
no-target expression (empty ground truth). Splits: train, val, testA,
testB (RefCOCO's UNC image splits).

Train on gRefCOCO + RefCOCO together (ReLA's ``grefcoco_full``) with
MMEngine's ``ConcatDataset`` of a :class:`GRefCOCODataset` and a
:class:`~mmris.datasets.RefCOCODataset` (``configs/_base_/datasets/
grefcoco_full.py``); the RefCOCO samples are one-target samples.
"""
import os.path as osp
import warnings
from typing import Any, Dict, List, Tuple

from mmseg.registry import DATASETS

from .refcoco import (GREF_REQUIRED, LAYOUT_HINT, RefCOCODataset, check_ref,
                      check_same_image, load_instances)
from .refer_io import AnnotationFileError, load_json, load_refer_pickle

#: Keys every gRefCOCO ref must have (checked at load time).
GREF_KEYS = GREF_REQUIRED
#: ``ann_id`` of a no-target expression.
NO_TARGET_ID = -1


def gref_paths(data_root: str,
               dataset: str = 'grefcoco',
               split_by: str = 'unc') -> Tuple[str, str]:
    """Paths of the gRefCOCO refs file and its ``instances.json``.

    ``grefs(<split_by>).json`` is preferred; the ``.p`` pickle variant is
    used when no JSON file exists.

    Args:
        data_root (str): Root directory.
        dataset (str): Folder. Defaults to 'grefcoco'.
        split_by (str): Defaults to 'unc'.

    Returns:
        tuple[str, str]: The refs file and ``instances.json`` paths.
    """
    folder = osp.join(data_root or '', dataset)
    refs = osp.join(folder, f'grefs({split_by}).json')
    if not osp.isfile(refs) and osp.isfile(refs[:-len('json')] + 'p'):
        refs = refs[:-len('json')] + 'p'
    return refs, osp.join(folder, 'instances.json')


def target_ann_ids(ref: dict, refs_file: str) -> List[int]:
    """The annotation ids a gRefCOCO ref refers to; ``[]`` for no target.

    Args:
        ref (dict): The ref (``ann_id`` an int or a list of ints).
        refs_file (str): Its file, named in errors.

    Returns:
        list[int]: The target annotation ids (empty for ``[-1]``).

    Raises:
        AnnotationFileError: If ``ann_id`` is empty, not ints, or mixes -1
            with real ids.
    """
    ann_ids = ref['ann_id']
    if not isinstance(ann_ids, (list, tuple)):
        ann_ids = [ann_ids]
    if not ann_ids or not all(
            isinstance(a, int) and not isinstance(a, bool) for a in ann_ids):
        raise AnnotationFileError(
            f'{refs_file}: ref_id {ref["ref_id"]} has ann_id {ann_ids!r}; '
            'expected a list of annotation ids, or [-1] for a no-target '
            'expression')
    if NO_TARGET_ID in ann_ids:
        if len(ann_ids) > 1:
            raise AnnotationFileError(
                f'{refs_file}: ref_id {ref["ref_id"]} mixes the no-target id '
                f'-1 with annotation ids: ann_id {list(ann_ids)}')
        return []
    return list(ann_ids)


def load_grefs(refs_file: str) -> List[dict]:
    """Load ``grefs(unc).json`` (or the ``.p`` pickle) safely.

    JSON goes through :func:`~mmris.datasets.refer_io.load_json`, the
    pickle through :func:`~mmris.datasets.refer_io.load_refer_pickle`
    (every pickled global refused). The file must hold a list of refs
    with ``ref_id``, ``image_id``, ``ann_id`` and ``split`` (a dict with a
    ``refs`` list is accepted too), of the types
    :func:`~mmris.datasets.refcoco.check_ref` checks.

    Args:
        refs_file (str): Path of the file.

    Returns:
        list[dict]: The refs.

    Raises:
        FileNotFoundError: If the file is missing.
        AnnotationFileError: If it is corrupt or not a list of refs.
        RefusedGlobalError: If a pickle references any global.
    """
    if not osp.isfile(refs_file):
        raise FileNotFoundError(
            f'gRefCOCO refs file not found: {refs_file}. Expected '
            '<data_root>/grefcoco/grefs(unc).json (or .p) and '
            f'<data_root>/grefcoco/instances.json. {LAYOUT_HINT}')
    loader = load_refer_pickle if refs_file.endswith('.p') else load_json
    refs: Any = loader(refs_file)
    if isinstance(refs, dict) and isinstance(refs.get('refs'), list):
        refs = refs['refs']
    if not isinstance(refs, list):
        raise AnnotationFileError(
            f'{refs_file} should hold a list of gRefCOCO refs, got '
            f'{type(refs).__name__}')
    for k, ref in enumerate(refs):
        check_ref(ref, k, refs_file, generalized=True)
    return refs


def union_segmentation(segmentations: List[Any], height: int,
                       width: int) -> Any:
    """One COCO segmentation whose mask is the union of ``segmentations``.

    Polygon lists are concatenated (``decode_segmentation`` rasterises the
    union of all parts); when any of them is an RLE, all are merged into
    one compressed RLE. No segmentation gives ``[]`` (an empty mask).

    Args:
        segmentations (list): COCO segmentations (polygons or RLE).
        height (int): Image height.
        width (int): Image width.

    Returns:
        list | dict: Polygons or a compressed RLE dict.
    """
    if len(segmentations) == 1:
        return segmentations[0]
    if all(isinstance(s, (list, tuple)) for s in segmentations):
        return [poly for seg in segmentations for poly in seg]
    from pycocotools import mask as mask_utils

    from .transforms.loading import _polygons, _rle
    rles = []
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        for seg in segmentations:
            if isinstance(seg, dict):
                rles.append(_rle(mask_utils, seg, height, width))
            else:
                polys = _polygons(seg)
                if polys:
                    rles.extend(mask_utils.frPyObjects(polys, height, width))
        if not rles:
            return []
        merged = mask_utils.merge(rles)
    counts = merged['counts']
    return dict(
        size=[int(v) for v in merged['size']],
        counts=counts.decode('ascii') if isinstance(counts, bytes) else counts)


@DATASETS.register_module()
class GRefCOCODataset(RefCOCODataset):
    """Generalized referring segmentation: zero, one or several targets.

    Subclass of :class:`~mmris.datasets.RefCOCODataset` with the same modes
    (``'train'``: one sample per ref with a sentence drawn per epoch, keyed
    by ``(seed, epoch, idx)`` as for RefCOCO; ``'test'``: one sample per
    sentence; ``'val_first'``: sentence 0 of each ref) and data infos, where

    - ``ann_id`` and ``category_id`` are lists (empty for no target), as
      the ref lists them,
    - ``segmentation`` is the union of the targets' segmentations (``[]``,
      an empty mask, for a no-target expression), decoded by
      ``LoadRefMask`` like a single object's,
    - ``no_target`` (bool), ``num_targets`` (int, the ids listed) and
      ``crowd_ann_ids`` (the listed crowd regions, left out of the
      segmentation) are added; with ``PackRISInputs`` the first two reach
      the ``SegDataSample`` metainfo,
    - ``text`` is the sentence's ``raw`` field.

    As ReLA (henghuiding/ReLA): crowd annotations (``iscrowd``) are left
    out of a ref's ground truth (``grefer.py``: ``if not ann['iscrowd']``;
    ``gres_model/data/datasets/grefcoco.py`` skips them), and the text is
    the annotator's ``raw`` sentence (``gres_model/data/dataset_mappers/
    refcoco_mapper.py`` tokenizes ``dataset_dict['sentence']['raw']``).
    Each listed crowd region is named in a load-time warning.

    No-target samples are kept in every mode (their empty mask is the
    target); a target ref whose annotations all rasterise to nothing (or
    are all crowd regions) is skipped in training, like an empty RefCOCO
    mask, and kept (IoU 0) in evaluation.

    Args:
        data_root (str): Root holding ``grefcoco/grefs(unc).json`` (or
            ``.p``), ``grefcoco/instances.json`` and the images.
        dataset (str): Folder. Defaults to 'grefcoco'.
        split_by (str): Defaults to 'unc' (the only gRefCOCO split).
        sentence_field (str): ``'raw'`` (ReLA) or ``'sent'`` (REFER's
            pre-processed text, mmris before 2026-12). Defaults to 'raw'.
        include_crowd (bool): Put crowd regions into the ground truth
            (mmris before 2026-12; not ReLA). Defaults to False.
        **kwargs: The other arguments of
            :class:`~mmris.datasets.RefCOCODataset` (``split``, ``mode``,
            ``img_prefix``, ``skip_missing_ann``, ``skip_empty_masks``,
            ``img_size``, ``word_len``, ``pipeline``, ...).
    """

    def __init__(self,
                 data_root: str,
                 dataset: str = 'grefcoco',
                 split_by: str = 'unc',
                 sentence_field: str = 'raw',
                 include_crowd: bool = False,
                 **kwargs) -> None:
        self.include_crowd = bool(include_crowd)
        super().__init__(
            data_root=data_root,
            dataset=dataset,
            split_by=split_by,
            sentence_field=sentence_field,
            **kwargs)

    def _join_prefix(self) -> None:
        """Point ``ann_file`` at the JSON file, or the pickle if only it
        exists."""
        super()._join_prefix()
        self.ann_file = gref_paths(self.data_root, self.dataset,
                                   self.split_by)[0]

    @property
    def instances_file(self) -> str:
        """Path of ``<data_root>/grefcoco/instances.json``."""
        return gref_paths(self.data_root, self.dataset, self.split_by)[1]

    def load_data_list(self) -> List[dict]:
        """Read the gRefCOCO refs and instances file into data infos."""
        refs_file = self.ann_file
        split_refs = self._split_refs(load_grefs(refs_file), refs_file)
        imgs, anns, _ = load_instances(self.instances_file)
        img_dir = self.data_prefix['img_path']
        data_list: List[dict] = []
        degenerate: List[str] = []
        n_missing = n_empty = 0
        checked: Dict[int, Tuple[List[str], int]] = {}
        excluded = self._excluded_images()
        dropped: Dict[str, Any] = dict(refs=0, sentences=0, images=set())
        for ref in split_refs:
            ref_id, image_id = ref['ref_id'], ref['image_id']
            if self._exclude(ref, image_id, excluded, dropped):
                continue
            img = imgs.get(image_id)
            if img is None:
                raise KeyError(f'{refs_file}: ref_id {ref_id}: image_id '
                               f'{image_id} is absent from '
                               f'{self.instances_file}')
            ann_ids = target_ann_ids(ref, refs_file)
            absent = [a for a in ann_ids if a not in anns]
            if absent:
                if self.skip_missing_ann:
                    n_missing += 1
                    continue
                raise KeyError(
                    f'{refs_file}: ref_id {ref_id} refers to ann_id '
                    f'{absent}, absent from {self.instances_file} (pass '
                    'skip_missing_ann=True to skip such refs)')
            check_same_image(ref, [anns[a] for a in ann_ids], refs_file,
                             self.instances_file)
            sentences = self._sentences(ref, refs_file)
            if not sentences:
                continue
            crowd = [a for a in ann_ids if anns[a].get('iscrowd')]
            used = ann_ids if self.include_crowd else [
                a for a in ann_ids if a not in crowd
            ]
            if not self.include_crowd:
                degenerate.extend(
                    f'ref_id {ref_id} ann_id {a}: a crowd region (iscrowd) '
                    'left out of the target, as ReLA' for a in crowd)
            area = 0
            for ann_id in used:
                if ann_id not in checked:
                    checked[ann_id] = self._inspect(ref_id, anns[ann_id], img)
                problems, ann_area = checked[ann_id]
                area += ann_area
                if problems:
                    degenerate.append(f'ref_id {ref_id} ann_id {ann_id}: ' +
                                      ', '.join(problems))
            if ann_ids and area == 0:
                n_empty += 1
                if self.skip_empty_masks:
                    continue
            cat_ids = ref.get('category_id',
                              [anns[a].get('category_id') for a in ann_ids])
            if not isinstance(cat_ids, (list, tuple)):
                cat_ids = [cat_ids]
            base = dict(
                img_path=osp.join(img_dir, img['file_name']),
                ref_id=ref_id,
                ann_id=ann_ids,
                image_id=image_id,
                category_id=[c for c in cat_ids if c != NO_TARGET_ID],
                segmentation=union_segmentation(
                    [anns[a]['segmentation'] for a in used] or [[]],
                    img['height'], img['width']),
                height=int(img['height']),
                width=int(img['width']),
                split=self.split,
                dataset=self.dataset,
                num_sents=len(sentences),
                no_target=not ann_ids,
                num_targets=len(ann_ids),
                crowd_ann_ids=crowd,
            )
            self._append_samples(data_list, base, sentences)
        self._warn_skipped(n_missing, degenerate, n_empty)
        self._report_excluded(dropped, len(data_list))
        return data_list
