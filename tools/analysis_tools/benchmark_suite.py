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
(builder modules in ``tools/analysis_tools/official/``, whose stand-ins
apply: e.g. the official DETRIS runs its plain-PyTorch attention, not
xFormers); nothing of them is part of mmris.

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
import contextlib
import datetime
import functools
import gc
import json
import os
import os.path as osp
import runpy
import platform
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple


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
import torch.nn as nn
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import mmris  # noqa: F401
from mmris.utils.memory_count import count_train_step

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from benchmark import (BF16_PEAK_TFLOPS, build_train_wrapper,  # noqa: E402
                       count_flops, counted_train_step, infer_step,
                       input_spec, make_batch, official_inputs, time_steps)
from official import method_module  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
GiB = 2**30

#: The counted limit of an H100 SXM / H200 (see benchmark.py).
H100_H200_PEAK_TFLOPS = BF16_PEAK_TFLOPS
PEAK_SOURCE = ('sustained bf16 dense GEMM rate of an H100 SXM / H200, about '
               '790 TFLOP/s (datasheet: 989 dense, 1,979 with sparsity)')


@dataclass(frozen=True)
class ModelSpec:
    """A model of the suite.

    Attributes:
        title (str): Name in the table.
        config (str): mmris config, relative to the repository root.
        method (str): Official method (builder module in ``official/``).
        yaml (str, optional): Official config file inside the clone; None
            uses the builder's ``DEFAULT_YAML``.
    """
    title: str
    config: str
    method: str
    yaml: Optional[str] = None


MODEL_SPECS: Dict[str, ModelSpec] = {
    'etris-vit-b16':
    ModelSpec('ETRIS ViT-B/16 416', 'configs/etris/etris_vit-b16_refcoco.py',
              'etris', 'config/refcoco/bridge_v16.yaml'),
    'barleria-vit-b16':
    ModelSpec('BarLeRIa ViT-B/16 416',
              'configs/barleria/barleria_vit-b16_refcoco.py', 'barleria',
              'config/refcoco/barleria_v16.yaml'),
    'detris-b':
    ModelSpec('DETRIS-B 448', 'configs/detris/detris-b_refcoco.py', 'detris',
              'config/refcoco/DETRIS_base.yaml'),
    'detris-l':
    ModelSpec('DETRIS-L 448', 'configs/detris/detris-l_refcoco.py', 'detris',
              'config/refcoco/DETRIS_large.yaml'),
}
DEFAULT_MODELS = ('etris-vit-b16', 'detris-b', 'detris-l')

#: Folder name of each method's clone under ``--official-root`` (matched
#: ignoring case) and its GitHub repository.
OFFICIAL_CLONES = {
    'etris': ('ETRIS', 'kkakkkka/ETRIS'),
    'barleria': ('BarLeRIa', 'NastrondAd/BarLeRIa'),
    'detris': ('DETRIS', 'jiaqihuang01/DETRIS'),
}

PRECISION = {
    ('mmris', 'train'): 'bf16 autocast (AutocastOptimWrapper)',
    ('mmris', 'infer'): 'bf16 autocast',
    ('official', 'train'): 'fp16 autocast + GradScaler, cuDNN off',
    ('official', 'infer'): 'bf16 autocast, cuDNN off',
}

Plan = List[Tuple[str, int]]  # (mode, batch) of each run of a side
Prepared = Tuple[Callable[[], Any], Callable[[], int]]  # step, count FLOPs


def _subfolder(folder: str, name: str) -> Optional[str]:
    if not osp.isdir(folder):
        return None
    for entry in sorted(os.listdir(folder)):
        path = osp.join(folder, entry)
        if entry.lower() == name.lower() and osp.isdir(path):
            return path
    return None


def find_clone(root: str, method: str) -> Optional[str]:
    """The clone of ``method``'s repository in ``root``: the folder
    ``root/NAME`` or ``root/OWNER/NAME`` of its GitHub repository (e.g.
    ``ETRIS`` or ``kkakkkka/ETRIS``), names matched ignoring case; None when
    there is none."""
    name, github = OFFICIAL_CLONES[method]
    owner = _subfolder(root, github.split('/')[0])
    return _subfolder(root, name) or (owner and _subfolder(owner, name))


@contextlib.contextmanager
def _cudnn(enabled: bool, benchmark: bool) -> Iterator[None]:
    saved = torch.backends.cudnn.enabled, torch.backends.cudnn.benchmark
    torch.backends.cudnn.enabled = enabled
    torch.backends.cudnn.benchmark = benchmark
    try:
        yield
    finally:
        torch.backends.cudnn.enabled, torch.backends.cudnn.benchmark = saved


