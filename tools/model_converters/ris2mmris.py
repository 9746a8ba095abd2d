# Copyright (c) mmris contributors. All rights reserved.
"""Convert an official ETRIS / DETRIS checkpoint to an mmris checkpoint.

The official files are ``{'state_dict': ..., 'optimizer': ..., ...}`` with
``module.``-prefixed keys (``torch.save`` of the DistributedDataParallel
model in the official ``train.py``). Only the model weights are kept.

Example:
    python tools/model_converters/ris2mmris.py etris best_model.pth \
        etris_vit-b16_refcoco.pth \
        --config configs/etris/etris_vit-b16_refcoco.py
"""
import argparse

import mmris  # noqa: F401
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from mmris.checkpoint import safe_torch_load
from mmris.checkpoint import load_state_dict_strict
from mmris.checkpoint import KEY_MAPS, convert_official_state_dict


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'method',
        choices=sorted(KEY_MAPS),
        help='the official repository the checkpoint comes from')
    parser.add_argument('src', help='official checkpoint')
    parser.add_argument('dst', help='output mmris checkpoint')
    parser.add_argument(
        '--config',
        help='verify that the result loads strictly into this config')
    parser.add_argument(
        '--unsafe-load',
        action='store_true',
        help='unpickle arbitrary objects (runs code from the file; only for '
        'files you trust)')
    args = parser.parse_args()

    ckpt = safe_torch_load(args.src, unsafe=args.unsafe_load or None)
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise TypeError(f'{args.src}: expected a dict with a "state_dict"')
    converted = convert_official_state_dict(state, args.method)
    if args.config:
        cfg = Config.fromfile(args.config)
        init_default_scope(cfg.get('default_scope', 'mmseg'))
        model = MODELS.build(cfg.model)
        # missing / unexpected / shape-mismatched keys listed on failure
        load_state_dict_strict(
            model,
            converted,
            strict=True,
            source=f'{args.src} converted for {args.method}')
        print(f'{args.config}: all {len(converted)} tensors load strictly')
    torch.save(dict(state_dict=converted, meta=dict(source=args.src)),
               args.dst)
    print(f'wrote {len(converted)} tensors to {args.dst}')


if __name__ == '__main__':
    main()
