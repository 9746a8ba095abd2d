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
    python tools/analysis_tools/benchmark.py configs/detris/detris-l_refcoco.py \
        --mode train --batch 16 --amp bf16
    python tools/analysis_tools/benchmark.py configs/detris/detris-l_refcoco.py \
        --device cpu --batch 1 --iters 0 --memory-at-batch 32
"""
import argparse
import os.path as osp
import runpy
import statistics
import time
from typing import Any, Callable, List, Optional, Tuple


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
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import mmris  # noqa: F401
from mmris.apis import find_ref_dataset
from mmris.utils.memory_count import (StepCounts, count_train_step,
                                      flop_counter, split_activations)

MiB = 2**20

#: The counted limit on an H100 SXM / H200: the bf16 dense matrix-multiply
#: rate these cards sustain, about 790 TFLOP/s (80 % of the 989 dense
#: BF16/FP16 Tensor Core figure of NVIDIA's datasheets, 1,979 "with
#: sparsity"). Pass --peak-tflops with a rate measured on your card.
BF16_PEAK_TFLOPS = 790.0


def input_spec(cfg: Config) -> Tuple[int, int]:
    """(input size, text length) from the config's test dataset."""
    ds = find_ref_dataset(cfg.test_dataloader.dataset) or {}
    return int(ds.get('img_size') or 416), int(ds.get('word_len') or 17)


def make_batch(batch: int, size: int, length: int, train: bool) -> dict:
    g = torch.Generator().manual_seed(0)
    inputs = [
        torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=g)
        for _ in range(batch)
    ]
    samples = []
    for i in range(batch):
        ids = torch.zeros(length, dtype=torch.long)
        n = 3 + i % max(length - 4, 1)
        ids[0] = 49406
        ids[1:n] = torch.randint(1, 49000, (n - 1, ), generator=g)
        ids[n] = 49407
        ds = SegDataSample(
            metainfo=dict(img_shape=(size, size), ori_shape=(size, size)))
        ds.text_ids = ids
        if train:
            ds.gt_mask = PixelData(
                data=(torch.rand(1, size, size, generator=g) > 0.7).float())
        samples.append(ds)
    return dict(inputs=inputs, data_samples=samples)


def official_inputs(prep: dict) -> Tuple[torch.Tensor, ...]:
    """(images, token ids, masks) of a batch preprocessed by the mmris data
    preprocessor in training mode, as the official models take them."""
    samples = prep['data_samples']
    word = torch.stack([ds.text_ids for ds in samples])
    mask = torch.stack([ds.gt_mask.data for ds in samples])
    img = prep['inputs']
    return img, word.to(img.device), mask.to(img.device)


def counted_train_step(model, optim_wrapper, data: dict,
                       batch: int) -> StepCounts:
    """One optimizer step as ``BaseModel.train_step`` runs it, counted with
    :func:`mmris.utils.memory_count.count_train_step`."""

    def forward():
        with optim_wrapper.optim_context(model):
            inputs = model.data_preprocessor(data, True)
            losses = model._run_forward(inputs, mode='loss')
        loss, _ = model.parse_losses(losses)
        return loss

    def update():
        optim_wrapper.step()
        optim_wrapper.zero_grad()

    return count_train_step(
        model,
        forward,
        optim_wrapper.backward,
        optimizer=optim_wrapper.optimizer,
        step=update,
        batch=batch)


def build_train_wrapper(model, cfg: Config, amp: str):
    """The optimizer wrapper of ``cfg`` for ``model`` in precision ``amp``.

    ``'bf16'`` autocasts as ``tools/train.py --amp`` does
    (``AutocastOptimWrapper``); ``'fp16'`` is the official recipe (autocast +
    dynamic GradScaler, ``AmpOptimWrapper``); ``'fp32'`` keeps the config's
    wrapper.
    """
    ow_cfg = dict(cfg.optim_wrapper)
    if amp == 'bf16':  # as `tools/train.py --amp`
        ow_cfg.update(type='AutocastOptimWrapper', dtype='bfloat16')
    elif amp == 'fp16':  # the official recipe: fp16 + GradScaler
        ow_cfg.update(
            type='AmpOptimWrapper', dtype='float16', loss_scale='dynamic')
    return build_optim_wrapper(model, ow_cfg)


def infer_step(model, device: torch.device,
               dtype: Optional[torch.dtype]) -> Callable[[dict], Any]:
    """A test-mode step of ``model`` (preprocessing + network logits, no
    post-processing) on a batch of :func:`make_batch`, autocast to ``dtype``
    (None: fp32)."""

    def step(data):
        with torch.no_grad(), torch.autocast(
                device.type, dtype=dtype or torch.float32,
                enabled=dtype is not None):
            data = model.data_preprocessor(data, False)
            return model._forward(data['inputs'], data['data_samples'])

    return step


def count_flops(step: Callable[[], Any]) -> int:
    """The FLOPs of one call of ``step`` (counted by
    :func:`mmris.utils.memory_count.flop_counter`)."""
    with flop_counter() as counter:
        step()
    return counter.get_total_flops()


def time_steps(step: Callable[[], Any], iters: int, warmup: int,
               device: torch.device) -> List[float]:
    """Run ``warmup`` untimed then ``iters`` timed calls of ``step``.

    On CUDA each call is timed with CUDA events and the peak-memory
    statistics are reset after the warm-up (read them with
    ``torch.cuda.max_memory_allocated``); elsewhere wall clock is used.

    Returns:
        list[float]: The milliseconds of each timed call.
    """
    cuda = device.type == 'cuda'
    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(iters):
        if cuda:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1000)
    return times


def format_counts(counts: StepCounts,
                  memory_at: Tuple[int, ...] = (),
                  other: Optional[StepCounts] = None) -> str:
    """The lines ``benchmark.py --mode train`` prints about ``counts`` (and
    the batch split and estimates at ``memory_at`` from a second count
    ``other`` at another batch size)."""
    b = counts.batch
    lines = [
        'counted per training image (batch %d): activations saved for '
        'backward %.2f MiB (%d bytes; %d storages in the step); GFLOP '
        'forward %.3f, backward %.3f' %
        (b, counts.activation_bytes_per_sample() / MiB,
         round(counts.activation_bytes_per_sample()), counts.saved_tensors,
         counts.forward_flops / b / 1e9, counts.backward_flops / b / 1e9),
        'counted static: parameters %.2f MiB + gradients %.2f MiB + '
        'optimizer state %.2f MiB = %.2f MiB (%d bytes)' %
        (counts.param_bytes / MiB, counts.grad_bytes / MiB,
         counts.optimizer_state_bytes / MiB, counts.static_bytes / MiB,
         counts.static_bytes)
    ]
    if not memory_at:
        return '\n'.join(lines)
    if other is None:
        raise ValueError('memory_at needs a second count at another batch')
    constant, per_sample = split_activations(counts, other)
    lines.append(
        'counted activations vs batch (batches %d and %d): %.2f MiB + batch '
        'x %.2f MiB (%d + batch x %d bytes)' %
        (counts.batch, other.batch, constant / MiB, per_sample / MiB,
         round(constant), round(per_sample)))
    for n in memory_at:
        lines.append(
            'counted memory at batch %d (static + constant + %d x per '
            'image): %.2f GiB' %
            (n, n, counts.estimate_bytes(n, per_sample, constant) / 2**30))
    return '\n'.join(lines)


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
    device = torch.device(args.device or (
        'cuda' if torch.cuda.is_available() else 'cpu'))
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
                make_batch(args.batch + 1, size, length, True),
                args.batch + 1)
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
