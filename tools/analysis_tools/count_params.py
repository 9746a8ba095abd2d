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

import mmris  # noqa: F401
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from mmris.utils import count_parameters, format_parameter_table


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
