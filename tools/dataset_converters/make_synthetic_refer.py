# Copyright (c) mmris contributors. All rights reserved.
"""Write a small synthetic dataset in the REFER format (quick start, CI).

Usage::

    python tools/dataset_converters/make_synthetic_refer.py data/synthetic \
        [--seed 0] [--num-images 280] [--datasets refcoco refcocog_umd]

    # explicit images per split (the quick-start data)
    python tools/dataset_converters/make_synthetic_refer.py data/quickstart \
        --splits train=1280 val=80 testA=20 testB=20

    # a gRefCOCO-format root (grefcoco/grefs(unc).json + instances.json):
    # single-, multi- and no-target expressions on the same images
    python tools/dataset_converters/make_synthetic_refer.py \
        data/quickstart_grefcoco --datasets grefcoco \
        --splits train=320 val=80 testA=20 testB=20

Then train with ``data_root='data/synthetic'`` like on RefCOCO.
"""
import argparse
import json
import os.path as osp
import runpy
from typing import Dict, Sequence


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

#: gRefCOCO-format output (besides the REFER pairs of REFER_DATASETS).
GREFCOCO = 'grefcoco'
#: ``--datasets`` choices: the keys of ``mmris.datasets.refcoco.
#: REFER_DATASETS`` (listed here so that ``--help`` imports nothing heavy;
#: main() checks that they agree) and 'grefcoco'.
DATASET_CHOICES = ('grefcoco', 'refcoco', 'refcoco+', 'refcocog_g',
                   'refcocog_google', 'refcocog_u', 'refcocog_umd')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Generate a synthetic REFER-format dataset')
    parser.add_argument('out_dir', help='output data root')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument(
        '--num-images',
        type=int,
        default=None,
        help='total number of images (default 280, shared by all datasets)')
    parser.add_argument(
        '--splits',
        nargs='+',
        default=None,
        metavar='SPLIT=N',
        help='explicit images per split, e.g. train=1280 val=80 testA=20 '
        'testB=20 (instead of --num-images)')
    parser.add_argument(
        '--image-size',
        type=int,
        nargs=2,
        default=(96, 160),
        metavar=('MIN', 'MAX'),
        help='range of image sides in pixels')
    parser.add_argument(
        '--datasets',
        nargs='+',
        default=['refcoco'],
        choices=DATASET_CHOICES,
        help='REFER (dataset, split_by) pairs to write; "grefcoco" writes '
        'the gRefCOCO format (multi- and no-target expressions)')
    parser.add_argument(
        '--grefs-format',
        choices=('json', 'pickle'),
        default='json',
        help='gRefCOCO refs file: grefs(unc).json or grefs(unc).p')
    args = parser.parse_args(argv)
    if args.splits is not None:
        if args.num_images is not None:
            parser.error('give --num-images or --splits, not both')
        args.num_images = _parse_splits(parser, args.splits)
    return args


def _parse_splits(parser: argparse.ArgumentParser,
                  items: Sequence[str]) -> Dict[str, int]:
    counts = {}
    for item in items:
        name, sep, value = item.partition('=')
        if not sep or not name or not value.isdigit() or int(value) < 1:
            parser.error(f'--splits takes SPLIT=N with N >= 1, got {item!r}')
        if name in counts:
            parser.error(f'--splits names {name!r} twice')
        counts[name] = int(value)
    return counts


def main(argv=None) -> int:
    args = parse_args(argv)
    import mmris  # noqa: F401  (compat first)
    from mmris.datasets.refcoco import REFER_DATASETS
    from mmris.testing.synthetic import (make_synthetic_grefcoco,
                                         make_synthetic_refer)
    known = set(REFER_DATASETS) | {GREFCOCO}
    assert set(DATASET_CHOICES) == known, 'DATASET_CHOICES is out of date'
    for name in args.datasets:
        if name == GREFCOCO:
            summary = make_synthetic_grefcoco(
                args.out_dir,
                seed=args.seed,
                num_images=args.num_images,
                image_size=tuple(args.image_size),
                refs_format=args.grefs_format)
            print(json.dumps(summary, indent=2))
            continue
        dataset, split_by = REFER_DATASETS[name]
        summary = make_synthetic_refer(
            args.out_dir,
            seed=args.seed,
            num_images=args.num_images,
            image_size=tuple(args.image_size),
            dataset=dataset,
            split_by=split_by)
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
