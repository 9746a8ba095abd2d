# Copyright (c) mmris contributors. All rights reserved.
"""Count what every training split shares with every evaluation split.

RefCOCO, RefCOCO+, RefCOCOg (umd and google) and gRefCOCO all take their
images and objects from COCO train2014, and made their splits
independently. Mixed training (DETRIS-L*: refcoco + refcoco+ + refcocog-umd
train, jiaqihuang01/DETRIS tools/mix.py) can therefore train on another
dataset's evaluation images. For every (training split, evaluation split)
pair of the datasets found under DATA_ROOT this prints a markdown table:

- shared images and shared objects (COCO annotation ids),
- training sentences whose object is an evaluation object,
- evaluation sentences whose object is a training object, and those whose
  image is a training image (with their share of the evaluation split).

Usage::

    python tools/analysis_tools/dataset_overlap.py data/ \
        --json work_dirs/overlap.json --markdown work_dirs/overlap.md

Reads only the annotation files (refs pickles, grefs json;
``instances.json`` only for refs without ``image_id``), safely (see
``mmris.datasets.refer_io``). ``RefCOCODataset(exclude_images_of=[...])``
leaves such images out of training (configs/_base_/datasets/
refcoco_mixed.py).
"""
import argparse
import json
import os.path as osp
import runpy
import sys
from collections import OrderedDict
from typing import List, Optional, Sequence


def load_tool_env() -> dict:
    """``mmris/utils/tool_env.py`` run by path, before any heavy import:
    ``--help`` stays fast and a Python without the project's packages gets
    one line (or the checkout's ``.venv``)."""
    folder = osp.dirname(osp.abspath(__file__))
    while osp.dirname(folder) != folder:
        path = osp.join(folder, 'mmris', 'utils', 'tool_env.py')
        if osp.isfile(path):
            return runpy.run_path(path)
        folder = osp.dirname(folder)
    from mmris.utils import tool_env  # an installed mmris
    return vars(tool_env)


TOOL_ENV = load_tool_env()
TOOL_ENV['ensure_environment'](__file__)
import mmris  # noqa: F401  (compat first)
from mmris.datasets.overlap import (BENCHMARK_SPLITS, annotation_files,
                                    overlap_counts, read_splits)
from mmris.datasets.refer_io import AnnotationFileError, RefusedGlobalError

COLUMNS = OrderedDict([
    ('train', 'training split'),
    ('eval', 'evaluation split'),
    ('eval_images', 'eval images'),
    ('shared_images', 'shared images'),
    ('shared_objects', 'shared objects'),
    ('train_sentences_on_shared_objects', 'train sentences on shared objects'),
    ('eval_sentences_on_shared_objects', 'eval sentences on shared objects'),
    ('eval_sentences_on_shared_images',
     'eval sentences on shared images (share)'),
])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Count the images, objects and sentences shared by the '
        'training and evaluation splits of RefCOCO/+/g and gRefCOCO')
    parser.add_argument('data_root', help='data root directory')
    parser.add_argument(
        '--datasets',
        nargs='+',
        choices=list(BENCHMARK_SPLITS),
        help='datasets to compare (default: all whose refs file exists)')
    parser.add_argument('--json', help='write the counts as JSON here')
    parser.add_argument('--markdown', help='write the table here')
    parser.add_argument(
        '--all-pairs',
        action='store_true',
        help='also list the pairs that share nothing')
    return parser.parse_args(argv)


def compute(data_root: str, names: Sequence[str]) -> dict:
    """Counts for every (training split, evaluation split) pair of
    ``names``; a dataset whose files cannot be read is reported, not
    raised."""
    contents, errors = OrderedDict(), OrderedDict()
    for name in names:
        try:
            contents[name] = read_splits(data_root, name)
        except (AnnotationFileError, RefusedGlobalError, OSError,
                KeyError) as err:
            errors[name] = str(err)
    pairs: List[dict] = []
    for train_name, train_splits in contents.items():
        train_split = BENCHMARK_SPLITS[train_name][2]
        if train_split not in train_splits:
            errors[train_name] = f'no {train_split!r} split'
            continue
        for eval_name, eval_splits in contents.items():
            for split in BENCHMARK_SPLITS[eval_name][3]:
                if split not in eval_splits:
                    continue
                row = OrderedDict(
                    train=f'{train_name}/{train_split}',
                    eval=f'{eval_name}/{split}')
                row.update(
                    overlap_counts(train_splits[train_split],
                                   eval_splits[split]))
                pairs.append(row)
    return OrderedDict(
        data_root=data_root,
        datasets=list(contents),
        files={n: annotation_files(data_root, n)[0]
               for n in contents},
        errors=errors,
        pairs=pairs)


def markdown(report: dict, all_pairs: bool = False) -> str:
    """The pairs as a markdown table (by default those sharing something),
    then the per-training-split totals of shared evaluation images."""
    lines = [
        '| ' + ' | '.join(COLUMNS.values()) + ' |',
        '|---|---|' + '---:|' * (len(COLUMNS) - 2)
    ]
    shown = 0
    for row in report['pairs']:
        if not all_pairs and not row['shared_images']:
            continue
        shown += 1
        cells = [str(row[k]) for k in list(COLUMNS)[:-1]]
        share = (100.0 * row['eval_sentences_on_shared_images'] /
                 row['eval_sentences'] if row['eval_sentences'] else 0.0)
        cells.append(
            f"{row['eval_sentences_on_shared_images']} ({share:.1f}%)")
        lines.append('| ' + ' | '.join(cells) + ' |')
    if not shown:
        lines.append('| (no pair shares an image) |' + ' |' *
                     (len(COLUMNS) - 1))
    hidden = len(report['pairs']) - shown
    if hidden:
        lines.append('')
        lines.append(f'{hidden} other pairs share nothing (--all-pairs '
                     'lists them).')
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if not osp.isdir(args.data_root):
        print(f'MISSING: data root {args.data_root} is not a directory')
        return 1
    names = args.datasets or [
        n for n in BENCHMARK_SPLITS
        if osp.isfile(annotation_files(args.data_root, n)[0])
    ]
    if not names:
        print(f'MISSING: no REFER or gRefCOCO refs file under '
              f'{args.data_root}')
        return 1
    report = compute(args.data_root, names)
    for name, err in report['errors'].items():
        print(f'ERROR {name}: {err}')
    print(f'Datasets: {", ".join(report["datasets"]) or "none"} '
          f'({args.data_root})\n')
    table = markdown(report, args.all_pairs)
    print(table)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=1)
    if args.markdown:
        with open(args.markdown, 'w') as f:
            f.write(table + '\n')
    return 1 if report['errors'] else 0


if __name__ == '__main__':
    sys.exit(main())
