# Copyright (c) mmris contributors. All rights reserved.
"""Run an exported mmris model with onnxruntime (no torch, no mmris model
code) and write the same overlay per sentence as ``tools/demo.py``.

Example:
    python tools/deployment/onnx_demo.py demo/demo.jpg "the red circle" \
        --model work_dirs/onnx/model.onnx --out overlay.png

Needs numpy, opencv-python, onnxruntime, ftfy and regex. The mmris files it
uses are torch-free and loaded by path from the mmris folder (a source
checkout or an installed wheel), without importing the package:
``deployment/ort_inference.py`` (letterbox, CLIP tokenizer, post-processing)
and ``visualization/overlay.py`` (``render_overlay``, the drawing of
``tools/demo.py``). The
CLIP BPE vocabulary is read from the model's folder (written there by
``pytorch2onnx.py``) unless ``--bpe-vocab`` names it.
"""
import argparse
import importlib.util
import os
import os.path as osp
import sys
from typing import List


def mmris_dir() -> str:
    """The mmris package folder, found without importing it (importing
    mmris would import torch)."""
    spec = importlib.util.find_spec('mmris')
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit('onnx_demo.py: the mmris package folder was not '
                         'found (install the mmris wheel, or run from a '
                         'source checkout with PYTHONPATH=.)')
    return list(spec.submodule_search_locations)[0]


def load_file(name: str, *parts: str):
    """Import ``<mmris>/<parts>`` as the module ``name``."""
    path = osp.join(mmris_dir(), *parts)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or not osp.isfile(path):
        raise SystemExit(f'onnx_demo.py: {path} is missing')
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def parse_args():
    parser = argparse.ArgumentParser(
        description='Referring image segmentation with an exported ONNX '
        'model (onnxruntime, no torch)')
    parser.add_argument('image', help='image file')
    parser.add_argument(
        'sentences', nargs='+', help='one or more referring expressions')
    parser.add_argument(
        '--model',
        required=True,
        help='.onnx file written by tools/deployment/pytorch2onnx.py')
    parser.add_argument(
        '--out', default='overlay.png', help='output overlay file')
    parser.add_argument(
        '--threshold',
        type=float,
        default=None,
        help="mask threshold on the probability map (default: the model's, "
        '0.35)')
    parser.add_argument(
        '--alpha',
        type=float,
        default=None,
        help='tint opacity (default: the overlay renderer\'s, 0.3)')
    parser.add_argument(
        '--min-size',
        type=int,
        default=None,
        help='scale small images up to this shorter side for the overlay '
        "(default: the overlay renderer's, 320)")
    parser.add_argument(
        '--batch-size', type=int, default=8, help='sentences per run')
    parser.add_argument(
        '--save-prob',
        action='store_true',
        help='also write the probability map as <out stem>_prob.png')
    parser.add_argument(
        '--bpe-vocab',
        default=None,
        help='CLIP BPE vocabulary (default: bpe_simple_vocab_16e6.txt.gz '
        "next to --model, else open_clip's copy)")
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='onnxruntime intra-op threads (default: the CPU thread rule '
        'of every tool: OMP_NUM_THREADS, else the idle cores)')
    return parser.parse_args()


def output_paths(out: str, num: int) -> List[str]:
    """``out`` for one sentence, ``<stem>_<i><ext>`` for several (as
    ``tools/demo.py``)."""
    if num == 1:
        return [out]
    stem, ext = osp.splitext(out)
    return [f'{stem}_{i}{ext or ".png"}' for i in range(num)]


#: What this tool imports (no torch): a Python without them is sent to the
#: checkout's .venv, or told what to install, by the rule of every tool.
DEMO_MODULES = ('numpy', 'cv2', 'onnxruntime', 'ftfy', 'regex')


def main():
    args = parse_args()
    tool_env = load_file('_mmris_tool_env', 'utils', 'tool_env.py')
    TOOL_ENV = vars(tool_env)
    TOOL_ENV['ensure_environment'](__file__, DEMO_MODULES)
    threads = TOOL_ENV['setup_cpu_threads']('onnx_demo.py')
    ort_inference = load_file('_mmris_ort_inference', 'deployment',
                              'ort_inference.py')
    overlay = load_file('_mmris_overlay', 'visualization', 'overlay.py')
    import cv2
    import numpy as np

    try:
        image = ort_inference.read_image(args.image)
    except OSError as err:
        raise SystemExit(f'onnx_demo.py: cannot use image "{args.image}": '
                         f'{err}')
    try:
        runner = ort_inference.ORTReferringSegmenter.from_file(
            args.model,
            bpe_path=args.bpe_vocab,
            num_threads=args.threads or threads)
    except (OSError, ValueError) as err:
        raise SystemExit(f'onnx_demo.py: {err}')
    note = runner.meta.get('config')
    print(f'[onnx_demo] model: {args.model}' +
          (f' (exported from {note})' if note else ''))
    results = runner(
        image,
        list(args.sentences),
        threshold=args.threshold,
        batch_size=args.batch_size)
    paths = output_paths(args.out, len(results))
    for sentence, result, path in zip(args.sentences, results, paths):
        mask = result['mask']
        no_target = result['no_target']
        caption = f'{sentence} -> no target' if no_target else sentence
        drawn = overlay.render_overlay(
            image,
            mask,
            caption,
            overlay.PRED_COLOR,
            alpha=overlay.DEFAULT_ALPHA if args.alpha is None else args.alpha,
            min_size=(overlay.DEFAULT_MIN_SIZE
                      if args.min_size is None else args.min_size))
        if osp.dirname(path):
            os.makedirs(osp.dirname(path), exist_ok=True)
        cv2.imwrite(path, cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        if args.save_prob:
            prob = result['prob']
            prob_u8 = np.clip(np.round(prob * 255), 0, 255).astype(np.uint8)
            cv2.imwrite(osp.splitext(path)[0] + '_prob.png', prob_u8)
        if no_target:
            print(f'{path}: "{sentence}" -> no target (no-target '
                  f'probability {result["no_target_score"]:.3f})')
            continue
        print(f'{path}: "{sentence}" -> mask {100. * mask.mean():.1f}% of '
              f'the image (max prob {float(result["prob"].max()):.3f})')


if __name__ == '__main__':
    main()
