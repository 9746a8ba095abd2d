# Copyright (c) mmris contributors. All rights reserved.
"""Benchmark mmris against the official models in one call; JSON + table.

For each model (default: ETRIS ViT-B/16 416, DETRIS-B 448, DETRIS-L 448,
with random weights, fed random images and token ids of the config's input
size and text length as ``benchmark.py`` does) it times

* mmris: training steps at each ``--train-batches`` size (bf16,
  ``AutocastOptimWrapper`` as ``tools/train.py --amp``; the whole optimizer
  step as the runner runs it) and test-mode forward passes at each
  ``--infer-batches`` size (bf16 autocast);
* the official model, when ``--official-root`` holds its clone, in the same
  run on the same inputs (the mmris data preprocessor's image tensor, token
  ids and mask, as ``compare_official.py``): training steps as the official
  train.py / engine/engine.py of kkakkkka/ETRIS, jiaqihuang01/DETRIS and
  NastrondAd/BarLeRIa run them (fp16 autocast + GradScaler,
  ``torch.backends.cudnn.enabled = False``, Adam over the trainable
  parameters) and inference (bf16 autocast, cuDNN off).

Each model is built once per side and reused for its runs (inference
first, so that its peak holds no optimizer state), then freed. Per run: the
median ms/step (CUDA events on GPU, wall clock on CPU) over ``--iters``
steps after ``--warmup`` untimed ones, img/s, peak GiB
(``torch.cuda.max_memory_allocated`` after a reset; n/a on CPU), the counted
TFLOP of one step (forward + backward in training;
``mmris.utils.memory_count.flop_counter``, the same counter on both sides),
the achieved TFLOP/s and its fraction of ``--peak-tflops``. A run that runs
out of memory or fails is recorded with its error and the suite goes on;
runs left when ``--time-budget`` is spent are recorded as skipped.
``benchmark_suite.json`` (all runs, the environment, the settings) and
``benchmark_suite.md`` (mmris and official side by side, with the speed-up
official ms / mmris ms) are written to ``--out-dir`` after every run, and
the table is printed at the end. The exit status is 1 when a run failed
(an error other than running out of memory), else 0.

The official models are imported only from the clones given at run time
(builder modules in ``mmris/benchmark/official/``, whose stand-ins apply:
e.g. the official DETRIS runs its plain-PyTorch attention, not xFormers);
nothing of them is part of mmris. The suite itself is
:mod:`mmris.benchmark.suite`; this script is its command line.

Example:
    git clone https://github.com/kkakkkka/ETRIS /path/clones/ETRIS
    git clone https://github.com/jiaqihuang01/DETRIS /path/clones/DETRIS
    bash tools/analysis_tools/benchmark_suite.sh --official-root /path/clones
    # tiny CPU smoke run (what the tests run):
    python tools/analysis_tools/benchmark_suite.py --device cpu \
        --models etris-vit-b16=configs/quickstart/etris-tiny_synthetic.py \
        --train-batches 2 --infer-batches 2 --warmup 0 --iters 1
"""
import argparse
import functools
import os.path as osp
import runpy
import sys
from typing import List, Optional, Tuple


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
from mmengine.config import DictAction  # noqa: E402

import mmris  # noqa: F401
from mmris.benchmark import BF16_PEAK_TFLOPS
from mmris.benchmark.official import method_module
from mmris.benchmark.suite import (DEFAULT_MODELS, MODEL_SPECS,
                                   OFFICIAL_CLONES, MmrisSide, ModelSpec,
                                   OfficialSide, Suite, environment,
                                   load_config, markdown, official_clones)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

#: The counted limit of an H100 SXM / H200 (see mmris.benchmark.timing).
H100_H200_PEAK_TFLOPS = BF16_PEAK_TFLOPS
PEAK_SOURCE = ('sustained bf16 dense GEMM rate of an H100 SXM / H200, about '
               '790 TFLOP/s (datasheet: 989 dense, 1,979 with sparsity)')


