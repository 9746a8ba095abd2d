# Copyright (c) mmris contributors. All rights reserved.
"""Evaluate an mmris checkpoint and print the benchmark table."""
import argparse
import os
import os.path as osp
import runpy
from typing import TYPE_CHECKING


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

if TYPE_CHECKING:
    from mmengine.config import Config


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
        '--show-dir',
        help='save ground truth vs prediction overlays (sentence and IoU '
        'drawn) of every sentence to DIR/vis_data/vis_image/')
    parser.add_argument(
        '--show-interval',
        type=int,
        default=1,
        help='with --show-dir: draw the samples of every N-th batch')
    parser.add_argument(
        '--out',
        help='write the raw per-sentence results (dataset, split, ref and '
        'sentence ids, image, sentence, I, U, IoU; gRefCOCO also no_target, '
        'pred_no_target and giou, the contribution to gIoU) with the metrics '
        'and the protocol to this JSON file')
    parser.add_argument(
        '--tta',
        action='store_true',
        help='not available: none of ETRIS, BarLeRIa and DETRIS evaluates '
        'with test-time augmentation, and flipping would contradict '
        '"left"/"right" in the sentences; the flag only says so')
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


def enable_show_dir(cfg: 'Config', show_dir: str, interval: int = 1) -> None:
    """Draw every ``interval``-th test batch with ``RISVisualizationHook``
    and ``RISLocalVisualizer`` (keeping the config's visual backends) into
    ``show_dir``."""
    default_hooks = cfg.get('default_hooks') or {}
    default_hooks['visualization'] = dict(
        type='RISVisualizationHook', draw=True, interval=interval)
    cfg.default_hooks = default_hooks
    visualizer = dict(cfg.get('visualizer') or {})
    if visualizer.get('type') in (None, 'SegLocalVisualizer', 'Visualizer'):
        visualizer['type'] = 'RISLocalVisualizer'
    visualizer.setdefault('vis_backends', [dict(type='LocalVisBackend')])
    visualizer.setdefault('name', 'visualizer')
    visualizer['save_dir'] = show_dir
    cfg.visualizer = visualizer


def set_out_file(cfg: 'Config', out_file: str) -> None:
    """Make every ``RISMetric`` of the test evaluator write ``out_file``
    (one evaluator: the path itself; several: ``<stem>_<i>.json``)."""
    evaluator = cfg.get('test_evaluator')
    metrics = evaluator if isinstance(evaluator, list) else [evaluator]
    targets = [m for m in metrics if isinstance(m, dict)]
    if not targets:
        raise ValueError('--out needs a test_evaluator in the config')
    stem = osp.splitext(out_file)[0]
    for i, metric in enumerate(targets):
        metric['out_file'] = (
            out_file if len(targets) == 1 else f'{stem}_{i}.json')


def main():
    args = parse_args()
    if args.tta:
        raise SystemExit(
            'tools/test.py: --tta is not available for referring '
            'segmentation (no official recipe uses it; flips contradict '
            '"left"/"right" sentences)')
    if args.out is not None and not args.out.endswith('.json'):
        raise SystemExit(f'tools/test.py: --out must be a .json file, got '
                         f'{args.out!r}')
    if not osp.isfile(args.config):
        raise SystemExit(f'tools/test.py: config file not found: '
                         f'{args.config}')
    # before the (long) config dump of the runner
    TOOL_ENV['check_checkpoint_path'](args.checkpoint, 'tools/test.py')
    TOOL_ENV['setup_cpu_threads']('test.py')
    from mmengine.config import Config

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
    cfg.load_from = None if args.checkpoint == 'none' else args.checkpoint
    if args.show_dir is not None:
        enable_show_dir(cfg, args.show_dir, args.show_interval)
    if args.out is not None:
        set_out_file(cfg, args.out)

    # RISRunner (runner_type in default_runtime): strict checkpoint loading
    runner = build_runner(cfg)
    with unsafe_checkpoint_loading(args.unsafe_load):
        runner.test()


if __name__ == '__main__':
    main()