def load_config(config: str, cfg_options: Optional[dict]) -> Config:
    """``config`` (relative to the repository root or the working folder)
    with ``cfg_options`` merged."""
    path = config if osp.exists(config) else osp.join(ROOT, config)
    if not osp.isfile(path):
        raise FileNotFoundError(f'mmris config {config!r} not found')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    return cfg


class MmrisSide:
    """The mmris model of a config, its bf16 optimizer wrapper and steps."""
    side = 'mmris'

    def __init__(self, cfg: Config, device: torch.device):
        self.device = device
        self.size, self.length = input_spec(cfg)
        torch.manual_seed(0)
        self.model = MODELS.build(cfg.model).to(device)
        self.optim_wrapper = build_train_wrapper(self.model, cfg, 'bf16')
        self.cudnn = (True, bool(
            cfg.get('env_cfg', {}).get('cudnn_benchmark', False)))

    def _batch(self, batch: int, train: bool) -> dict:
        data = make_batch(batch, self.size, self.length, train)
        data['inputs'] = [x.to(self.device) for x in data['inputs']]
        return data

    def prepare(self, mode: str, batch: int) -> Prepared:
        """The step of a run and a function counting one step's FLOPs."""
        model, ow = self.model, self.optim_wrapper
        data = self._batch(batch, mode == 'train')
        model.train(mode == 'train')
        if mode == 'train':

            def count():
                counts = counted_train_step(model, ow, data, batch)
                return counts.forward_flops + counts.backward_flops

            return lambda: model.train_step(data, ow), count
        step = infer_step(model, self.device, torch.bfloat16)
        return lambda: step(data), lambda: count_flops(lambda: step(data))

    def reset(self) -> None:
        """Drop gradients a failed step may have left."""
        self.optim_wrapper.zero_grad()


class OfficialTrainStep:
    """One official training step: fp16 autocast forward with the loss,
    GradScaler backward and Adam update (as engine/engine.py ``train`` of
    the official repositories)."""

    def __init__(self, builder, model: nn.Module, optimizer, scaler,
                 inputs: Tuple[torch.Tensor, ...]):
        self.builder, self.model = builder, model
        self.optimizer, self.scaler = optimizer, scaler
        self.inputs = inputs

    def forward(self) -> torch.Tensor:
        img = self.inputs[0]
        with torch.autocast(img.device.type, dtype=torch.float16):
            return self.builder.loss(self.model, *self.inputs)

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def update(self) -> None:
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    def __call__(self) -> None:
        self.backward(self.forward())
        self.update()

    def count(self) -> int:
        counts = count_train_step(
            self.model,
            self.forward,
            self.backward,
            optimizer=self.optimizer,
            step=self.update,
            batch=self.inputs[0].shape[0])
        return counts.forward_flops + counts.backward_flops


class OfficialSide:
    """The official model of a clone and its steps, fed the mmris data
    preprocessor's tensors of the mmris config ``cfg``."""
    side = 'official'
    cudnn = (False, False)  # train.py: torch.backends.cudnn.enabled = False

    def __init__(self, cfg: Config, spec: ModelSpec, repo: str,
                 device: torch.device):
        self.device = device
        self.size, self.length = input_spec(cfg)
        self.builder = method_module(spec.method)
        yaml_file = spec.yaml or self.builder.DEFAULT_YAML
        torch.manual_seed(0)
        model, ocfg = self.builder.build(repo, yaml_file)
        got = (ocfg.get('input_size', self.size),
               ocfg.get('word_len', self.length))
        if tuple(int(v) for v in got) != (self.size, self.length):
            raise ValueError(
                f'{osp.join(repo, yaml_file)}: input_size/word_len {got} '
                f'differ from the mmris config {spec.config}: '
                f'{(self.size, self.length)}')
        self.model = model.to(device)
        self.preprocessor = MODELS.build(cfg.model.data_preprocessor).to(
            device)
        self.optimizer = torch.optim.Adam(
            [p for p in self.model.parameters() if p.requires_grad],
            lr=float(ocfg.get('base_lr', 1e-4)),
            weight_decay=float(ocfg.get('weight_decay', 0.0)))
        self.scaler = torch.amp.GradScaler(device.type)

    def _tensors(self, batch: int) -> Tuple[torch.Tensor, ...]:
        return official_inputs(
            self.preprocessor(
                make_batch(batch, self.size, self.length, True), True))

    def prepare(self, mode: str, batch: int) -> Prepared:
        """The step of a run and a function counting one step's FLOPs."""
        img, word, mask = self._tensors(batch)
        self.model.train(mode == 'train')
        if mode == 'train':
            step = OfficialTrainStep(self.builder, self.model, self.optimizer,
                                     self.scaler, (img, word, mask))
            return step, step.count

        def infer():
            with torch.no_grad(), torch.autocast(
                    self.device.type, dtype=torch.bfloat16):
                return self.builder.logits(self.model, img, word)

        return infer, lambda: count_flops(infer)

    def reset(self) -> None:
        """Drop gradients a failed step may have left."""
        self.optimizer.zero_grad(set_to_none=True)


