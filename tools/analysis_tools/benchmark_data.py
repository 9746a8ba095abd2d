# Copyright (c) mmris contributors. All rights reserved.
"""Throughput of the training data pipeline in one worker process.

Runs the config's training pipeline (JPEG decode, polygon mask decode,
letterbox warp to the input size, tokenization, packing) over a REFER-format
data root and prints samples/s. Without ``--data-root`` a temporary synthetic
dataset with COCO-like image sizes (480-640 px) is generated first.

Example:
    python tools/analysis_tools/benchmark_data.py \
        configs/detris/detris-l_refcoco.py
"""
import argparse
import os.path as osp
import runpy
import tempfile


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
import cv2  # noqa: E402
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmris  # noqa: F401
from mmris.apis import find_ref_dataset
from mmris.benchmark import time_pipeline
from mmris.datasets import RefCOCODataset
from mmris.testing.synthetic import make_synthetic_refer


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'config', help='config whose training pipeline is measured')
    parser.add_argument(
        '--data-root',
        default=None,
        help='REFER-format data root to read (default: a temporary '
        'synthetic root of --num-images 480x640 images)')
    parser.add_argument(
        '--samples',
        type=int,
        default=300,
        help='samples to load and transform (default: 300)')
    parser.add_argument(
        '--num-images',
        type=int,
        default=120,
        help='images of the temporary synthetic root (default: 120)')
    args = parser.parse_args()
    if args.samples < 1:
        parser.error(f'--samples must be >= 1, got {args.samples}')
    TOOL_ENV['setup_cpu_threads']('benchmark_data.py')
    cv2.setNumThreads(0)  # as in MMEngine's data-loader workers
    cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    ds_cfg = find_ref_dataset(cfg.train_dataloader.dataset)
    tmp = None
    root = args.data_root
    if root is None:
        tmp = tempfile.TemporaryDirectory()
        root = tmp.name
        make_synthetic_refer(
            root,
            seed=0,
            num_images=args.num_images,
            image_size=(480, 640),
            dataset='refcoco',
            split_by='unc')
        dataset, split_by = 'refcoco', 'unc'
    else:
        dataset, split_by = ds_cfg.dataset, ds_cfg.split_by
    ds = RefCOCODataset(
        root,
        dataset=dataset,
        split_by=split_by,
        split='train',
        mode='train',
        img_size=ds_cfg.get('img_size'),
        word_len=ds_cfg.get('word_len'),
        pipeline=ds_cfg.pipeline)
    n, dt = time_pipeline(ds, args.samples)
    print(f'training pipeline of {args.config} at input '
          f'{ds_cfg.get("img_size")}: {n} samples in {dt:.2f} s = '
          f'{n / dt:.1f} samples/s per worker process')
    if tmp is not None:
        tmp.cleanup()


if __name__ == '__main__':
    main()