def parse_model(text: str) -> Tuple[str, ModelSpec]:
    """``NAME`` or ``NAME=CONFIG`` (the model's official side with another
    mmris config, e.g. a tiny one) -> (name, spec)."""
    name, _, config = text.partition('=')
    if name not in MODEL_SPECS:
        raise argparse.ArgumentTypeError(
            f'unknown model {name!r}; choose from {sorted(MODEL_SPECS)}')
    spec = MODEL_SPECS[name]
    if config:
        spec = ModelSpec(f'{osp.basename(config)} (official: {spec.title})',
                         config, spec.method, spec.yaml)
    return name, spec


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--models',
        nargs='+',
        type=parse_model,
        default=[parse_model(m) for m in DEFAULT_MODELS],
        metavar='NAME[=CONFIG]',
        help=f'models to run, from {sorted(MODEL_SPECS)}; NAME=CONFIG runs '
        'another mmris config (e.g. a tiny one) against NAME\'s official '
        f'model (default: {" ".join(DEFAULT_MODELS)})')
    parser.add_argument(
        '--official-root',
        default=None,
        metavar='DIR',
        help='folder holding clones of the official repositories, named as '
        'on GitHub: ETRIS, BarLeRIa, DETRIS, or kkakkkka/ETRIS, '
        'NastrondAd/BarLeRIa, jiaqihuang01/DETRIS (case ignored); without it '
        'only mmris runs')
    parser.add_argument(
        '--train-batches',
        nargs='*',
        type=int,
        default=[16, 32],
        metavar='N',
        help='batch sizes of the training runs (default: 16 32)')
    parser.add_argument(
        '--infer-batches',
        nargs='*',
        type=int,
        default=[32],
        metavar='N',
        help='batch sizes of the inference runs (default: 32)')
    parser.add_argument(
        '--iters',
        type=int,
        default=10,
        help='timed steps per run; the median is reported (default: 10)')
    parser.add_argument(
        '--warmup',
        type=int,
        default=3,
        help='untimed steps per run before timing, after the counted step '
        '(default: 3)')
    parser.add_argument(
        '--device',
        default=None,
        help="torch device, e.g. 'cpu' or 'cuda:0' (default: cuda when "
        'available, else cpu)')
    parser.add_argument(
        '--peak-tflops',
        type=float,
        default=None,
        help='peak rate for the %% of peak column (default on CUDA: '
        f'{H100_H200_PEAK_TFLOPS:g}, the sustained bf16 dense GEMM rate of '
        'an H100 SXM / H200; on CPU: none)')
    parser.add_argument(
        '--time-budget',
        type=float,
        default=420.0,
        metavar='S',
        help='seconds after which the remaining runs are skipped (recorded '
        'as skipped); 0: no limit (default: 420, so that the default suite '
        'ends well within 8 minutes)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of every mmris config, key=value pairs')
    parser.add_argument(
        '--out-dir',
        default=osp.join('work_dirs', 'benchmark_suite'),
        help='where benchmark_suite.json and benchmark_suite.md are written '
        '(default: work_dirs/benchmark_suite)')
    args = parser.parse_args(argv)
    batches = args.train_batches + args.infer_batches
    if args.iters < 1 or args.warmup < 0 or any(b < 1 for b in batches):
        parser.error('--iters must be >= 1, --warmup >= 0 and every batch '
                     f'size >= 1; got --iters {args.iters}, --warmup '
                     f'{args.warmup}, batches {batches}')
    if args.official_root and not osp.isdir(args.official_root):
        parser.error(f'--official-root {args.official_root!r} is not a '
                     'folder')
    return args


def mmris_side(spec: ModelSpec, cfg_options: Optional[dict],
               device: torch.device) -> MmrisSide:
    """Build the mmris side of ``spec``."""
    return MmrisSide(load_config(spec.config, cfg_options, ROOT), device)


def official_side(spec: ModelSpec, repo: str, cfg_options: Optional[dict],
                  device: torch.device) -> OfficialSide:
    """Build the official side of ``spec`` from the clone ``repo``."""
    return OfficialSide(
        load_config(spec.config, cfg_options, ROOT), spec, repo, device,
        method_module)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    TOOL_ENV['setup_cpu_threads']('benchmark_suite.py')
    device = torch.device(
        args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    cuda = device.type == 'cuda'
    peak = args.peak_tflops
    peak_source = 'given by --peak-tflops' if peak else None
    if peak is None and cuda:
        peak, peak_source = H100_H200_PEAK_TFLOPS, PEAK_SOURCE
        name = torch.cuda.get_device_name(device)
        if 'H100' not in name and 'H200' not in name:
            print(f'warning: {name} is not an H100/H200; % of peak uses '
                  f'{peak:g} TFLOP/s unless --peak-tflops is given')
    models = dict(args.models)
    clones = official_clones(args.official_root,
                             [s.method for s in models.values()], print)
    suite = Suite(
        device,
        dict(
            models={
                n: vars(s)
                for n, s in models.items()
            },
            train_batches=args.train_batches,
            infer_batches=args.infer_batches,
            iters=args.iters,
            warmup=args.warmup,
            peak_tflops=peak,
            peak_source=peak_source,
            time_budget_s=args.time_budget,
            official_root=args.official_root,
            official_clones=clones,
            cfg_options=args.cfg_options), environment(device, ROOT),
        args.out_dir)
    # Inference first: its peak memory then holds no optimizer state.
    plan = ([('infer', b)
             for b in args.infer_batches] + [('train', b)
                                             for b in args.train_batches])
    for name, spec in models.items():
        suite.run_side(
            name, 'mmris',
            functools.partial(mmris_side, spec, args.cfg_options, device),
            plan, dict(config=spec.config))
        if not args.official_root:
            continue
        clone_name = OFFICIAL_CLONES[spec.method][0]
        repo = clones[clone_name]
        info = dict(repo=repo, yaml=spec.yaml)
        if repo is None:
            for mode, batch in plan:
                suite.record(
                    name,
                    'official',
                    mode,
                    batch,
                    'missing',
                    **info,
                    error=f'no clone {clone_name} in {args.official_root} '
                    f'(https://github.com/{OFFICIAL_CLONES[spec.method][1]})')
            continue
        suite.run_side(
            name, 'official',
            functools.partial(official_side, spec, repo, args.cfg_options,
                              device), plan, info)
    json_path, md_path = suite.write()
    print('\n' + markdown(suite.report()) + '\n')
    statuses = [r['status'] for r in suite.runs]
    suite.log('done: ' + ', '.join(f'{statuses.count(s)} {s}'
                                   for s in dict.fromkeys(statuses)) +
              f'; wrote {json_path} and {md_path}')
    return 1 if 'failed' in statuses else 0


if __name__ == '__main__':
    sys.exit(main())
