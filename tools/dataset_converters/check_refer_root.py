# Copyright (c) mmris contributors. All rights reserved.
"""Check a REFER data root before training: files, splits, images.

Usage::

    python tools/dataset_converters/check_refer_root.py data/ \
        --datasets refcoco refcoco+ refcocog_umd refcocog_google

Expected layout::

    DATA_ROOT/images/train2014/COCO_train2014_*.jpg
    DATA_ROOT/refcoco/{instances.json, refs(unc).p}
    DATA_ROOT/refcoco+/{instances.json, refs(unc).p}
    DATA_ROOT/refcocog/{instances.json, refs(umd).p, refs(google).p}

Prints per split the number of referred objects (compared with the
official counts: ✓ equal, ✗ different), sentences and images present /
missing. Exits with 1 if a file or an image is missing (or, with
``--strict``, if a count differs from the official one).
"""
import argparse
import os.path as osp
import sys
from collections import OrderedDict

import mmris  # noqa: F401  (compat first)
from mmris.datasets.refcoco import (OFFICIAL_SPLIT_SIZES, REFER_DATASETS,
                                    load_instances, load_refs, refer_paths)

LAYOUT = """Expected layout:
  DATA_ROOT/images/train2014/COCO_train2014_*.jpg   (COCO train2014 images)
  DATA_ROOT/<dataset>/instances.json
  DATA_ROOT/<dataset>/refs(<split_by>).p
with (dataset, split_by) in (refcoco, unc), (refcoco+, unc), (refcocog, umd),
(refcocog, google)."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Check a REFER (RefCOCO/+/g) data root')
    parser.add_argument('data_root', help='data root directory')
    parser.add_argument(
        '--datasets',
        nargs='+',
        default=['refcoco', 'refcoco+', 'refcocog_umd', 'refcocog_google'],
        choices=sorted(REFER_DATASETS),
        help='datasets to check')
    parser.add_argument(
        '--img-prefix',
        default='images/train2014',
        help='image folder relative to data_root')
    parser.add_argument(
        '--strict',
        action='store_true',
        help='also fail when object counts differ from the official ones')
    return parser.parse_args(argv)


def check_dataset(data_root: str, name: str, img_dir: str,
                  strict: bool) -> bool:
    """Check one dataset; print a report. Returns True when all is fine."""
    dataset, split_by = REFER_DATASETS[name]
    refs_file, instances_file = refer_paths(data_root, dataset, split_by)
    print(f'== {name} ({dataset}, split_by={split_by})')
    ok = True
    for path in (refs_file, instances_file):
        if not osp.isfile(path):
            print(f'  MISSING: {path}')
            ok = False
    if not ok:
        return False
    refs = load_refs(refs_file)
    imgs, anns, _ = load_instances(instances_file)
    official = OFFICIAL_SPLIT_SIZES.get((dataset, split_by), {})
    stats = OrderedDict()
    for ref in refs:
        st = stats.setdefault(
            ref.get('split'),
            dict(objects=0, sentences=0, images=set(), missing_ann=0))
        st['objects'] += 1
        st['sentences'] += len(ref.get('sentences', []))
        st['images'].add(ref['image_id'])
        if ref['ann_id'] not in anns:
            st['missing_ann'] += 1
    order = list(official) + sorted(s for s in stats if s not in official)
    print(f'  {"split":<8}{"objects":>9}{"official":>10}   '
          f'{"sentences":>9}{"images":>8}{"missing":>9}')
    for split in order:
        st = stats.get(split)
        if st is None:
            print(f'  {split:<8}{0:>9}{official[split]:>10} ✗ split absent')
            ok = ok and not strict
            continue
        missing = sum(
            1 for image_id in st['images'] if image_id not in imgs
            or not osp.isfile(osp.join(img_dir, imgs[image_id]['file_name'])))
        ref_count = official.get(split)
        if ref_count is None:
            mark = ' '
            ref_text = '-'
        else:
            mark = '✓' if ref_count == st['objects'] else '✗'
            ref_text = str(ref_count)
            if mark == '✗' and strict:
                ok = False
        print(f'  {split:<8}{st["objects"]:>9}{ref_text:>10} {mark} '
              f'{st["sentences"]:>9}{len(st["images"]):>8}{missing:>9}')
        if missing:
            ok = False
        if st['missing_ann']:
            print(f'    {st["missing_ann"]} refs point to ann ids absent from '
                  f'{instances_file}')
            ok = False
    return ok


def main(argv=None) -> int:
    args = parse_args(argv)
    if not osp.isdir(args.data_root):
        print(f'MISSING: data root {args.data_root} is not a directory.\n'
              f'{LAYOUT}')
        return 1
    img_dir = osp.join(args.data_root, args.img_prefix)
    all_ok = True
    if not osp.isdir(img_dir):
        print(f'MISSING: image folder {img_dir}')
        all_ok = False
    for name in args.datasets:
        all_ok = check_dataset(args.data_root, name, img_dir,
                               args.strict) and all_ok
    if not all_ok:
        print(f'\nSome checks failed.\n{LAYOUT}')
        return 1
    print('\nAll checks passed.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
