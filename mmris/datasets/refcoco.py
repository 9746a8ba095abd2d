# Copyright (c) mmris contributors. All rights reserved.
"""RefCOCO / RefCOCO+ / RefCOCOg read straight from the REFER files.

Expected layout (L. Yu's REFER API, lichengunc/refer, refer.py)::

    <data_root>/
    ├── images/train2014/COCO_train2014_000000000009.jpg ...
    ├── refcoco/{instances.json, refs(unc).p, refs(google).p}
    ├── refcoco+/{instances.json, refs(unc).p}
    └── refcocog/{instances.json, refs(umd).p, refs(google).p}

Mixed training (DETRIS-L*, DETRIS's ``refcoco_mixed``) needs no extra
class: concatenate several datasets with MMEngine's ``ConcatDataset``::

    train_dataloader = dict(dataset=dict(
        type='ConcatDataset',
        datasets=[
            dict(type='RefCOCODataset', dataset='refcoco', split_by='unc',
                 split='train', ...),
            dict(type='RefCOCODataset', dataset='refcoco+', split_by='unc',
                 split='train', ...),
            dict(type='RefCOCODataset', dataset='refcocog', split_by='umd',
                 split='train', ...),
        ]))

All RefCOCODataset instances share the same ``metainfo`` so the wrapper
accepts them. Note that the three datasets share COCO train2014 images, so
train images of one are evaluation images of another (a known caveat).

Trust: ``refs(*).p`` files come from mirrors (the original links are dead),
so they are read by :func:`~mmris.datasets.refer_io.load_refer_pickle`,
which refuses every pickled global; corrupt files fail naming the file.
Degenerate annotations (empty segmentation, polygons with < 3 points, an
odd number of coordinates or no area) are listed in a warning at load time
and empty masks are never trained on (``skip_empty_masks``). Images are
decoded in the stored pixel order of the COCO annotations and checked
against their ``height`` / ``width`` (``LoadRefImage``).
"""
import os.path as osp
import warnings
from typing import Any, Dict, FrozenSet, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.dataset import BaseDataset
from mmseg.registry import DATASETS

from .refer_io import (INT_LIMIT, AnnotationFileError, load_json,
                       load_refer_pickle)
from .transforms.loading import inspect_segmentation

#: Official number of referred objects per split, keyed by
#: ``(dataset, split_by)``, as hard-coded in the official code
#: (jiaqihuang01/DETRIS, utils/dataset.py).
OFFICIAL_SPLIT_SIZES: Dict[Tuple[str, str], Dict[str, int]] = {
    ('refcoco', 'unc'): dict(train=42404, val=3811, testA=1975, testB=1810),
    ('refcoco+', 'unc'): dict(train=42278, val=3805, testA=1975, testB=1798),
    ('refcocog', 'umd'): dict(train=42226, val=2573, test=5023),
    ('refcocog', 'google'): dict(train=44822, val=5000),
}

#: Short names (check script, configs) -> ``(dataset, split_by)``.
REFER_DATASETS: Dict[str, Tuple[str, str]] = {
    'refcoco': ('refcoco', 'unc'),
    'refcoco+': ('refcoco+', 'unc'),
    'refcocog_umd': ('refcocog', 'umd'),
    'refcocog_u': ('refcocog', 'umd'),
    'refcocog_google': ('refcocog', 'google'),
    'refcocog_g': ('refcocog', 'google'),
}

#: Keys every ref / image / annotation must have (checked at load time).
REF_KEYS = ('ref_id', 'ann_id', 'split')
#: Keys every gRefCOCO ref must have.
GREF_REQUIRED = ('ref_id', 'image_id', 'ann_id', 'split')
IMAGE_KEYS = ('id', 'file_name', 'height', 'width')
ANN_KEYS = ('id', 'image_id', 'segmentation')
#: Degenerate annotations spelled out in the load-time warning.
MAX_LISTED = 5

SPLIT_BYS = ('unc', 'umd', 'google')
#: Text fields of a REFER sentence: ``sent`` (REFER's pre-processed text,
#: what ETRIS / BarLeRIa / DETRIS read) and ``raw`` (the annotator's text,
#: what ReLA reads for gRefCOCO).
SENTENCE_FIELDS = ('sent', 'raw')
MODES = ('train', 'test', 'val_first')

