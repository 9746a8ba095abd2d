# Copyright (c) mmris contributors. All rights reserved.
"""Segment what one or more sentences refer to in an image and write an
overlay per sentence, drawn as ``tools/test.py --show-dir`` draws it (small
images scaled up to a 320 px shorter side, the mask lightly tinted and
outlined, the sentence on a caption strip below the image).

Example:
    python tools/demo.py demo.jpg "the man on the left" "the red car" \
        --config configs/etris/etris_vit-b16_refcoco.py \
        --checkpoint etris_vit-b16_refcoco.pth --out overlay.png

One sentence writes ``--out`` itself; several write ``<stem>_<i><ext>``
(``overlay_0.png``, ``overlay_1.png``, ...).
"""
import argparse
import os
import os.path as osp
import runpy
import sys
from typing import List


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
    parser = argparse.ArgumentParser(
        description='Referring image segmentation demo')
    parser.add_argument('image', help='image file')
    parser.add_argument(
        'sentences', nargs='+', help='one or more referring expressions')
    parser.add_argument('--config', required=True, help='model config file')
    parser.add_argument(
        '--checkpoint',
        required=True,
        help="checkpoint file ('none': random weights, for smoke tests)")
    parser.add_argument(
        '--out', default='overlay.png', help='output overlay file')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument(
        '--threshold',
        type=float,
        default=None,
        help='mask threshold on the probability map (default: the '
        "model's test_cfg.threshold, 0.35)")
    parser.add_argument(
        '--alpha',
        type=float,
        default=0.3,
        help='tint opacity (default: 0.3, as --show-dir: the outline marks '
        "the mask and the object's own colour stays visible)")
    parser.add_argument(
        '--min-size',
        type=int,
        default=320,
        help='scale smaller images up to this shorter side (default: 320)')
    parser.add_argument(
        '--max-pixels',
        type=int,
        default=None,
        help='largest image accepted, width x height, read from the header '
        'before decoding (default: $MMRIS_MAX_IMAGE_PIXELS or 67108864)')
    parser.add_argument(
        '--batch-size', type=int, default=8, help='sentences per forward')
    parser.add_argument(
        '--save-prob',
        action='store_true',
        help='also write the probability map as <out stem>_prob.png')
    parser.add_argument(
        '--unsafe-load',
        action='store_true',
        help='allow checkpoints with arbitrary pickled objects (only for '
        'files you trust)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config (key=value)')
    return parser.parse_args()


def output_paths(out: str, num: int) -> List[str]:
    """``out`` for one sentence, ``<stem>_<i><ext>`` for several."""
    if num == 1:
        return [out]
    stem, ext = osp.splitext(out)
    return [f'{stem}_{i}{ext or ".png"}' for i in range(num)]


def describe_weights(cfg, checkpoint: str) -> str:
    """One line saying which weights run, with the config's ``model_note``
    (e.g. that the quick-start model only knows synthetic shapes)."""
    if checkpoint is None:
        line = ('random weights (no checkpoint given): the masks mean '
                'nothing')
    else:
        line = f'weights from {checkpoint}'
    note = cfg.get('model_note')
    return line + (f'\n[demo] note: {note}' if note else '')


def main():
    args = parse_args()
    checkpoint = None if args.checkpoint.lower() == 'none' else \
        args.checkpoint
    # check the arguments before the (slow) imports and model build
    if not osp.isfile(args.image):
        raise SystemExit(f'demo.py: image file not found: {args.image}')
    if not osp.isfile(args.config):
        raise SystemExit(f'demo.py: config file not found: {args.config}')
    TOOL_ENV['check_checkpoint_path'](checkpoint, 'demo.py')
    TOOL_ENV['setup_cpu_threads']('demo.py')
    import mmcv
    import numpy as np
    from mmengine.config import Config

    import mmris  # noqa: F401  (compat + registries first)
    from mmris.apis import RISInferencer, init_model, load_image
    from mmris.checkpoint import unsafe_checkpoint_loading
    try:
        image = load_image(args.image, max_pixels=args.max_pixels)['img']
    except (OSError, ValueError, TypeError) as err:
        raise SystemExit(f'demo.py: cannot use image "{args.image}": {err}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    with unsafe_checkpoint_loading(args.unsafe_load):
        model = init_model(cfg, checkpoint, device=args.device)
    print(f'[demo] model: {args.config}; '
          f'{describe_weights(cfg, checkpoint)}')
    inferencer = RISInferencer(model, max_pixels=args.max_pixels)
    out = inferencer(
        image,
        list(args.sentences),
        batch_size=args.batch_size,
        threshold=args.threshold,
        return_vis=True,
        alpha=args.alpha,
        min_size=args.min_size)
    paths = output_paths(args.out, len(args.sentences))
    for sentence, pred, overlay, path in zip(args.sentences,
                                             out['predictions'],
                                             out['visualization'], paths):
        mask, prob = pred['mask'], pred['prob']
        if osp.dirname(path):
            os.makedirs(osp.dirname(path), exist_ok=True)
        mmcv.imwrite(mmcv.rgb2bgr(overlay), path)
        if args.save_prob:
            prob_u8 = np.clip(np.round(np.nan_to_num(prob) * 255), 0,
                              255).astype(np.uint8)
            mmcv.imwrite(prob_u8, osp.splitext(path)[0] + '_prob.png')
        bad = ~np.isfinite(prob)
        if bad.any():
            print(
                f'[demo] WARNING: the model output NaN/inf for '
                f'{100. * bad.mean():.1f}% of the pixels of "{sentence}": '
                'its mask is meaningless (the checkpoint may hold '
                'non-finite weights)',
                file=sys.stderr)
        if pred['no_target']:
            print(f'{path}: "{sentence}" -> no target (no-target '
                  f'probability {pred["no_target_score"]:.3f})')
            continue
        top = float('nan') if bad.all() else float(np.nanmax(prob))
        print(f'{path}: "{sentence}" -> mask {100. * mask.mean():.1f}% of '
              f'the image (max prob {top:.3f})')


if __name__ == '__main__':
    main()
