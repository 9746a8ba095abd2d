# Copyright (c) mmris contributors. All rights reserved.
"""Draw dataset samples: the image with its ground-truth mask and sentence.

One PNG per sample (the image scaled up to ``--min-size`` when smaller, the
ground-truth mask outlined and lightly tinted, and a caption strip below
with the ref/sentence ids and the sentence; in train mode all sentences of
the object). It reads the samples exactly as the config's dataset does, with
the pipeline cut after ``LoadRefMask``, so what is drawn is what the model
is trained or evaluated against, at the original resolution.

Example::

    python tools/analysis_tools/browse_dataset.py \
        configs/quickstart/etris-tiny_synthetic.py --phase val --num 20 \
        --output-dir work_dirs/browse
"""
import argparse
import copy
import os
import os.path as osp
import runpy
from typing import Any


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

#: What is kept of the pipeline: the original image and its mask.
_KEEP = ('LoadRefImage', 'LoadRefMask')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--phase',
        default='train',
        choices=['train', 'val', 'test'],
        help='which dataloader of the config to browse (default: train)')
    parser.add_argument(
        '--output-dir',
        default='work_dirs/browse_dataset',
        help='folder for the pictures (default: work_dirs/browse_dataset)')
    parser.add_argument(
        '--num',
        type=int,
        default=20,
        help='number of samples to draw, from the first (default: 20)')
    parser.add_argument(
        '--data-root',
        default=None,
        help="override the dataset's data_root (default: the config's)")
    parser.add_argument(
        '--min-size',
        type=int,
        default=320,
        help='scale images up to this shorter side (default: 320)')
    parser.add_argument(
        '--alpha',
        type=float,
        default=0.3,
        help='opacity of the mask tint (default: 0.3)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs')
    return parser.parse_args()


def loading_only(dataset_cfg: Any, data_root: str = None) -> Any:
    """A copy of ``dataset_cfg`` (wrappers included) whose pipelines keep
    only the loading of the image and the mask."""
    cfg = copy.deepcopy(dataset_cfg)

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if 'pipeline' in node:
                node['pipeline'] = [
                    t for t in node['pipeline'] if t.get('type') in _KEEP
                ]
            if data_root is not None and 'data_root' in node:
                node['data_root'] = data_root
            for value in node.values():
                visit(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                visit(value)

    visit(cfg)
    return cfg


def caption(sample: dict) -> str:
    """``ref <id> sent <id>: <sentence>``; every sentence of the object
    when the sample lists them (train mode)."""
    text = f'ref {sample.get("ref_id")} sent {sample.get("sent_id")}: ' \
           f'{sample.get("text", "")}'
    others = [
        s['sent'] for s in sample.get('sentences') or []
        if s['sent'] != sample.get('text')
    ]
    if others:
        text += ' | also: ' + ' / '.join(others)
    return text


def main() -> None:
    args = parse_args()
    if args.num < 1:
        raise ValueError(f'--num must be >= 1, got {args.num}')
    TOOL_ENV['setup_cpu_threads']('browse_dataset.py')
    import mmcv
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    import mmris  # noqa: F401  (compat + registries first)
    from mmris.visualization import GT_COLOR, render_overlay
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    loader = cfg.get(f'{args.phase}_dataloader')
    if loader is None or loader.get('dataset') is None:
        raise ValueError(f'{args.config} has no {args.phase}_dataloader.'
                         'dataset')
    dataset = DATASETS.build(loading_only(loader['dataset'], args.data_root))
    os.makedirs(args.output_dir, exist_ok=True)
    num = min(args.num, len(dataset))
    for idx in range(num):
        sample = dataset[idx]
        drawn = render_overlay(sample['img'], sample['gt_seg_map'],
                               caption(sample), GT_COLOR, args.alpha,
                               args.min_size)
        stem = osp.splitext(osp.basename(sample['img_path']))[0]
        name = f'{idx:05d}_{stem}_ref{sample.get("ref_id")}_' \
               f'sent{sample.get("sent_id")}.png'
        mmcv.imwrite(mmcv.rgb2bgr(drawn), osp.join(args.output_dir, name))
    print(f'{num} of {len(dataset)} {args.phase} samples drawn to '
          f'{args.output_dir}')


if __name__ == '__main__':
    main()
