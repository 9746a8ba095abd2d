# Copyright (c) mmris contributors. All rights reserved.
"""Evaluate a checkpoint on every evaluation split of a dataset and print
the paper-style table (mIoU, oIoU, Pr@50..90 per split) in markdown, with
a JSON copy for scripts.

Splits: refcoco / refcoco+ val, testA, testB; refcocog_umd val, test;
refcocog_google val; grefcoco val, testA, testB (generalized RIS: gIoU, cIoU,
N-acc, T-acc, Pr@0.7..0.9 as ReLA). The dataset defaults to the config's
test dataset. Each split is scored by the config's test evaluator
(``RISMetric`` / ``GRISMetric`` with its options, e.g.
``--cfg-options test_evaluator.resolution=rela`` for ReLA's 480x480
protocol); the protocol is printed above the table and saved in the JSON.

Example:
    python tools/analysis_tools/benchmark_table.py \
        configs/etris/etris_vit-b16_refcoco.py etris_vit-b16_refcoco.pth \
        --out etris_vit-b16_refcoco.json
"""
import argparse
import copy
import json
import os.path as osp
import runpy
import sys
import time
from collections import OrderedDict
from typing import Dict, Optional, Sequence


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
from mmengine.dataset import pseudo_collate
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmengine.utils import ProgressBar
from mmseg.registry import DATASETS, METRICS

import mmris  # noqa: F401  (compat + registries first)
from mmris.apis import init_model
from mmris.checkpoint import unsafe_checkpoint_loading
from mmris.evaluation.metrics.gris_metric import GRIS_METRIC_NAMES
from mmris.evaluation.metrics.ris_metric import PR_NAMES

#: name -> (REFER folder, split_by, evaluation splits in paper order)
BENCHMARKS = OrderedDict([
    ('refcoco', ('refcoco', 'unc', ('val', 'testA', 'testB'))),
    ('refcoco+', ('refcoco+', 'unc', ('val', 'testA', 'testB'))),
    ('refcocog_umd', ('refcocog', 'umd', ('val', 'test'))),
    ('refcocog_google', ('refcocog', 'google', ('val', ))),
    ('grefcoco', ('grefcoco', 'unc', ('val', 'testA', 'testB'))),
])
METRIC_KEYS = ('mIoU', 'oIoU') + PR_NAMES
#: Benchmarks scored with the generalized (gRefCOCO) metrics.
GENERALIZED = ('grefcoco', )


def parse_args():
    parser = argparse.ArgumentParser(
        description='Evaluate an RIS checkpoint on all splits of a dataset')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        'checkpoint', help="checkpoint file, or 'none' (random weights)")
    parser.add_argument(
        '--dataset',
        choices=list(BENCHMARKS),
        help='benchmark (default: the config test dataset)')
    parser.add_argument(
        '--splits', nargs='+', help='evaluate only these splits')
    parser.add_argument('--data-root', help='override the data root')
    parser.add_argument(
        '--batch-size',
        type=int,
        default=None,
        help="sentences per batch (default: the config's test batch size)")
    parser.add_argument(
        '--num-workers',
        type=int,
        default=0,
        help='data loading worker processes (default: 0, in-process)')
    parser.add_argument(
        '--device', default='cpu', help='e.g. cpu, cuda:0 (default: cpu)')
    parser.add_argument('--out', help='write the results as JSON here')
    parser.add_argument(
        '--print-json',
        action='store_true',
        help='also print the JSON after the table')
    parser.add_argument(
        '--no-progress', action='store_true', help='hide progress bars')
    parser.add_argument(
        '--unsafe-load',
        action='store_true',
        help='allow checkpoints with arbitrary pickled objects (runs code '
        'from the file; only for files you trust)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config (key=value)')
    return parser.parse_args()


def benchmark_name(dataset: str, split_by: str) -> str:
    """Benchmark key of a (REFER folder, split_by) pair."""
    for name, (folder, by, _) in BENCHMARKS.items():
        if folder == dataset and by == split_by:
            return name
    raise ValueError(f'No benchmark for dataset={dataset!r} '
                     f'split_by={split_by!r}; known: {list(BENCHMARKS)}')


def build_metric(cfg: Config, generalized: bool):
    """The config's test evaluator when it scores this kind of benchmark
    (``GRISMetric`` for gRefCOCO, ``RISMetric`` otherwise, options kept,
    ``out_file`` dropped), else that metric with its defaults."""
    kind = 'GRISMetric' if generalized else 'RISMetric'
    evaluator = cfg.get('test_evaluator')
    metric = (
        copy.deepcopy(dict(evaluator)) if isinstance(evaluator, dict)
        and evaluator.get('type') == kind else dict(type=kind))
    metric.pop('out_file', None)
    return METRICS.build(metric)


def protocol_of(metric) -> str:
    """The protocol name a metric prints with its table."""
    return getattr(metric, 'protocol', None) or metric.PROTOCOL