LAYOUT_HINT = ('Expected layout: <data_root>/<dataset>/refs(<split_by>).p, '
               '<data_root>/<dataset>/instances.json and images under '
               '<data_root>/images/train2014/ (see '
               'tools/dataset_converters/check_refer_root.py).')


def refer_paths(data_root: str, dataset: str,
                split_by: str) -> Tuple[str, str]:
    """Paths of the REFER refs pickle and COCO instances file.

    Args:
        data_root (str): Root directory.
        dataset (str): 'refcoco', 'refcoco+' or 'refcocog'.
        split_by (str): 'unc', 'umd' or 'google'.

    Returns:
        tuple[str, str]: ``refs(<split_by>).p`` and ``instances.json`` paths.
    """
    folder = osp.join(data_root or '', dataset)
    return (osp.join(folder,
                     f'refs({split_by}).p'), osp.join(folder,
                                                      'instances.json'))


def describe_type(value: Any) -> str:
    """``'an int'``, ``'a str'``, ... for error messages."""
    name = type(value).__name__
    return f'{"an" if name[:1] in "aeiou" else "a"} {name}'


def is_id(value: Any) -> bool:
    """Whether ``value`` is an integer id (not a bool, ``|v| < 2**63``)."""
    return (isinstance(value, int) and not isinstance(value, bool)
            and -INT_LIMIT < value < INT_LIMIT)


def check_ref(ref: Any,
              k: int,
              refs_file: str,
              generalized: bool = False) -> None:
    """Check the types of one ref (the fields mmris reads).

    ``ref_id``, ``image_id`` (optional for REFER) and ``category_id``
    (optional) are integer ids, ``split`` a string, ``ann_id`` an id
    (gRefCOCO: an id or a list of them), ``sentences`` (optional) a list of
    dicts whose ``sent`` / ``raw`` (when present) are strings and
    ``sent_id`` (when present) an id.

    Args:
        ref (Any): The ref.
        k (int): Its position in the file.
        refs_file (str): The file, named in errors.
        generalized (bool): gRefCOCO rules (``image_id`` required, lists
            of ids). Defaults to False.

    Raises:
        AnnotationFileError: Naming the file, the ref and the field.
    """
    keys = GREF_REQUIRED if generalized else REF_KEYS
    missing = ([] if not isinstance(ref, dict) else
               [key for key in keys if key not in ref])
    if not isinstance(ref, dict) or missing:
        what = (f'is {describe_type(ref)}' if not isinstance(ref, dict) else
                f'has no {", ".join(map(repr, missing))}')
        raise AnnotationFileError(
            f'{refs_file}: ref {k} {what}; every '
            f'{"gRefCOCO " if generalized else ""}ref must be a dict with '
            f'{", ".join(map(repr, keys))}')
    where = (f'ref_id {ref["ref_id"]}' if is_id(ref['ref_id']) else
             f'ref {k} (ref_id {ref["ref_id"]!r:.40})')

    def fail(field: str, value: Any, expected: str) -> None:
        raise AnnotationFileError(
            f'{refs_file}: {where}: {field!r} is {describe_type(value)} '
            f'({value!r:.40}); expected {expected}')

    def ids(value: Any) -> bool:
        return is_id(value) or generalized and isinstance(value, list) and all(
            is_id(v) for v in value)

    if not is_id(ref['ref_id']):
        fail('ref_id', ref['ref_id'], 'an integer id')
    if not isinstance(ref['split'], str):
        fail('split', ref['split'], 'a split name')
    if 'image_id' in ref and not is_id(ref['image_id']):
        fail('image_id', ref['image_id'], 'an integer id')
    if not ids(ref['ann_id']):
        if generalized:
            raise AnnotationFileError(
                f'{refs_file}: {where}: \'ann_id\' is {ref["ann_id"]!r:.60}; '
                'expected a list of annotation ids, or [-1] for a no-target '
                'expression')
        fail('ann_id', ref['ann_id'], 'an integer id')
    if 'category_id' in ref and not ids(ref['category_id']):
        fail('category_id', ref['category_id'],
             'a category id' + (' or a list of them' if generalized else ''))
    sentences = ref.get('sentences', [])
    if not isinstance(sentences, list):
        fail('sentences', sentences, 'a list of sentence dicts')
    for n, sent in enumerate(sentences):
        if not isinstance(sent, dict):
            raise AnnotationFileError(
                f'{refs_file}: {where}: sentence {n} is '
                f'{describe_type(sent)} ({sent!r:.40}); expected a dict with '
                "'sent' / 'raw' and 'sent_id'")
        for field in ('sent', 'raw'):
            if field in sent and not isinstance(sent[field], (str, bytes)):
                fail(field, sent[field], f'the text of sentence {n}')
        if 'sent_id' in sent and not is_id(sent['sent_id']):
            fail('sent_id', sent['sent_id'], 'an integer id')


