# Copyright (c) mmris contributors. All rights reserved.
"""Score the trivial baseline that ignores the sentence: predict the union of
all annotated objects of the image, for every sentence of a split.

Example:
    python tools/analysis_tools/union_baseline.py data/synthetic \
        --dataset refcoco --split-by unc --split val
"""
import argparse
import os.path as osp
import runpy
import sys
from collections import defaultdict


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


def union_baseline(data_root: str, dataset: str, split_by: str,
                   split: str) -> dict:
    """Metrics of the union-of-all-objects prediction on ``split``.

    The REFER files are read by ``RefCOCODataset`` (safe pickle reader: a
    refs file pickling any global is refused). Refs whose annotation is
    empty are kept, as in the evaluation (IoU 0).
    """
    import mmris  # noqa: F401
    from mmris.datasets import RefCOCODataset
    from mmris.datasets.transforms.loading import decode_segmentation
    from mmris.evaluation.metrics.ris_metric import (compute_iou_stats,
                                                     ris_metrics_from_stats)
    ds = RefCOCODataset(data_root, dataset, split_by, split, mode='test')
    masks = {}
    union = defaultdict(lambda: None)
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    for info in infos:
        if info['ann_id'] in masks:
            continue
        m = decode_segmentation(info['segmentation'], info['height'],
                                info['width']) > 0
        masks[info['ann_id']] = m
        u = union[info['image_id']]
        union[info['image_id']] = m if u is None else (u | m)
    inter, uni = [], []
    for info in infos:
        i, u = compute_iou_stats(union[info['image_id']],
                                 masks[info['ann_id']])
        inter.append(i)
        uni.append(u)
    return ris_metrics_from_stats(inter, uni)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'data_root',
        help='REFER data root (<root>/<dataset>/refs(*).p, '
        'instances.json, images/train2014)')
    parser.add_argument(
        '--dataset',
        default='refcoco',
        help='refcoco, refcoco+ or refcocog (default: refcoco)')
    parser.add_argument(
        '--split-by', default='unc', help='unc, umd or google (default: unc)')
    parser.add_argument(
        '--split', default='val', help='split to score (default: val)')
    args = parser.parse_args()
    TOOL_ENV['setup_cpu_threads']('union_baseline.py')
    import mmris  # noqa: F401
    from mmris.datasets.refer_io import AnnotationFileError, RefusedGlobalError
    try:
        metrics = union_baseline(args.data_root, args.dataset, args.split_by,
                                 args.split)
    except (AnnotationFileError, RefusedGlobalError, FileNotFoundError) as e:
        # the annotation files are read safely; report, no traceback
        sys.exit(f'union_baseline: {e}')
    print('union-of-all-objects baseline on '
          f'{args.dataset}({args.split_by}) {args.split}:')
    print(' '.join(f'{k}: {v:.2f}' for k, v in metrics.items()))


if __name__ == '__main__':
    main()
