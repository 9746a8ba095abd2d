# Copyright (c) mmris contributors. All rights reserved.
"""Evaluate an mmris checkpoint and print the benchmark table."""
import argparse
import os
import os.path as osp

import mmris  # noqa: F401  (compat + registries first)
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from mmris.compat import unsafe_checkpoint_loading


def parse_args():
    parser = argparse.ArgumentParser(description='Test an RIS model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument(
        'checkpoint',
        help="checkpoint file, or 'none' to evaluate the randomly "
        'initialised model (a before-training baseline)')
    parser.add_argument(
        '--work-dir',
        help='directory for the evaluation logs and metrics json')
    parser.add_argument(
        '--unsafe-load',
        action='store_true',
        help='allow checkpoints with arbitrary pickled objects (runs code '
        'from the file; only for files you trust)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = None if args.checkpoint == 'none' else args.checkpoint

    runner = Runner.from_cfg(cfg)
    with unsafe_checkpoint_loading(args.unsafe_load):
        runner.test()


if __name__ == '__main__':
    main()
