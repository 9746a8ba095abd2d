# Copyright (c) mmris contributors. All rights reserved.
"""The suite's comparisons and its markdown table."""
from typing import List, Optional

from .specs import PRECISION

__all__ = ['run_summary', 'comparisons', 'markdown']


def run_summary(run: dict) -> str:
    """One line of a measured run's numbers, as the suite logs it."""
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
        ok = run['status'] == 'ok' and bool(other) and (other['status']
                                                        == 'ok')
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
        f'{env["git_commit"]}',
        '',
        f'torch {env["torch"]}, CUDA {env["cuda"]}; median of '
        f'{settings["iters"]} steps after {settings["warmup"]} warm-up '
        f'steps; random weights and inputs.',
        '',
        '| model | run | img/s mmris | img/s official | ms/step mmris | '
        'ms/step official | speed-up | peak GiB mmris | peak GiB official '
        '| TFLOP/step mmris | TFLOP/step official | TFLOP/s mmris (% peak) '
        '| TFLOP/s official (% peak) |',
        '|---|---|' + '---:|' * 11,
    ]
    titles = {name: spec['title'] for name, spec in settings['models'].items()}
    for comp in report['comparisons']:
        key = (comp['model'], comp['mode'], comp['batch'])

        def find(side):
            return next(
                (r
                 for r in runs if r['side'] == side and (r['model'], r['mode'],
                                                         r['batch']) == key),
                None)

        ours, theirs = find('mmris'), find('official')
        speedup = ('-'
                   if comp['speedup'] is None else f'{comp["speedup"]:.2f}x')
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
        '- precision: ' +
        '; '.join(f'{side} {mode}: {text}'
                  for (side, mode), text in PRECISION.items()),
        '- speed-up = official ms/step / mmris ms/step (= mmris img/s / '
        'official img/s); `-`: a side not run (no clone) or not measured',
        '- % peak: ' + (f'of {peak:g} TFLOP/s ({settings["peak_source"]})'
                        if peak else 'n/a (no --peak-tflops on CPU)'),
        '- official clones: ' +
        (', '.join(f'{name} {path or "missing"}'
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
