# Copyright (c) mmris contributors. All rights reserved.
"""Export configs to ONNX with random weights and compare onnxruntime with
PyTorch eager on the CPU: export time, max |difference| of the outputs and
batch-1 latency, the two timed in turns (interleaved) with the same number
of threads on both sides.

Example (the four paper configs):
    python tools/analysis_tools/benchmark_onnx.py \
        configs/etris/etris_vit-b16_refcoco.py \
        configs/barleria/barleria_vit-b16_refcoco.py \
        configs/detris/detris-b_refcoco.py configs/detris/detris-l_refcoco.py \
        --threads 1 --iters 10 --work-dir work_dirs/onnx_bench

What is timed on both sides is the exported graph: normalisation, network,
sigmoid and upsampling of one letterboxed image and one sentence (PyTorch:
``RISOnnxModel`` under ``torch.inference_mode``; onnxruntime: the exported
file with all graph optimisations, sequential execution). The tokenizer and
the letterbox / inverse warp (numpy + OpenCV, the same on both sides) are
not timed.
"""
import argparse
import json
import os
import os.path as osp
import platform
import runpy
import statistics
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
import numpy as np  # noqa: E402
import torch

import mmris  # noqa: F401
from mmris.apis import init_model
from mmris.deployment import (INPUT_NAMES, RISOnnxModel, example_inputs,
                              export_onnx, max_relative_error, quantize_int8)


def parse_args():
    parser = argparse.ArgumentParser(
        description='ONNX export + onnxruntime vs PyTorch eager on the CPU')
    parser.add_argument('configs', nargs='+', help='config files')
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='threads of both PyTorch (torch.set_num_threads) and '
        'onnxruntime (intra-op); default: the CPU thread rule of every '
        'tool (OMP_NUM_THREADS, else the idle cores). Give it for '
        'timings to compare')
    parser.add_argument(
        '--iters', type=int, default=10, help='timed runs per side')
    parser.add_argument(
        '--warmup', type=int, default=2, help='untimed runs per side')
    parser.add_argument(
        '--work-dir',
        default='work_dirs/onnx_bench',
        help='where the .onnx files are written')
    parser.add_argument(
        '--keep', action='store_true', help='keep the .onnx files')
    parser.add_argument(
        '--int8',
        action='store_true',
        help='also time the int8 dynamic quantization (quantize_int8) of '
        'each export, in the same interleaved loop')
    parser.add_argument('--out', default=None, help='write the rows as JSON')
    return parser.parse_args()


def bench_config(config: str, args) -> dict:
    import onnxruntime as ort
    name = osp.splitext(osp.basename(config))[0]
    torch.manual_seed(0)
    model = init_model(config, None, device='cpu')
    wrapper = RISOnnxModel(model).eval()
    out = osp.join(args.work_dir, name, 'model.onnx')
    start = time.perf_counter()
    meta = export_onnx(model, out, config_name=osp.basename(config))
    export_s = time.perf_counter() - start
    size = sum(
        osp.getsize(osp.join(osp.dirname(out), f))
        for f in os.listdir(osp.dirname(out)) if f.startswith('model.onnx'))

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(
        out, sess_options=options, providers=['CPUExecutionProvider'])
    sessions = dict(ort=sess)
    if args.int8:
        int8_file = osp.join(osp.dirname(out), 'model_int8.onnx')
        quantize_int8(out, int8_file)
        sessions['int8'] = ort.InferenceSession(
            int8_file,
            sess_options=options,
            providers=['CPUExecutionProvider'])

    feeds = example_inputs(
        meta, ['the man on the left in a red shirt'], seed=1)
    tensors = [torch.from_numpy(feeds[k]) for k in INPUT_NAMES]

    def run_torch():
        with torch.inference_mode():
            return [o.numpy() for o in wrapper(*tensors)]

    sides = dict(torch=run_torch)
    for name, session in sessions.items():
        sides[name] = (lambda s: lambda: s.run(None, feeds))(session)
    ref = run_torch()
    errors = {}
    for name in sessions:
        got = sides[name]()
        for key, r, g in zip(meta['outputs'], ref, got):
            label = key if name == 'ort' else f'{key} ({name})'
            errors[label] = (float(np.abs(r - g).max()),
                             max_relative_error(r, g))
    for _ in range(args.warmup):
        for fn in sides.values():
            fn()
    times = {name: [] for name in sides}
    for _ in range(args.iters):  # interleaved: the same load on all sides
        for side, fn in sides.items():
            t0 = time.perf_counter()
            fn()
            times[side].append((time.perf_counter() - t0) * 1000)
    row = dict(
        config=config,
        export_s=round(export_s, 1),
        onnx_mib=round(size / 2**20, 1),
        opset=meta['opset'],
        errors=errors,
        times_ms=times,
        torch_median_ms=statistics.median(times['torch']),
        ort_median_ms=statistics.median(times['ort']))
    row['speedup'] = row['torch_median_ms'] / row['ort_median_ms']
    if args.int8:
        row['int8_median_ms'] = statistics.median(times['int8'])
        row['int8_speedup'] = row['torch_median_ms'] / row['int8_median_ms']
    if not args.keep:
        for f in os.listdir(osp.dirname(out)):
            os.remove(osp.join(osp.dirname(out), f))
        os.rmdir(osp.dirname(out))
    return row


