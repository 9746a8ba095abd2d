# Copyright (c) mmris contributors. All rights reserved.
"""EvalProgressBarHook ends its line before the metric table is logged."""
from types import SimpleNamespace

from mmris.engine.hooks import EvalProgressBarHook


def test_bar_line_ends_with_the_last_batch(capsys):
    hook = EvalProgressBarHook()
    runner = SimpleNamespace(
        test_loop=SimpleNamespace(dataloader=[0, 1, 2]),
        val_loop=SimpleNamespace(dataloader=[0, 1, 2]))
    hook.before_test_epoch(runner)
    for i in range(3):
        hook.after_test_iter(runner, i)
    out = capsys.readouterr().out
    assert '3/3' in out and out.endswith('\n')  # before after_test_epoch
    hook.after_test_epoch(runner)
    assert capsys.readouterr().out == ''  # no second, empty line
