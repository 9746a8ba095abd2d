# Copyright (c) mmris contributors. All rights reserved.
"""Export a referring segmentor to ONNX, the sentence as an input.

Example:
    python tools/deployment/pytorch2onnx.py \
        configs/quickstart/etris-tiny_synthetic.py \
        work_dirs/quickstart/epoch_4.pth --out work_dirs/onnx/model.onnx

Graph inputs: ``image`` float32 (B, 3, S, S), the letterboxed RGB image on
the 0-255 scale, and ``text_ids`` int64 (B, L), CLIP BPE ids (the tokenizer
stays outside the graph). Outputs: ``mask_logits`` (B, 1, h, w),
``mask_prob`` (B, 1, S, S) and, for gRefCOCO models, ``no_target_score``
(B,). The batch size is dynamic. The CLIP BPE vocabulary is copied next to
the model; run it with ``tools/deployment/onnx_demo.py`` (onnxruntime, no
torch).
"""
import argparse
import os.path as osp
import runpy
import time


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

import mmris  # noqa: F401  (compat + registries first)
from mmris.apis import init_model
from mmris.checkpoint import unsafe_checkpoint_loading
from mmris.deployment import (example_inputs, export_onnx, max_relative_error,
                              quantize_int8, torch_outputs)


def parse_args():
    parser = argparse.ArgumentParser(
        description='Export an mmris model to ONNX (image + token ids in, '
        'mask logits / probabilities out)')
    parser.add_argument('config', help='model config file')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        default=None,
        help="checkpoint file (omitted or 'none': random weights, for "
        'testing the export)')
    parser.add_argument('--out', required=True, help='output .onnx file')
    parser.add_argument(
        '--opset',
        type=int,
        default=None,
        help="ONNX opset (default: the exporter's)")
    parser.add_argument(
        '--int8',
        action='store_true',
        help='also write <out stem>_int8.onnx: dynamic int8 quantization of '
        'the matrix products (faster on CPU, less exact: see the README)')
    parser.add_argument(
        '--no-verify',
        action='store_true',
        help='skip the check that onnxruntime reproduces PyTorch on a '
        'random batch of 2')
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


def main():
    args = parse_args()
    TOOL_ENV['setup_cpu_threads']('pytorch2onnx.py')
    checkpoint = args.checkpoint
    if checkpoint is not None and checkpoint.lower() == 'none':
        checkpoint = None
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise SystemExit(
            f'pytorch2onnx.py: checkpoint file not found: {checkpoint}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    with unsafe_checkpoint_loading(args.unsafe_load):
        model = init_model(cfg, checkpoint, device='cpu')
    print(f'[pytorch2onnx] {args.config}: ' +
          (f'weights from {checkpoint}'
           if checkpoint else 'random weights (no checkpoint given)'))
    start = time.perf_counter()
    meta = export_onnx(
        model,
        args.out,
        opset_version=args.opset,
        config_name=osp.basename(args.config))
    print(f'[pytorch2onnx] wrote {args.out} in '
          f'{time.perf_counter() - start:.1f} s (opset {meta["opset"]}; '
          f'inputs image (B, 3, {meta["img_size"][0]}, '
          f'{meta["img_size"][1]}) and text_ids (B, {meta["word_len"]}); '
          f'outputs {", ".join(meta["outputs"])})')
    files = [args.out]
    if args.int8:
        int8_file = osp.splitext(args.out)[0] + '_int8.onnx'
        quantize_int8(args.out, int8_file)
        print(f'[pytorch2onnx] wrote {int8_file} (int8 dynamic quantization)')
        files.append(int8_file)
    if args.no_verify:
        return
    import onnxruntime as ort
    inputs = example_inputs(
        meta, ['the woman in the middle', 'left dog'], seed=1)
    ref = torch_outputs(model, inputs)
    for path in files:
        sess = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
        outs = dict(zip(meta['outputs'], sess.run(None, inputs)))
        for name in meta['outputs']:
            err = max_relative_error(ref[name], outs[name])
            print(f'[pytorch2onnx] {osp.basename(path)} on a random batch of '
                  f'2: {name} max |diff| / max |torch| = {err:.2e}')
            if err > 1e-4 and path == args.out:
                raise SystemExit(
                    f'pytorch2onnx.py: onnxruntime differs from PyTorch on '
                    f'{name} ({err:.2e} > 1e-4)')


if __name__ == '__main__':
    main()