def _error_text(exc: BaseException) -> str:
    text = ''.join(traceback.format_exception_only(type(exc), exc)).strip()
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        text += f' (at {frames[-1].filename}:{frames[-1].lineno})'
    return text[-2000:]


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and 'out of memory' in str(exc).lower())


def free_memory(device: torch.device) -> None:
    """Collect garbage and hand cached CUDA blocks back."""
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.empty_cache()


class Suite:
    """Runs the sides of the models in order and keeps their records."""

    def __init__(self, args: argparse.Namespace, device: torch.device,
                 settings: dict):
        self.args, self.device, self.settings = args, device, settings
        self.peak = settings['peak_tflops']
        self.environment = environment(device)
        self.start = time.perf_counter()
        self.runs: List[dict] = []

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def log(self, message: str) -> None:
        print(f'[{self.elapsed():7.1f} s] {message}', flush=True)

    def _over_budget(self) -> bool:
        budget = self.args.time_budget
        return bool(budget) and self.elapsed() > budget

    def record(self,
               name: str,
               side: str,
               mode: str,
               batch: int,
               status: str,
               log: bool = True,
               **values) -> dict:
        """Keep (and unless ``log`` is False, print) the record of a run."""
        run = dict(
            model=name,
            side=side,
            mode=mode,
            batch=batch,
            precision=PRECISION[side, mode],
            status=status,
            error=None)
        run.update(values)
        self.runs.append(run)
        if status != 'ok' and log:
            self.log(f'{name} {side} {mode} b{batch}: {status.upper()}'
                     + (f': {run["error"]}' if run['error'] else ''))
        return run

    def _measure(self, runner, mode: str, batch: int) -> dict:
        step, count = runner.prepare(mode, batch)
        cuda = self.device.type == 'cuda'
        with _cudnn(*runner.cudnn):
            flops = count()
            times = time_steps(step, self.args.iters, self.args.warmup,
                               self.device)
        del step, count
        ms = statistics.median(times)
        tflops = flops / (ms / 1000) / 1e12
        return dict(
            ms_per_step=ms,
            ms_min=min(times),
            ms_max=max(times),
            iters=len(times),
            img_per_s=batch / (ms / 1000),
            peak_gib=torch.cuda.max_memory_allocated(self.device) /
            GiB if cuda else None,
            tflop_per_step=flops / 1e12,
            tflops=tflops,
            peak_fraction=tflops / self.peak if self.peak else None)

    def run_side(self, name: str, side: str, build: Callable[[], Any],
                 plan: Plan, info: dict) -> None:
        """Build one side of a model once, run its ``plan``, free it.

        Args:
            name (str): Model name.
            side (str): ``'mmris'`` or ``'official'``.
            build (Callable): Returns the side (``MmrisSide`` /
                ``OfficialSide``).
            plan (list[tuple[str, int]]): ``(mode, batch)`` of each run.
            info (dict): Extra fields of every record (config, repo...).
        """
        skipped = f'time budget of {self.args.time_budget:g} s spent before ' \
            'the run'
        if self._over_budget():
            for mode, batch in plan:
                self.record(
                    name, side, mode, batch, 'skipped', **info, error=skipped)
            self.write()
            return
        self.log(f'{name} {side}: building')
        try:
            runner = build()
        except Exception as exc:  # recorded; the suite goes on
            error = 'building the model failed: ' + _error_text(exc)
            status = 'oom' if _is_oom(exc) else 'failed'
            self.log(f'{name} {side}: {status.upper()}: {error}')
            for mode, batch in plan:
                self.record(
                    name, side, mode, batch, status, log=False, **info,
                    error=error)
            free_memory(self.device)
            self.write()
            return
        for mode, batch in plan:
            if self._over_budget():
                self.record(
                    name, side, mode, batch, 'skipped', **info, error=skipped)
                continue
            try:
                values = self._measure(runner, mode, batch)
            except Exception as exc:  # recorded; the suite goes on
                self.record(
                    name, side, mode, batch,
                    'oom' if _is_oom(exc) else 'failed', **info,
                    error=_error_text(exc))
                runner.reset()
            else:
                run = self.record(
                    name, side, mode, batch, 'ok', **info, **values)
                self.log(f'{name} {side} {mode} b{batch}: {_summary(run)}')
            free_memory(self.device)
            self.write()
        del runner
        free_memory(self.device)

    def report(self) -> dict:
        """Environment, settings, runs and comparisons so far."""
        return dict(
            environment=self.environment,
            settings=self.settings,
            elapsed_s=self.elapsed(),
            runs=self.runs,
            comparisons=comparisons(self.runs))

    def write(self) -> Tuple[str, str]:
        """Write the JSON and the markdown table to ``--out-dir``."""
        os.makedirs(self.args.out_dir, exist_ok=True)
        report = self.report()
        json_path = osp.join(self.args.out_dir, 'benchmark_suite.json')
        md_path = osp.join(self.args.out_dir, 'benchmark_suite.md')
        with open(json_path, 'w') as f:
            json.dump(report, f, indent=2)
        with open(md_path, 'w') as f:
            f.write(markdown(report) + '\n')
        return json_path, md_path