def check_same_image(ref: dict, anns: Sequence[dict], refs_file: str,
                     instances_file: str) -> None:
    """A ref's annotations must lie on its image (REFER builds refs from
    the annotations; ReLA asserts it: gres_model/data/datasets/
    grefcoco.py ``assert anno_dict["image_id"] == image_id``).

    Raises:
        AnnotationFileError: Naming both files, the ref and the ann.
    """
    image_id = ref.get('image_id')
    if image_id is None:
        return
    for ann in anns:
        if ann['image_id'] != image_id:
            raise AnnotationFileError(
                f'{refs_file}: ref_id {ref["ref_id"]} is on image_id '
                f'{image_id}, but its ann_id {ann["id"]} is on image_id '
                f'{ann["image_id"]} in {instances_file}')


def load_refs(refs_file: str) -> List[dict]:
    """Load a REFER ``refs(*).p`` pickle safely (Python 2 pickles too).

    The pickle is read by :func:`~mmris.datasets.refer_io.load_refer_pickle`
    (every pickled global refused, Python 2 strings decoded as UTF-8) and
    must be a list of dicts with ``ref_id``, ``ann_id`` and ``split``.

    Args:
        refs_file (str): Path of the pickle.

    Returns:
        list[dict]: The refs.

    Raises:
        FileNotFoundError: If the file is missing.
        AnnotationFileError: If it is corrupt or not a list of refs.
        RefusedGlobalError: If it pickles any global (class or function).
    """
    if not osp.isfile(refs_file):
        raise FileNotFoundError(
            f'REFER refs file not found: {refs_file}. {LAYOUT_HINT}')
    refs = load_refer_pickle(refs_file)
    if not isinstance(refs, list):
        raise AnnotationFileError(
            f'{refs_file} should hold a list of refs, got '
            f'{type(refs).__name__}')
    for k, ref in enumerate(refs):
        check_ref(ref, k, refs_file)
    return refs


def load_instances(instances_file: str) -> Tuple[dict, dict, dict]:
    """Load a COCO-format ``instances.json``, indexed by id.

    Args:
        instances_file (str): Path of the json file.

    Returns:
        tuple[dict, dict, dict]: images, annotations and categories indexed
        by id (as pycocotools' ``COCO.imgs``, ``anns``, ``cats``).

    Raises:
        FileNotFoundError: If the file is missing.
        AnnotationFileError: If it is corrupt (e.g. truncated) or lacks the
            ``images`` / ``annotations`` lists or their needed keys.
    """
    if not osp.isfile(instances_file):
        raise FileNotFoundError(
            f'COCO instances file not found: {instances_file}. {LAYOUT_HINT}')
    data = load_json(instances_file)
    if not isinstance(data, dict):
        raise AnnotationFileError(
            f'{instances_file} should hold a COCO dict with "images" and '
            f'"annotations", got a {type(data).__name__}')
    indexed = []
    for field, keys in (('images', IMAGE_KEYS), ('annotations', ANN_KEYS),
                        ('categories', ('id', ))):
        items = data.get(field, [] if field == 'categories' else None)
        if not isinstance(items, list):
            raise AnnotationFileError(
                f'{instances_file} has no "{field}" list (COCO format '
                'expected)')
        index = {}
        for k, item in enumerate(items):
            missing = ([] if not isinstance(item, dict) else
                       [key for key in keys if key not in item])
            if not isinstance(item, dict) or missing:
                raise AnnotationFileError(
                    f'{instances_file}: {field}[{k}] lacks '
                    f'{", ".join(map(repr, missing or keys))}')
            problem = _item_problem(field, item)
            if problem:
                raise AnnotationFileError(
                    f'{instances_file}: {field}[{k}] (id {item["id"]!r:.40}'
                    f'): {problem}')
            index[item['id']] = item
        indexed.append(index)
    imgs, anns, cats = indexed
    return imgs, anns, cats


