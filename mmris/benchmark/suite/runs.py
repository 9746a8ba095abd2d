# Copyright (c) mmris contributors. All rights reserved.
"""``Suite``: runs the sides of the models, records every run (measured,
out of memory, failed or skipped) and writes the report after each."""
import contextlib
import gc
import json
import os
import os.path as osp
import statistics
import time
import traceback
from typing import Any, Callable, Iterator, List, Tuple

import torch

from ..timing import time_steps
from .report import comparisons, markdown, run_summary
from .specs import PRECISION

__all__ = ['Plan', 'Suite', 'cudnn_settings', 'free_memory']

GiB = 2**30

#: ``(mode, batch)`` of each run of a side.
Plan = List[Tuple[str, int]]


@contextlib.contextmanager
def cudnn_settings(enabled: bool, benchmark: bool) -> Iterator[None]:
    """Set ``torch.backends.cudnn.enabled`` / ``.benchmark`` inside the
    block, restoring them afterwards."""
    saved = torch.backends.cudnn.enabled, torch.backends.cudnn.benchmark
    torch.backends.cudnn.enabled = enabled
    torch.backends.cudnn.benchmark = benchmark
    try:
        yield
    finally:
        torch.backends.cudnn.enabled, torch.backends.cudnn.benchmark = saved


def _error_text(exc: BaseException) -> str:
    text = ''.join(traceback.format_exception_only(type(exc), exc)).strip()
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        text += f' (at {frames[-1].filename}:{frames[-1].lineno})'
    return text[-2000:]


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (isinstance(
        exc, RuntimeError) and 'out of memory' in str(exc).lower())


def free_memory(device: torch.device) -> None:
    """Collect garbage and hand cached CUDA blocks back."""
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.empty_cache()


class Suite:
    """Runs the sides of the models in order and keeps their records.

    A run that runs out of memory or fails is recorded with its error and
    the suite goes on; runs left when the time budget is spent are
    recorded as skipped. ``benchmark_suite.json`` (the whole report) and
    ``benchmark_suite.md`` (:func:`~.report.markdown`) are rewritten in
    ``out_dir`` after every run.

    Args:
        device (torch.device): Where the models run.
        settings (dict): The suite's settings, written into the report;
            ``iters``, ``warmup``, ``time_budget_s`` (0: none) and
            ``peak_tflops`` (None: no fraction of peak) are used here.
        environment (dict): Versions, device and date of the run
            (:func:`~.environment.environment`).
        out_dir (str): Where the JSON and the table are written.
    """

    def __init__(self, device: torch.device, settings: dict, environment: dict,
                 out_dir: str):
        self.device, self.settings = device, settings
        self.environment, self.out_dir = environment, out_dir
        self.peak = settings['peak_tflops']
        self.start = time.perf_counter()
        self.runs: List[dict] = []

    def elapsed(self) -> float:
        """Seconds since the suite started."""
        return time.perf_counter() - self.start

    def log(self, message: str) -> None:
        """Print ``message`` with the elapsed time."""
        print(f'[{self.elapsed():7.1f} s] {message}', flush=True)

    def _over_budget(self) -> bool:
        budget = self.settings['time_budget_s']
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
            self.log(f'{name} {side} {mode} b{batch}: {status.upper()}' +
                     (f': {run["error"]}' if run['error'] else ''))
        return run

    def _measure(self, runner, mode: str, batch: int) -> dict:
        step, count = runner.prepare(mode, batch)
        cuda = self.device.type == 'cuda'
        with cudnn_settings(*runner.cudnn):
            flops = count()
            times = time_steps(step, self.settings['iters'],
                               self.settings['warmup'], self.device)
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
        skipped = ('time budget of '
                   f'{self.settings["time_budget_s"]:g} s spent before the '
                   'run')
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
                    name,
                    side,
                    mode,
                    batch,
                    status,
                    log=False,
                    **info,
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
                    name,
                    side,
                    mode,
                    batch,
                    'oom' if _is_oom(exc) else 'failed',
                    **info,
                    error=_error_text(exc))
                runner.reset()
            else:
                run = self.record(name, side, mode, batch, 'ok', **info,
                                  **values)
                self.log(f'{name} {side} {mode} b{batch}: {run_summary(run)}')
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
        """Write the JSON and the markdown table to ``out_dir``.

        Returns:
            tuple[str, str]: The paths of the JSON and the table.
        """
        os.makedirs(self.out_dir, exist_ok=True)
        report = self.report()
        json_path = osp.join(self.out_dir, 'benchmark_suite.json')
        md_path = osp.join(self.out_dir, 'benchmark_suite.md')
        with open(json_path, 'w') as f:
            json.dump(report, f, indent=2)
        with open(md_path, 'w') as f:
            f.write(markdown(report) + '\n')
        return json_path, md_path