@torch.no_grad()
def evaluate_split(model,
                   dataset,
                   metric,
                   batch_size: int = 8,
                   num_workers: int = 0,
                   progress: bool = True) -> Dict[str, float]:
    """Score every sentence of ``dataset`` (test mode) with ``model``.

    Args:
        metric (RISMetric | GRISMetric): Scores the predictions (its
            records are reset first).

    Returns:
        dict: the metric's values (``mIoU``, ``oIoU``, ``Pr@50``..``Pr@90``;
        or ``gIoU``, ``cIoU``, ``N-acc``, ``T-acc``, ``Pr@0.7``..``Pr@0.9``)
        and ``sentences``.
    """
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=pseudo_collate)
    bar = ProgressBar(len(dataset), file=sys.stderr) if progress else None
    metric.results.clear()
    for data in loader:
        samples = model.test_step(data)
        metric.process(data, samples)
        if bar is not None:
            bar.update(len(samples))
    if bar is not None:
        sys.stderr.write('\n')
    metrics = dict(metric.compute_metrics(metric.results))
    metrics['sentences'] = len(metric.results)
    metric.results.clear()
    return metrics


def markdown_table(results: Dict[str, Dict[str, float]],
                   title: Optional[str] = None) -> str:
    """Markdown table: one row per split, columns sentences + metrics."""
    generalized = any('gIoU' in m for m in results.values())
    keys = GRIS_METRIC_NAMES if generalized else METRIC_KEYS
    header = ['split', 'sentences'] + list(keys)
    lines = []
    if title:
        lines += [title, '']
    lines.append('| ' + ' | '.join(header) + ' |')
    lines.append('|---|' + '---:|' * (len(header) - 1))
    for split, m in results.items():
        row = [split, str(m['sentences'])]
        row += [f'{m[k]:.2f}' for k in keys]
        lines.append('| ' + ' | '.join(row) + ' |')
    return '\n'.join(lines)


def run_benchmark(cfg: Config,
                  checkpoint: Optional[str],
                  dataset: Optional[str] = None,
                  splits: Optional[Sequence[str]] = None,
                  data_root: Optional[str] = None,
                  batch_size: Optional[int] = None,
                  num_workers: int = 0,
                  device: str = 'cpu',
                  progress: bool = True) -> dict:
    """Evaluate ``checkpoint`` on every split of one benchmark.

    Returns:
        dict: ``config``, ``checkpoint``, ``dataset``, ``split_by``,
        ``protocol`` and ``results`` (split -> metrics).
    """
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    base = copy.deepcopy(cfg.test_dataloader.dataset)
    if base.get('type') not in (None, 'RefCOCODataset', 'GRefCOCODataset'):
        raise ValueError('test_dataloader.dataset must be a RefCOCODataset '
                         f"or GRefCOCODataset, got {base.get('type')}")
    name = dataset or benchmark_name(
        base.get('dataset', 'refcoco'), base.get('split_by', 'unc'))
    folder, split_by, all_splits = BENCHMARKS[name]
    splits = list(splits or all_splits)
    unknown = set(splits) - set(all_splits)
    if unknown:
        raise ValueError(f'{name} has no evaluation split(s) '
                         f'{sorted(unknown)}; use {list(all_splits)}')
    model = init_model(cfg, checkpoint, device=device)
    batch_size = batch_size or cfg.test_dataloader.get('batch_size', 8)
    MMLogger.get_instance('mmris_benchmark_table', log_level='WARNING')
    metric = build_metric(cfg, name in GENERALIZED)

    results = OrderedDict()
    for split in splits:
        ds_cfg = copy.deepcopy(base)
        ds_cfg.update(
            type=('GRefCOCODataset'
                  if name in GENERALIZED else 'RefCOCODataset'),
            dataset=folder,
            split_by=split_by,
            split=split,
            mode='test')
        if data_root is not None:
            ds_cfg['data_root'] = data_root
        if progress:
            print(
                f'[{name} {split}] loading annotations ...',
                file=sys.stderr,
                flush=True)
        start = time.time()
        ds = DATASETS.build(ds_cfg)
        results[split] = evaluate_split(model, ds, metric, batch_size,
                                        num_workers, progress)
        results[split]['seconds'] = round(time.time() - start, 2)
    return OrderedDict(
        config=cfg.filename,
        checkpoint=checkpoint,
        dataset=name,
        split_by=split_by,
        protocol=protocol_of(metric),
        results=results)


def main():
    args = parse_args()
    checkpoint = None if args.checkpoint.lower() == 'none' else \
        args.checkpoint
    TOOL_ENV['check_checkpoint_path'](checkpoint, 'benchmark_table.py')
    TOOL_ENV['setup_cpu_threads']('benchmark_table.py')
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    with unsafe_checkpoint_loading(args.unsafe_load):
        report = run_benchmark(
            cfg,
            checkpoint,
            dataset=args.dataset,
            splits=args.splits,
            data_root=args.data_root,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            device=args.device,
            progress=not args.no_progress)
    title = (f"**{osp.splitext(osp.basename(args.config))[0]}** on "
             f"{report['dataset']} (checkpoint: {args.checkpoint}; protocol: "
             f"{report['protocol']})")
    print(markdown_table(report['results'], title))
    text = json.dumps(report, indent=2)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text + '\n')
    if args.print_json:
        print(text)


if __name__ == '__main__':
    main()