def _summary(run: dict) -> str:
    peak = (f'{run["peak_gib"]:.2f} GiB'
            if run['peak_gib'] is not None else 'n/a')
    share = (f' ({100 * run["peak_fraction"]:.1f} %)'
             if run['peak_fraction'] is not None else '')
    return (f'{run["ms_per_step"]:.2f} ms/step, {run["img_per_s"]:.1f} img/s,'
            f' peak {peak}, {run["tflop_per_step"]:.4g} TFLOP/step, '
            f'{run["tflops"]:.3g} TFLOP/s{share}')


def comparisons(runs: List[dict]) -> List[dict]:
    """mmris vs official per (model, mode, batch): ``speedup`` = official
    ms / mmris ms (= mmris img/s / official img/s) and ``memory_ratio`` =
    official peak / mmris peak; None where a side has no measurement."""
    out = []
    for run in runs:
        if run['side'] != 'mmris':
            continue
        other = next((r for r in runs if r['side'] == 'official' and all(
            r[k] == run[k] for k in ('model', 'mode', 'batch'))), None)
        ok = run['status'] == 'ok' and bool(other) and (
            other['status'] == 'ok')
        mem = ok and run['peak_gib'] and other['peak_gib'] is not None
        out.append(
            dict(
                model=run['model'],
                mode=run['mode'],
                batch=run['batch'],
                speedup=other['ms_per_step'] /
                run['ms_per_step'] if ok else None,
                memory_ratio=other['peak_gib'] /
                run['peak_gib'] if mem else None))
    return out


def _cell(run: Optional[dict], key: str, fmt: str) -> str:
    if run is None:
        return '-'
    if run['status'] != 'ok':
        return 'OOM' if run['status'] == 'oom' else run['status']
    value = run[key]
    return 'n/a' if value is None else fmt.format(value)


def _rate(run: Optional[dict]) -> str:
    text = _cell(run, 'tflops', '{:.3g}')
    if run and run['status'] == 'ok' and run['peak_fraction'] is not None:
        text += f' ({100 * run["peak_fraction"]:.1f} %)'
    return text