def _item_problem(field: str, item: dict) -> Optional[str]:
    """What is wrong with the types of one ``images`` / ``annotations`` /
    ``categories`` entry of ``instances.json`` (None if nothing)."""
    checks = [('id', is_id, 'an integer id')]
    if field == 'images':
        checks += [
            ('file_name', lambda v: isinstance(v, str), 'a file name'),
            ('height', lambda v: is_id(v) and v > 0, 'a positive integer'),
            ('width', lambda v: is_id(v) and v > 0, 'a positive integer'),
        ]
    elif field == 'annotations':
        checks += [
            ('image_id', is_id, 'an integer id'),
            ('segmentation', lambda v: isinstance(v, (list, dict)),
             'polygons (a list) or an RLE (a dict)'),
            ('category_id', is_id, 'an integer id'),
            ('iscrowd', lambda v: v in
             (0, 1) and not isinstance(v, float), '0 or 1'),
            ('bbox', lambda v: isinstance(v, list) and len(v) <= 4 and all(
                isinstance(x, (int, float)) and not isinstance(x, bool)
                for x in v), '[x, y, w, h]'),
        ]
    for key, ok, expected in checks:
        if key in item and not ok(item[key]):
            return (f'{key!r} is {describe_type(item[key])} '
                    f'({item[key]!r:.40}); expected {expected}')
    return None


def sentence_text(sent: dict, field: str, where: str) -> str:
    """The text of a REFER sentence dict: its ``field`` (``'sent'`` or
    ``'raw'``), stripped; Python 3 ``bytes`` are decoded as UTF-8.

    Args:
        sent (dict): The sentence.
        field (str): The field to read.
        where (str): Names the file, ref and sentence in the error.

    Raises:
        AnnotationFileError: If the sentence has no ``field``.
    """
    if field not in sent:
        others = [k for k in SENTENCE_FIELDS if k in sent and k != field]
        hint = (f" (it has {', '.join(map(repr, others))}: set the "
                f"dataset's sentence_field={others[0]!r} to read it)"
                if others else '')
        raise AnnotationFileError(f'{where} has no {field!r}{hint}')
    text = sent[field]
    if isinstance(text, bytes):
        text = text.decode('utf-8', errors='replace')
    return text.strip()


