# Copyright (c) mmris contributors. All rights reserved.
"""A progress bar over validation and test batches (rank 0 only)."""
import sys
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.utils import ProgressBar
from mmseg.registry import HOOKS


@HOOKS.register_module()
class EvalProgressBarHook(Hook):
    """Shows ``[>>>>   ] done/total, task/s, elapsed, ETA`` while a
    validation or test loop runs.

    Args:
        bar_width (int): Defaults to 40.
    """

    priority = 'VERY_LOW'

    def __init__(self, bar_width: int = 40):
        self.bar_width = bar_width
        self._bar: Optional[ProgressBar] = None

    def _start(self, runner, loop) -> None:
        self._bar = None
        if is_main_process():
            total = len(getattr(loop, 'dataloader', []))
            # sys.stdout of now (ProgressBar's default is import time's)
            self._bar = ProgressBar(total, self.bar_width, file=sys.stdout)

    def _update(self) -> None:
        if self._bar is not None:
            self._bar.update()
            if self._bar.completed >= self._bar.task_num > 0:
                # end the bar's line before the metric table is logged
                # (the evaluator runs before the after-epoch hooks)
                self._finish()

    def _finish(self) -> None:
        if self._bar is not None:
            self._bar.file.write('\n')
            self._bar.file.flush()
        self._bar = None

    def before_val_epoch(self, runner) -> None:
        self._start(runner, runner.val_loop)

    def after_val_iter(self,
                       runner,
                       batch_idx,
                       data_batch=None,
                       outputs=None) -> None:
        self._update()

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._finish()

    def before_test_epoch(self, runner) -> None:
        self._start(runner, runner.test_loop)

    def after_test_iter(self,
                        runner,
                        batch_idx,
                        data_batch=None,
                        outputs=None) -> None:
        self._update()

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._finish()
