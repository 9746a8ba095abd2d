# Copyright (c) mmris contributors. All rights reserved.
"""Print trainable vs frozen parameters per module for a config.

The model is built with random weights (no checkpoint is read), so this works
for the full-size configs without any download.

Example:
    python tools/analysis_tools/count_params.py \
        configs/etris/etris_vit-b16_refcoco.py
"""
import argparse
import json
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='model config file path')
    parser.add_argument(
        '--json',
        action='store_true',
        help='print the counts as JSON instead of a table')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs')
    args = parser.parse_args()
    TOOL_ENV['setup_cpu_threads']('count_params.py')
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import mmris  # noqa: F401
    from mmris.utils import count_parameters, format_parameter_table
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = MODELS.build(cfg.model)
    stats = count_parameters(model)
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        print(f'{args.config}\n')
        print(format_parameter_table(stats))


if __name__ == '__main__':
    main()
