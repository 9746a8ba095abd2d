# Copyright (c) mmris contributors. All rights reserved.
"""Print the whole config after ``_base_`` inheritance and overrides.

Example::

    python tools/misc/print_config.py configs/detris/detris-l_refcoco.py \
        --cfg-options model.backbone.with_cp=True
"""
import argparse
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
from mmengine.config import Config, DictAction  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--save-path',
        default=None,
        help='also write the full config to this file (.py, .json or .yaml)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    print(f'Config:\n{cfg.pretty_text}')
    if args.save_path is not None:
        cfg.dump(args.save_path)
        print(f'Config saved to {args.save_path}')


if __name__ == '__main__':
    main()
