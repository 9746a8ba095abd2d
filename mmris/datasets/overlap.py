# Copyright (c) mmris contributors. All rights reserved.
"""What the referring-segmentation datasets share: images, objects and
sentences of one split found in another.

RefCOCO, RefCOCO+, RefCOCOg (umd and google splits) and gRefCOCO all take
their images and objects from COCO train2014, and each made its splits
independently: an image (or object) of one dataset's training split can be
in another dataset's evaluation split. Training on several of them at once
(DETRIS-L*'s ``tools/mix.py`` concatenates the refcoco, refcoco+ and
refcocog-umd training sets, jiaqihuang01/DETRIS) then trains on evaluation
images. This module counts the overlap from the raw files (image ids and
COCO annotation ids are shared by all five) and gives the image ids that
``RefCOCODataset(exclude_images_of=...)`` leaves out of training.
"""
import os
import os.path as osp
from collections import OrderedDict
from functools import lru_cache
from typing import Dict, FrozenSet, List, NamedTuple, Sequence, Tuple, Union

from .grefcoco import gref_paths, load_grefs, target_ann_ids
from .refcoco import load_instances, load_refs, refer_paths
from .refer_io import AnnotationFileError

#: Benchmark name -> (folder, split_by, training split, evaluation splits in
#: paper order).
BENCHMARK_SPLITS: 'OrderedDict[str, Tuple[str, str, str, Tuple[str, ...]]]'
BENCHMARK_SPLITS = OrderedDict([
    ('refcoco', ('refcoco', 'unc', 'train', ('val', 'testA', 'testB'))),
    ('refcoco+', ('refcoco+', 'unc', 'train', ('val', 'testA', 'testB'))),
    ('refcocog_umd', ('refcocog', 'umd', 'train', ('val', 'test'))),
    ('refcocog_google', ('refcocog', 'google', 'train', ('val', ))),
    ('grefcoco', ('grefcoco', 'unc', 'train', ('val', 'testA', 'testB'))),
])
#: ``exclude_images_of`` entry naming every evaluation split of every
#: benchmark of :data:`BENCHMARK_SPLITS`.
ALL = 'all'


class SplitContents(NamedTuple):
    """One split of one dataset.

    Attributes:
        images (frozenset[int]): Image ids of its refs.
        objects (frozenset[int]): Annotation ids its refs refer to.
        refs (tuple): ``(image_id, ann_ids, num_sentences)`` per ref
            (``ann_ids`` empty for a gRefCOCO no-target ref).
    """
    images: FrozenSet[int]
    objects: FrozenSet[int]
    refs: Tuple[Tuple[int, FrozenSet[int], int], ...]

    @property
    def num_sentences(self) -> int:
        """Sentences of the split."""
        return sum(n for _, _, n in self.refs)


def annotation_files(data_root: str, name: str) -> Tuple[str, str]:
    """The refs file and ``instances.json`` of a benchmark.

    Args:
        data_root (str): The data root.
        name (str): A key of :data:`BENCHMARK_SPLITS`.

    Returns:
        tuple[str, str]: The two paths.
    """
    folder, split_by = BENCHMARK_SPLITS[name][:2]
    if name == 'grefcoco':
        return gref_paths(data_root, folder, split_by)
    return refer_paths(data_root, folder, split_by)


def _stamp(path: str) -> Tuple[str, int, int]:
    stat = os.stat(path)
    return osp.abspath(path), stat.st_mtime_ns, stat.st_size


@lru_cache(maxsize=16)
def _read_splits(refs_stamp: Tuple[str, int,
                                   int], instances_stamp: Tuple[str, int, int],
                 generalized: bool) -> Dict[str, SplitContents]:
    refs_file, instances_file = refs_stamp[0], instances_stamp[0]
    refs = load_grefs(refs_file) if generalized else load_refs(refs_file)
    image_of_ann: Dict[int, int] = {}
    if any('image_id' not in ref for ref in refs):
        _, anns, _ = load_instances(instances_file)
        image_of_ann = {k: a['image_id'] for k, a in anns.items()}
    grouped: Dict[str, List[Tuple[int, FrozenSet[int], int]]] = {}
    for ref in refs:
        ann_ids = (
            target_ann_ids(ref, refs_file) if generalized else [ref['ann_id']])
        image_id = ref.get('image_id')
        if image_id is None:
            image_id = image_of_ann.get(ref['ann_id'])
            if image_id is None:
                raise AnnotationFileError(
                    f'{refs_file}: ref_id {ref["ref_id"]} has no image_id '
                    f'and its ann_id {ref["ann_id"]} is absent from '
                    f'{instances_file}')
        grouped.setdefault(ref['split'], []).append(
            (image_id, frozenset(ann_ids), len(ref.get('sentences', []))))
    return {
        split:
        SplitContents(
            images=frozenset(r[0] for r in items),
            objects=frozenset(a for r in items for a in r[1]),
            refs=tuple(items))
        for split, items in grouped.items()
    }