def main():
    args = parse_args()
    threads = TOOL_ENV['setup_cpu_threads']('benchmark_onnx.py')
    if args.threads is None:
        args.threads = threads
    torch.set_num_threads(args.threads)
    import onnxruntime as ort
    print(f'[benchmark_onnx] torch {torch.__version__}, onnxruntime '
          f'{ort.__version__}, {args.threads} thread(s) on both sides, '
          f'{os.cpu_count()} CPU(s), {platform.processor() or "cpu"}, '
          f'batch 1, {args.iters} interleaved runs per side after '
          f'{args.warmup} warm-up')
    rows = []
    for config in args.configs:
        row = bench_config(config, args)
        rows.append(row)
        err = ', '.join(f'{k} {a:.1e} (rel {r:.1e})'
                        for k, (a, r) in row['errors'].items())
        print(
            f'[benchmark_onnx] {config}: export {row["export_s"]} s, '
            f'{row["onnx_mib"]} MiB; max |diff| {err}; PyTorch '
            f'{row["torch_median_ms"]:.0f} ms, onnxruntime '
            f'{row["ort_median_ms"]:.0f} ms (median), speed-up '
            f'{row["speedup"]:.2f}x' +
            (f'; int8 {row["int8_median_ms"]:.0f} ms, speed-up '
             f'{row["int8_speedup"]:.2f}x' if args.int8 else ''),
            flush=True)
    int8_head = (' int8 (ms) | int8 speed-up | int8 max abs diff (mask_prob) |'
                 if args.int8 else '')
    print('\n| config | export (s) | .onnx (MiB) | max abs diff (mask_prob) '
          '| max rel diff (logits) | PyTorch eager (ms) | onnxruntime (ms) '
          '| speed-up |' + int8_head)
    print('|---|---:|---:|---:|---:|---:|---:|---:|' +
          ('---:|---:|---:|' if args.int8 else ''))
    for row in rows:
        int8_cols = (f' {row["int8_median_ms"]:.0f} | '
                     f'{row["int8_speedup"]:.2f}x | '
                     f'{row["errors"]["mask_prob (int8)"][0]:.1e} |'
                     if args.int8 else '')
        print(f'| {osp.basename(row["config"])} | {row["export_s"]} | '
              f'{row["onnx_mib"]} | {row["errors"]["mask_prob"][0]:.1e} | '
              f'{row["errors"]["mask_logits"][1]:.1e} | '
              f'{row["torch_median_ms"]:.0f} | {row["ort_median_ms"]:.0f} | '
              f'{row["speedup"]:.2f}x |' + int8_cols)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(rows, f, indent=1)


if __name__ == '__main__':
    main()