def markdown(report: dict) -> str:
    """The markdown table of a report: one row per (model, mode, batch),
    mmris and official side by side, then the notes and the errors."""
    env, settings, runs = (report['environment'], report['settings'],
                           report['runs'])
    lines = [
        f'## Benchmark suite: {env["device"]}, {env["date"]}, mmris '
        f'{env["git_commit"]}', '',
        f'torch {env["torch"]}, CUDA {env["cuda"]}; median of '
        f'{settings["iters"]} steps after {settings["warmup"]} warm-up '
        f'steps; random weights and inputs.', '',
        '| model | run | img/s mmris | img/s official | ms/step mmris | '
        'ms/step official | speed-up | peak GiB mmris | peak GiB official '
        '| TFLOP/step mmris | TFLOP/step official | TFLOP/s mmris (% peak) '
        '| TFLOP/s official (% peak) |',
        '|---|---|' + '---:|' * 11,
    ]
    titles = {
        name: spec['title']
        for name, spec in settings['models'].items()
    }
    for comp in report['comparisons']:
        key = (comp['model'], comp['mode'], comp['batch'])

        def find(side):
            return next((r for r in runs if r['side'] == side and (
                r['model'], r['mode'], r['batch']) == key), None)

        ours, theirs = find('mmris'), find('official')
        speedup = ('-' if comp['speedup'] is None else
                   f'{comp["speedup"]:.2f}x')
        lines.append('| ' + ' | '.join([
            titles.get(comp['model'], comp['model']),
            f'{comp["mode"]} b{comp["batch"]}',
            _cell(ours, 'img_per_s', '{:.1f}'),
            _cell(theirs, 'img_per_s', '{:.1f}'),
            _cell(ours, 'ms_per_step', '{:.2f}'),
            _cell(theirs, 'ms_per_step', '{:.2f}'),
            speedup,
            _cell(ours, 'peak_gib', '{:.2f}'),
            _cell(theirs, 'peak_gib', '{:.2f}'),
            _cell(ours, 'tflop_per_step', '{:.4g}'),
            _cell(theirs, 'tflop_per_step', '{:.4g}'),
            _rate(ours),
            _rate(theirs),
        ]) + ' |')
    peak = settings['peak_tflops']
    lines += [
        '',
        '- precision: ' + '; '.join(f'{side} {mode}: {text}'
                                    for (side, mode), text in
                                    PRECISION.items()),
        '- speed-up = official ms/step / mmris ms/step (= mmris img/s / '
        'official img/s); `-`: a side not run (no clone) or not measured',
        '- % peak: ' + (f'of {peak:g} TFLOP/s ({settings["peak_source"]})'
                        if peak else 'n/a (no --peak-tflops on CPU)'),
        '- official clones: ' + (', '.join(
            f'{name} {path or "missing"}'
            for name, path in settings['official_clones'].items())
                                 or 'not given (--official-root)'),
    ]
    errors = [r for r in runs if r['error']]
    if errors:
        lines += ['', 'Runs not measured:', '']
        lines += [
            f'- {r["model"]} {r["side"]} {r["mode"]} b{r["batch"]} '
            f'({r["status"]}): {r["error"]}' for r in errors
        ]
    return '\n'.join(lines)


def _git_commit() -> Optional[str]:
    try:
        sha = subprocess.run(['git', '-C', ROOT, 'rev-parse', 'HEAD'],
                             capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(
            ['git', '-C', ROOT, 'status', '--porcelain', '-uno'],
            capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (sha[:12] + ('+modified' if dirty else '')) if sha else None


def environment(device: torch.device) -> dict:
    """Versions, device and date of the run."""
    import mmengine
    import mmseg
    cuda = device.type == 'cuda'
    return dict(
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec='seconds'),
        git_commit=_git_commit(),
        python=platform.python_version(),
        torch=torch.__version__,
        cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version() if cuda else None,
        mmengine=mmengine.__version__,
        mmseg=mmseg.__version__,
        device=torch.cuda.get_device_name(device) if cuda else 'cpu',
        cpu_threads=torch.get_num_threads())


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
    return MmrisSide(load_config(spec.config, cfg_options), device)


def official_side(spec: ModelSpec, repo: str, cfg_options: Optional[dict],
                  device: torch.device) -> OfficialSide:
    """Build the official side of ``spec`` from the clone ``repo``."""
    return OfficialSide(
        load_config(spec.config, cfg_options), spec, repo, device)


def official_clones(root: Optional[str], methods: List[str],
                    log: Callable[[str], None]) -> Dict[str, Optional[str]]:
    """Clone name -> path (None: missing) for ``methods`` in ``root``,
    reported through ``log``; empty when no root is given."""
    if not root:
        log('no --official-root: only the mmris models run')
        return {}
    found = {}
    for method in dict.fromkeys(methods):
        name, github = OFFICIAL_CLONES[method]
        path = find_clone(root, method)
        found[name] = path
        log(f'official {name}: ' +
            (f'found {path}' if path else
             f'MISSING (no folder {name} or {github} in {root}; clone '
             f'https://github.com/{github} there)'))
    return found


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    TOOL_ENV['setup_cpu_threads']('benchmark_suite.py')
    device = torch.device(args.device or (
        'cuda' if torch.cuda.is_available() else 'cpu'))
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
        args, device,
        dict(
            models={n: vars(s)
                    for n, s in models.items()},
            train_batches=args.train_batches,
            infer_batches=args.infer_batches,
            iters=args.iters,
            warmup=args.warmup,
            peak_tflops=peak,
            peak_source=peak_source,
            time_budget_s=args.time_budget,
            official_root=args.official_root,
            official_clones=clones,
            cfg_options=args.cfg_options))
    # Inference first: its peak memory then holds no optimizer state.
    plan = ([('infer', b) for b in args.infer_batches] +
            [('train', b) for b in args.train_batches])
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
                    name, 'official', mode, batch, 'missing', **info,
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
