# Copyright (c) mmris contributors. All rights reserved.
"""Train an mmris model (MMSeg-style entry point)."""
import argparse
import logging
import os
import os.path as osp
import runpy


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
from mmengine.config import DictAction  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description='Train an RIS model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        action='store_true',
        default=False,
        help='resume from the newest usable checkpoint of the work_dir '
        '(the one named by last_checkpoint, else the newest *.pth; files '
        'that do not open or hold NaN/inf weights are skipped with a '
        'message); with load_from set, resume from that file')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--amp-dtype',
        choices=['bf16', 'fp16'],
        default='bf16',
        help='with --amp: bf16 autocast without loss scaling (default; '
        'AutocastOptimWrapper) or fp16 with a dynamic GradScaler (the '
        'official recipe; AmpOptimWrapper)')
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
    TOOL_ENV['setup_cpu_threads']('train.py')
    from mmengine.config import Config
    from mmengine.logging import print_log

    import mmris  # noqa: F401  (compat + registries first)
    from mmris.checkpoint import unsafe_checkpoint_loading
    from mmris.engine import build_runner
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    if args.amp:
        optim_wrapper = cfg.optim_wrapper.type
        if optim_wrapper in ('AmpOptimWrapper', 'AutocastOptimWrapper'):
            print_log(
                'AMP training is already enabled in your config.',
                logger='current',
                level=logging.WARNING)
        else:
            if optim_wrapper != 'OptimWrapper':
                raise ValueError(
                    '`--amp` needs optim_wrapper.type == "OptimWrapper" in '
                    f'the config, got {optim_wrapper!r}')
            if args.amp_dtype == 'bf16':
                cfg.optim_wrapper.type = 'AutocastOptimWrapper'
                cfg.optim_wrapper.dtype = 'bfloat16'
            else:
                cfg.optim_wrapper.type = 'AmpOptimWrapper'
                cfg.optim_wrapper.loss_scale = 'dynamic'

    cfg.resume = args.resume
    # RISRunner (runner_type in default_runtime): strict load_from/resume
    runner = build_runner(cfg)
    with unsafe_checkpoint_loading(args.unsafe_load):
        runner.train()


if __name__ == '__main__':
    main()
