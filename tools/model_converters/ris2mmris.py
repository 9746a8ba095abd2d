# Copyright (c) mmris contributors. All rights reserved.
"""Convert an official ETRIS / BarLeRIa / DETRIS checkpoint to an mmris
checkpoint.

The official files are ``{'state_dict': ..., 'optimizer': ..., ...}`` with
``module.``-prefixed keys (``torch.save`` of the DistributedDataParallel
model in the official ``train.py``). Only the model weights are kept.

Example:
    python tools/model_converters/ris2mmris.py etris best_model.pth \
        etris_vit-b16_refcoco.pth \
        --config configs/etris/etris_vit-b16_refcoco.py
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

#: The official repositories with a key map (the keys of
#: ``mmris.utils.KEY_MAPS``, listed here so that ``--help`` imports nothing
#: heavy; main() checks that they agree).
METHODS = ('barleria', 'barleria_eva', 'detris', 'etris')


def main():
    parser = argparse.ArgumentParser(
        description=' '.join(__doc__.split('\n\n')[0].split()))
    parser.add_argument(
        'method',
        choices=METHODS,
        help='the official repository the checkpoint comes from '
        '(kkakkkka/ETRIS, NastrondAd/BarLeRIa (barleria_eva: its '
        'EVA02-CLIP-B/16 configs), jiaqihuang01/DETRIS)')
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
    TOOL_ENV['setup_cpu_threads']('ris2mmris.py')
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import mmris  # noqa: F401
    from mmris.checkpoint import (KEY_MAPS, convert_official_state_dict,
                                  load_state_dict_strict, safe_torch_load)
    assert set(METHODS) == set(KEY_MAPS), 'METHODS differs from KEY_MAPS'

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
    torch.save(
        dict(state_dict=converted, meta=dict(source=args.src)), args.dst)
    print(f'wrote {len(converted)} tensors to {args.dst}')


if __name__ == '__main__':
    main()