def read_splits(data_root: str, name: str) -> Dict[str, SplitContents]:
    """Images, objects and sentences of every split of a benchmark.

    The refs file is read once per process while it is unchanged (cached
    by path, modification time and size). ``instances.json`` is read only
    when a ref has no ``image_id``.

    Args:
        data_root (str): The data root.
        name (str): A key of :data:`BENCHMARK_SPLITS`.

    Returns:
        dict[str, SplitContents]: Per split name.

    Raises:
        FileNotFoundError: If the refs file is missing.
    """
    if name not in BENCHMARK_SPLITS:
        raise KeyError(f'unknown dataset {name!r}; use one of '
                       f'{list(BENCHMARK_SPLITS)}')
    refs_file, instances_file = annotation_files(data_root, name)
    if not osp.isfile(refs_file):
        raise FileNotFoundError(f'{name}: refs file not found: {refs_file}')
    instances = (
        _stamp(instances_file) if osp.isfile(instances_file) else
        (osp.abspath(instances_file), 0, 0))
    return _read_splits(_stamp(refs_file), instances, name == 'grefcoco')


def overlap_counts(train: SplitContents,
                   evaluation: SplitContents) -> 'OrderedDict[str, int]':
    """What a training split shares with an evaluation split.

    Args:
        train (SplitContents): The training split.
        evaluation (SplitContents): The evaluation split.

    Returns:
        OrderedDict[str, int]: ``eval_images``, ``eval_sentences`` (sizes
        of the evaluation split), ``shared_images``, ``shared_objects``
        (annotation ids in both), ``train_sentences_on_shared_objects``
        (training sentences whose ref has a target among the evaluation
        objects), ``eval_sentences_on_shared_objects`` (the converse) and
        ``eval_sentences_on_shared_images`` (evaluation sentences whose
        image is a training image).
    """
    shared_images = train.images & evaluation.images
    shared_objects = train.objects & evaluation.objects
    return OrderedDict(
        eval_images=len(evaluation.images),
        eval_sentences=evaluation.num_sentences,
        shared_images=len(shared_images),
        shared_objects=len(shared_objects),
        train_sentences_on_shared_objects=sum(n for _, anns, n in train.refs
                                              if anns & evaluation.objects),
        eval_sentences_on_shared_objects=sum(n
                                             for _, anns, n in evaluation.refs
                                             if anns & train.objects),
        eval_sentences_on_shared_images=sum(n
                                            for image, _, n in evaluation.refs
                                            if image in train.images),
    )


def parse_exclusions(
        specs: Union[str, Sequence[str]]) -> List[Tuple[str, str]]:
    """``(benchmark, split)`` pairs of an ``exclude_images_of`` value.

    Each entry is ``'all'`` (every evaluation split of every benchmark),
    a benchmark name (``'refcoco'``, ``'refcoco+'``, ``'refcocog_umd'``,
    ``'refcocog_google'``, ``'grefcoco'``: its evaluation splits) or
    ``'<benchmark>/<split>'`` (e.g. ``'refcocog_umd/test'``).

    Args:
        specs (str | Sequence[str]): The entries.

    Returns:
        list[tuple[str, str]]: Without duplicates, in order.

    Raises:
        ValueError: On an unknown benchmark or split.
    """
    if isinstance(specs, str):
        specs = [specs]
    pairs: List[Tuple[str, str]] = []
    for spec in specs:
        if not isinstance(spec, str):
            raise ValueError(f'exclude_images_of entries must be strings, got '
                             f'{spec!r}')
        if spec == ALL:
            new = [(name, split) for name, info in BENCHMARK_SPLITS.items()
                   for split in info[3]]
        else:
            name, _, split = spec.partition('/')
            if name not in BENCHMARK_SPLITS:
                raise ValueError(
                    f'exclude_images_of: unknown dataset {name!r} in '
                    f'{spec!r}; use {ALL!r} or one of '
                    f'{list(BENCHMARK_SPLITS)} (optionally /<split>)')
            splits = BENCHMARK_SPLITS[name][3]
            if split and split not in splits:
                raise ValueError(
                    f'exclude_images_of: {name} has no evaluation split '
                    f'{split!r}; its evaluation splits are {list(splits)}')
            new = [(name, s) for s in ([split] if split else splits)]
        pairs += [p for p in new if p not in pairs]
    return pairs


def excluded_images(data_root: str,
                    specs: Union[str, Sequence[str]]) -> FrozenSet[int]:
    """Image ids of the evaluation splits named by ``specs``.

    Args:
        data_root (str): The data root (the same as the training data's).
        specs (str | Sequence[str]): See :func:`parse_exclusions`.

    Returns:
        frozenset[int]: The image ids.

    Raises:
        FileNotFoundError: If a named dataset's refs file is missing.
        ValueError: If a named split has no refs in its file.
    """
    images = set()
    for name, split in parse_exclusions(specs):
        splits = read_splits(data_root, name)
        if split not in splits:
            raise ValueError(
                f'exclude_images_of: {name} split {split!r} has no refs in '
                f'{annotation_files(data_root, name)[0]}; splits there: '
                f'{sorted(splits, key=str)}')
        images |= splits[split].images
    return frozenset(images)