@DATASETS.register_module()
class RefCOCODataset(BaseDataset):
    """Referring image segmentation dataset in the REFER format.

    One referred object (= one ref) is one sample in ``'train'`` and
    ``'val_first'`` modes; one sentence is one sample in ``'test'`` mode:

    - ``'train'``: every access draws one sentence uniformly at random with
      ``np.random`` (seeded per dataloader worker by MMEngine), so an epoch
      is one pass over the objects (official training).
    - ``'val_first'``: always sentence 0 of each object (official
      training-time validation: ``sents[0]`` in 'val' mode of
      jiaqihuang01/DETRIS, utils/dataset.py).
    - ``'test'``: every sentence of every object (official test).

    Each data info holds ``img_path``, ``ref_id``, ``ann_id``, ``image_id``,
    ``text`` (the sentence's ``sentence_field``, REFER's ``sent`` by
    default, stripped), ``sent_id``, ``sentences`` (all
    ``dict(sent, sent_id)`` of the object), ``num_sents``, ``segmentation``
    (polygons or RLE), ``height``, ``width``, ``category_id``, ``bbox``
    (COCO xywh), ``split`` and ``dataset``.

    Args:
        data_root (str): Root holding ``<dataset>/refs(<split_by>).p``,
            ``<dataset>/instances.json`` and the images.
        dataset (str): REFER dataset folder: 'refcoco', 'refcoco+' or
            'refcocog'. Defaults to 'refcoco'.
        split_by (str): 'unc', 'umd' or 'google'. Defaults to 'unc'.
        split (str): Split name (train/val/testA/testB/test).
            Defaults to 'train'.
        mode (str): 'train', 'test' or 'val_first'. Defaults to 'train'.
        img_prefix (str): Image folder, relative to ``data_root`` unless
            absolute. Defaults to 'images/train2014'.
        skip_missing_ann (bool): Skip (with a warning) refs whose ``ann_id``
            is absent from ``instances.json`` instead of raising.
            Defaults to False.
        skip_empty_masks (bool, optional): Skip refs whose annotation
            rasterises to an empty mask (empty segmentation, only polygons
            with < 3 points or no area). Degenerate annotations are always
            listed in a warning (ref id, ann id, problem). Defaults to None:
            skip them in ``'train'`` mode (never train on an empty target),
            keep them in the evaluation modes, where they score IoU 0 as in
            the official evaluation, so that the sentence count is the
            official one.
        img_size (int, optional): Network input size, handed to
            ``LetterboxAffine`` (as ``input_size``) when the transform sets
            none. Defaults to None.
        word_len (int, optional): Text context length, handed to
            ``CLIPTokenize`` (as ``context_length``) when the transform sets
            none. Method configs override these two per dataset (e.g. 416/17
            for ETRIS on RefCOCO, 448/22 for DETRIS on G-Ref umd).
            Defaults to None.
        pipeline (list): Transforms. Defaults to [].
        test_mode (bool, optional): Defaults to None, i.e.
            ``mode != 'train'``.
        metainfo (dict, optional): Extra meta information. Defaults to None.
        lazy_init (bool): Defer loading the annotations. Defaults to False.
        serialize_data (bool): See ``BaseDataset``. Defaults to True.
        max_refetch (int): See ``BaseDataset``. Defaults to 1000.
        indices (int | Sequence[int], optional): Keep only these samples
            (an int: the first ``indices``), e.g. for a quick look or a
            smoke test; see ``BaseDataset``. Defaults to None (all).
        sentence_field (str): The sentence text read: ``'sent'`` (REFER's
            pre-processed text, as the ETRIS, BarLeRIa and DETRIS data
            scripts, e.g. kkakkkka/ETRIS tools/data_process.py) or ``'raw'``
            (the annotator's text); a sentence without it is an error
            naming the file, ref and sentence. Defaults to 'sent'.
        exclude_images_of (str | Sequence[str], optional): Leave out every
            ref whose image is in these evaluation splits, read from the
            same ``data_root``: ``'all'`` (every evaluation split of
            RefCOCO, RefCOCO+, RefCOCOg umd and google and gRefCOCO), a
            dataset (``'refcoco'``, ``'refcoco+'``, ``'refcocog_umd'``,
            ``'refcocog_google'``, ``'grefcoco'``: its evaluation splits) or
            ``'<dataset>/<split>'``. For mixed training without evaluation
            images (the datasets share COCO images); what is left out is
            logged and kept in ``self.excluded`` (refs, sentences, images).
            See ``tools/analysis_tools/dataset_overlap.py``.
            Defaults to None (keep everything).
    """

    METAINFO = dict(
        classes=('background', 'object'), palette=[[0, 0, 0], [255, 0, 0]])

    def __init__(
            self,
            data_root: str,
            dataset: str = 'refcoco',
            split_by: str = 'unc',
            split: str = 'train',
            mode: str = 'train',
            img_prefix: str = 'images/train2014',
            skip_missing_ann: bool = False,
            skip_empty_masks: Optional[bool] = None,
            img_size: Optional[int] = None,
            word_len: Optional[int] = None,
            pipeline: Sequence = (),
            test_mode: Optional[bool] = None,
            metainfo: Optional[dict] = None,
            lazy_init: bool = False,
            serialize_data: bool = True,
            max_refetch: int = 1000,
            indices: Optional[Union[int, Sequence[int]]] = None,
            sentence_field: str = 'sent',
            exclude_images_of: Union[None, str, Sequence[str]] = None) -> None:
        if split_by not in SPLIT_BYS:
            raise ValueError(f'split_by must be one of {SPLIT_BYS}, '
                             f'got {split_by!r}')
        if mode not in MODES:
            raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
        if not isinstance(img_prefix, str):
            raise TypeError(f'img_prefix must be a str, got {img_prefix!r}')
        self.dataset = dataset
        self.split_by = split_by
        self.split = split
        self.mode = mode
        self.skip_missing_ann = skip_missing_ann
        if exclude_images_of is not None:
            from .overlap import parse_exclusions
            parse_exclusions(exclude_images_of)  # fail early on a typo
        self.exclude_images_of = exclude_images_of
        self.excluded = dict(refs=0, sentences=0, images=0)
        self.skip_empty_masks = (
            mode == 'train'
            if skip_empty_masks is None else bool(skip_empty_masks))
        self.img_size = img_size
        self.word_len = word_len
        if sentence_field not in SENTENCE_FIELDS:
            raise ValueError(f'sentence_field must be one of '
                             f'{SENTENCE_FIELDS}, got {sentence_field!r}')
        self.sentence_field = sentence_field
        if test_mode is None:
            test_mode = mode != 'train'
        super().__init__(
            ann_file=osp.join(dataset, f'refs({split_by}).p'),
            metainfo=metainfo,
            data_root=data_root,
            data_prefix=dict(img_path=img_prefix),
            pipeline=list(pipeline),
            test_mode=test_mode,
            lazy_init=lazy_init,
            serialize_data=serialize_data,
            max_refetch=max_refetch,
            indices=indices)

    @property
    def instances_file(self) -> str:
        """Path of ``<data_root>/<dataset>/instances.json``."""
        return refer_paths(self.data_root, self.dataset, self.split_by)[1]

    def load_data_list(self) -> List[dict]:
        """Read the refs pickle and instances file into data infos."""
        refs_file = self.ann_file
        split_refs = self._split_refs(load_refs(refs_file), refs_file)
        imgs, anns, _ = load_instances(self.instances_file)
        img_dir = self.data_prefix['img_path']

        data_list = []
        n_missing = 0
        degenerate: List[str] = []
        n_empty = 0
        checked: Dict[int, Tuple[List[str], int]] = {}
        excluded = self._excluded_images()
        dropped: Dict[str, Any] = dict(refs=0, sentences=0, images=set())
        for ref in split_refs:
            ref_id, ann_id = ref['ref_id'], ref['ann_id']
            ann = anns.get(ann_id)
            if ann is None:
                if self.skip_missing_ann:
                    n_missing += 1
                    continue
                raise KeyError(
                    f'{refs_file}: ref_id {ref_id} refers to ann_id '
                    f'{ann_id}, which is absent from {self.instances_file} '
                    '(pass skip_missing_ann=True to skip such refs)')
            image_id = ref.get('image_id', ann['image_id'])
            check_same_image(ref, [ann], refs_file, self.instances_file)
            if self._exclude(ref, image_id, excluded, dropped):
                continue
            img = imgs.get(image_id)
            if img is None:
                raise KeyError(f'{refs_file}: ref_id {ref_id}: image_id '
                               f'{image_id} is absent from '
                               f'{self.instances_file}')
            sentences = self._sentences(ref, refs_file)
            if not sentences:
                continue
            if ann_id not in checked:
                checked[ann_id] = self._inspect(ref_id, ann, img)
            problems, area = checked[ann_id]
            if problems:
                degenerate.append(f'ref_id {ref_id} ann_id {ann_id}: ' +
                                  ', '.join(problems))
            if area == 0:
                n_empty += 1
                if self.skip_empty_masks:
                    continue
            base = dict(
                img_path=osp.join(img_dir, img['file_name']),
                ref_id=ref_id,
                ann_id=ann_id,
                image_id=image_id,
                category_id=ref.get('category_id', ann.get('category_id')),
                segmentation=ann['segmentation'],
                bbox=list(ann.get('bbox', [])),
                height=int(img['height']),
                width=int(img['width']),
                split=self.split,
                dataset=self.dataset,
                num_sents=len(sentences),
            )
            self._append_samples(data_list, base, sentences)
        self._warn_skipped(n_missing, degenerate, n_empty)
        self._report_excluded(dropped, len(data_list))
        return data_list

    def _excluded_images(self) -> FrozenSet[int]:
        """Image ids of the ``exclude_images_of`` evaluation splits."""
        if self.exclude_images_of is None:
            return frozenset()
        from .overlap import excluded_images
        return excluded_images(self.data_root, self.exclude_images_of)

    @staticmethod
    def _exclude(ref: dict, image_id: int, excluded: FrozenSet[int],
                 dropped: Dict[str, Any]) -> bool:
        """Whether ``ref`` is left out (its image is an excluded one);
        counts it in ``dropped``."""
        if image_id not in excluded:
            return False
        dropped['refs'] += 1
        dropped['sentences'] += len(ref.get('sentences', []))
        dropped['images'].add(image_id)
        return True

    def _report_excluded(self, dropped: Dict[str, Any], kept: int) -> None:
        """Log what ``exclude_images_of`` left out; keep the counts."""
        if self.exclude_images_of is None:
            return
        from mmengine.logging import print_log

        from .overlap import parse_exclusions
        self.excluded = dict(
            refs=dropped['refs'],
            sentences=dropped['sentences'],
            images=len(dropped['images']))
        splits = ', '.join(
            f'{n}/{s}' for n, s in parse_exclusions(self.exclude_images_of))
        print_log(
            f'{self.__class__.__name__} {self.dataset} ({self.split_by}) '
            f'{self.split}: left out {self.excluded["refs"]} refs '
            f'({self.excluded["sentences"]} sentences) on '
            f'{self.excluded["images"]} images that are in the evaluation '
            f'splits {splits} (exclude_images_of); {kept} samples remain',
            logger='current')

    def _split_refs(self, refs: List[dict], refs_file: str) -> List[dict]:
        """The refs of ``self.split``; an error lists the splits there are."""
        split_refs = [r for r in refs if r.get('split') == self.split]
        if not split_refs:
            counts: Dict[str, int] = {}
            for r in refs:
                counts[r.get('split')] = counts.get(r.get('split'), 0) + 1
            raise ValueError(
                f'Split {self.split!r} has no refs in {refs_file}; available '
                f'splits (refs): {counts}')
        return split_refs

    def _sentences(self, ref: dict, refs_file: str) -> List[dict]:
        """``dict(sent, sent_id)`` of every sentence of ``ref`` (its
        ``sentence_field``); warns (the ref is then skipped) when it has
        none."""
        sentences = [
            dict(
                sent=sentence_text(
                    s, self.sentence_field,
                    f'{refs_file}: ref_id {ref["ref_id"]}: sentence {k} '
                    f'(sent_id {s.get("sent_id")})'),
                sent_id=s.get('sent_id', k))
            for k, s in enumerate(ref.get('sentences', []))
        ]
        if not sentences:
            warnings.warn(f'{refs_file}: ref_id {ref["ref_id"]} has no '
                          'sentence; skipped')
        return sentences

    def _append_samples(self, data_list: List[dict], base: dict,
                        sentences: List[dict]) -> None:
        """One sample per sentence (test) or per ref (train, val_first)."""
        if self.mode == 'test':
            data_list.extend(
                dict(base, text=s['sent'], sent_id=s['sent_id'])
                for s in sentences)
        else:
            data_list.append(
                dict(
                    base,
                    text=sentences[0]['sent'],
                    sent_id=sentences[0]['sent_id'],
                    sentences=sentences))

    def _warn_skipped(self, n_missing: int, degenerate: List[str],
                      n_empty: int) -> None:
        """One warning each for refs with absent annotations and for
        degenerate annotations."""
        if n_missing:
            warnings.warn(f'{n_missing} refs of split {self.split!r} refer to '
                          f'annotations absent from {self.instances_file}; '
                          'skipped')
        if degenerate:
            self._warn_degenerate(degenerate, n_empty)

    def _inspect(self, ref_id: int, ann: dict,
                 img: dict) -> Tuple[List[str], int]:
        """Problems and pixel count of the annotation of ``ref_id``."""
        try:
            problems, area = inspect_segmentation(ann['segmentation'],
                                                  img['height'], img['width'])
        except (TypeError, ValueError) as err:
            raise AnnotationFileError(
                f'{self.instances_file}: the segmentation of ann_id '
                f'{ann["id"]} (ref_id {ref_id}) is malformed: {err}') from err
        rle_size = [p for p in problems if p.startswith('RLE size')]
        if rle_size:
            raise AnnotationFileError(
                f'{self.instances_file}: ann_id {ann["id"]} (ref_id {ref_id}'
                f'): {rle_size[0]} of image_id {img["id"]}')
        return problems, area

    def _warn_degenerate(self, degenerate: List[str], n_empty: int) -> None:
        listed = '; '.join(degenerate[:MAX_LISTED])
        more = (f' (and {len(degenerate) - MAX_LISTED} more; '
                'tools/dataset_converters/check_refer_root.py lists all)'
                if len(degenerate) > MAX_LISTED else '')
        if not n_empty:
            fate = ''
        elif self.skip_empty_masks:
            fate = f' {n_empty} of them have an empty mask and were skipped.'
        else:
            fate = (f' {n_empty} of them have an empty mask and are kept '
                    '(they score IoU 0; skip_empty_masks=True skips them).')
        warnings.warn(
            f'{len(degenerate)} refs of split {self.split!r} have degenerate '
            f'annotations in {self.instances_file}: {listed}{more}.{fate}')

    def set_sentence_epoch(self, epoch: int, seed: Optional[int]) -> None:
        """Key the training sentence draw by ``(seed, epoch, idx)``.

        Called by ``RISRunner`` before every training epoch; used for plain
        ``int`` indices loaded in the main process (``num_workers=0``).
        Indices from ``RISEpochSampler`` (``SampleKey``) carry their own seed
        and epoch and take precedence, which is what makes the draw exact in
        dataloader workers, persistent ones included (their copy of the
        dataset never sees this call).

        Args:
            epoch (int): The training epoch (0-based).
            seed (int, optional): The run's seed; None switches the keyed
                draw off (``np.random``).
        """
        self._sentence_key = (None if seed is None else
                              (int(seed) % 2**32, int(epoch)))

    def _draw_sentence(self, idx: int, num: int) -> int:
        """Index of the training sentence of sample ``idx`` (of ``num``).

        A pure function of ``(seed, epoch, idx)`` when ``idx`` carries them
        (``SampleKey`` from ``RISEpochSampler``) or, in the main process,
        after :meth:`set_sentence_epoch`; otherwise ``np.random``.
        """
        seed, epoch = getattr(idx, 'seed', None), getattr(idx, 'epoch', None)
        if seed is None or epoch is None:
            key = getattr(self, '_sentence_key', None)
            from torch.utils.data import get_worker_info
            if key is None or get_worker_info() is not None:
                return int(np.random.randint(num))
            seed, epoch = key
        rng = np.random.default_rng([int(seed) % 2**32, int(epoch), int(idx)])
        return int(rng.integers(num))

    def get_data_info(self, idx: int) -> dict:
        """Data info of sample ``idx``; draws the sentence in train mode."""
        info = super().get_data_info(idx)
        if self.mode == 'train' and len(info['sentences']) > 1:
            sent = info['sentences'][self._draw_sentence(
                idx, len(info['sentences']))]
            info['text'] = sent['sent']
            info['sent_id'] = sent['sent_id']
        if self.img_size is not None:
            info['input_size'] = self.img_size
        if self.word_len is not None:
            info['context_length'] = self.word_len
        return info

    def __repr__(self) -> str:
        length = len(self) if self._fully_initialized else 'not loaded'
        return (f'{self.__class__.__name__}(dataset={self.dataset!r}, '
                f'split_by={self.split_by!r}, split={self.split!r}, '
                f'mode={self.mode!r}, len={length})')
