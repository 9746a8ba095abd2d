# Copyright (c) mmris contributors. All rights reserved.
"""Time training steps or inference of a config with random weights.

No checkpoint or data is needed: the model is built from the config with
random weights and fed random letterboxed images and token ids of the
config's input size and text length. Training mode times the full optimizer
step as the runner does it (forward, loss, backward, optimizer step through
the config's optimizer wrapper); inference mode times ``model.predict``'s
network part (logits). GPU timings use CUDA events, CPU timings wall clock.

Training mode also counts, exactly and the same on CPU as on GPU (see
``mmris.utils.memory_count``), per training image: the bytes of activations
saved for backward in one full optimizer step (each storage once, parameters
and buffers excluded), the parameter + gradient + optimizer-state bytes, and
the FLOPs of the forward and of the backward pass. ``--memory-at-batch N``
counts a second step at batch + 1 to split the saved bytes into a part
independent of the batch (e.g. autocast's bf16 copies of frozen weights) and
a per-image part, and prints ``static + constant + N x per image``, the
counted memory of a batch of N.
``--iters 0`` only counts (one step, no timing).

Example:
    python tools/analysis_tools/benchmark.py \
        configs/detris/detris-l_refcoco.py --mode train --batch 16 --amp bf16
    python tools/analysis_tools/benchmark.py \
        configs/detris/detris-l_refcoco.py --device cpu --batch 1 --iters 0 \
        --memory-at-batch 32
"""
import argparse
import os.path as osp
import runpy
import statistics


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
import torch  # noqa: E402
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import mmris  # noqa: F401
from mmris.benchmark import (BF16_PEAK_TFLOPS, build_train_wrapper,
                             count_flops, counted_train_step, format_counts,
                             infer_step, input_spec, make_batch, time_steps)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='model config file path')
    parser.add_argument(
        '--mode',
        choices=['train', 'infer'],
        default='train',
        help='train: time whole optimizer steps (forward, loss, backward, '
        'update); infer: time test-mode forward passes (default: train)')
    parser.add_argument(
        '--batch', type=int, default=16, help='images per step (default: 16)')
    parser.add_argument(
        '--iters',
        type=int,
        default=30,
        help='timed steps; the median is reported; 0 only counts '
        '(default: 30)')
    parser.add_argument(
        '--warmup',
        type=int,
        default=10,
        help='untimed steps before timing (default: 10)')
    parser.add_argument(
        '--amp',
        choices=['bf16', 'fp16', 'fp32'],
        default='fp32',
        help='autocast dtype; fp16 trains with a GradScaler as the official '
        'code (default: fp32)')
    parser.add_argument(
        '--peak-tflops',
        type=float,
        default=None,
        help='peak dense matmul rate of the device for the fraction '
        f'(default: {BF16_PEAK_TFLOPS:g} for bf16/fp16 on GPU, none on CPU)')
    parser.add_argument(
        '--memory-at-batch',
        type=int,
        nargs='+',
        default=[],
        metavar='N',
        help='train mode: also print the counted memory at these batch '
        'sizes (static + N x activations per image)')
    parser.add_argument(
        '--device',
        default=None,
        help="torch device, e.g. 'cpu' or 'cuda:0' (default: cuda when "
        'available, else cpu)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs (e.g. '
        'model.backbone.with_cp=True)')
    args = parser.parse_args()
    if args.iters < 0 or args.warmup < 0 or args.batch < 1:
        parser.error('--iters and --warmup must be >= 0, --batch >= 1')
    TOOL_ENV['setup_cpu_threads']('benchmark.py')

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    device = torch.device(
        args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    cuda = device.type == 'cuda'
    if cuda:
        torch.backends.cudnn.benchmark = True
    size, length = input_spec(cfg)
    model = MODELS.build(cfg.model).to(device)
    train = args.mode == 'train'
    model.train(train)
    dtype = dict(bf16=torch.bfloat16, fp16=torch.float16, fp32=None)[args.amp]

    if train:
        optim_wrapper = build_train_wrapper(model, cfg, args.amp)

        def step(data):
            return model.train_step(data, optim_wrapper)
    else:
        step = infer_step(model, device, dtype)

    data = make_batch(args.batch, size, length, train)

    # Count one step (forward + backward in training).
    counts = other = None
    if train:
        counts = counted_train_step(model, optim_wrapper, data, args.batch)
        if args.memory_at_batch:
            other = counted_train_step(
                model, optim_wrapper,
                make_batch(args.batch + 1, size, length, True), args.batch + 1)
        flops = counts.forward_flops + counts.backward_flops
    else:
        flops = count_flops(lambda: step(data))
    print(f'config: {args.config}')
    print(f'device: {torch.cuda.get_device_name(device) if cuda else "cpu"}'
          f', mode: {args.mode}, batch: {args.batch}, input: {size}, '
          f'text length: {length}, precision: {args.amp}')
    if counts is not None:
        print(format_counts(counts, tuple(args.memory_at_batch), other))
    print(f'counted TFLOP/step: {flops / 1e12:.4f}')
    if not args.iters:
        return

    times = time_steps(lambda: step(data), args.iters, args.warmup, device)
    ms = statistics.median(times)
    peak = args.peak_tflops
    if peak is None and cuda:
        peak = BF16_PEAK_TFLOPS if dtype is not None else 60.0
    tflops = flops / (ms / 1000) / 1e12
    print(f'median ms/iter: {ms:.2f}  (min {min(times):.2f}, '
          f'max {max(times):.2f}, {len(times)} iters)')
    print(f'img/s: {args.batch / (ms / 1000):.2f}')
    if cuda:
        print('peak memory (GiB): '
              f'{torch.cuda.max_memory_allocated(device) / 2**30:.2f}')
    else:
        print('peak memory: n/a on CPU')
    share = f' = {100 * tflops / peak:.1f} % of {peak:.0f}' if peak else ''
    print(f'achieved TFLOP/s: {tflops:.3f}{share}')


if __name__ == '__main__':
    main()
