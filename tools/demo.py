# Copyright (c) mmris contributors. All rights reserved.
"""Segment what one or more sentences refer to in an image and write an
overlay per sentence (tinted mask, contour, the sentence on top).

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
from typing import List

import mmcv
import numpy as np

import mmris  # noqa: F401  (compat + registries first)
from mmengine.config import Config, DictAction

from mmris.apis import inference_model, init_model, load_image
from mmris.checkpoint import unsafe_checkpoint_loading
from mmris.visualization import PRED_COLOR, draw_referring_mask


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
        '--alpha', type=float, default=0.5, help='tint opacity')
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


def describe_weights(cfg: Config, checkpoint: str) -> str:
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
    # check the inputs before the (slow) model build
    try:
        image = load_image(args.image)['img']
    except (OSError, ValueError, TypeError) as err:
        raise SystemExit(f'demo.py: cannot use image "{args.image}": {err}')
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise SystemExit(f'demo.py: checkpoint file not found: {checkpoint}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    with unsafe_checkpoint_loading(args.unsafe_load):
        model = init_model(cfg, checkpoint, device=args.device)
    print(f'[demo] model: {args.config}; '
          f'{describe_weights(cfg, checkpoint)}')
    results = inference_model(
        model,
        image,
        list(args.sentences),
        batch_size=args.batch_size,
        threshold=args.threshold)
    paths = output_paths(args.out, len(results))
    for sentence, result, path in zip(args.sentences, results, paths):
        mask = result.pred_sem_seg.data[0].numpy()
        # gRefCOCO models (no_target_head) may answer "no such object"
        no_target = bool(result.metainfo.get('pred_no_target', False))
        caption = f'{sentence} -> no target' if no_target else sentence
        overlay = draw_referring_mask(
            image, mask, PRED_COLOR, args.alpha, text=caption)
        if osp.dirname(path):
            os.makedirs(osp.dirname(path), exist_ok=True)
        mmcv.imwrite(mmcv.rgb2bgr(overlay), path)
        if args.save_prob:
            prob = result.seg_logits.data[0].numpy()
            prob_u8 = np.clip(np.round(prob * 255), 0, 255).astype(np.uint8)
            mmcv.imwrite(prob_u8, osp.splitext(path)[0] + '_prob.png')
        area = 100. * mask.mean()
        if no_target:
            score = result.metainfo.get('no_target_score', float('nan'))
            print(f'{path}: "{sentence}" -> no target (no-target '
                  f'probability {score:.3f})')
            continue
        print(f'{path}: "{sentence}" -> mask {area:.1f}% of the image '
              f'(max prob {float(result.seg_logits.data.max()):.3f})')


if __name__ == '__main__':
    main()
