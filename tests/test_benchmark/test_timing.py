# Copyright (c) mmris contributors. All rights reserved.
"""mmris.benchmark.timing with a fake clock."""
import pytest
import torch

from mmris.benchmark import timing


def test_time_interleaved_alternates_and_takes_medians(monkeypatch):
    calls, clock = [], iter([0, 1, 1, 11, 11, 14, 14, 34, 34, 39, 39, 69])
    monkeypatch.setattr(timing.time, 'perf_counter',
                        lambda: next(clock) / 1000)
    medians = timing.time_interleaved(
        [lambda: calls.append('official'), lambda: calls.append('mmris')], 3)
    assert calls == ['official', 'mmris'] * 3
    # official took 1, 3, 5 ms; mmris 10, 20, 30 ms.
    assert medians == pytest.approx([3.0, 20.0])


def test_time_steps_warms_up_then_times_each_call(monkeypatch):
    calls, clock = [], iter([0, 2, 10, 15])
    monkeypatch.setattr(timing.time, 'perf_counter',
                        lambda: next(clock) / 1000)
    times = timing.time_steps(
        lambda: calls.append(1), iters=2, warmup=3, device=torch.device('cpu'))
    assert len(calls) == 5  # 3 untimed + 2 timed
    assert times == pytest.approx([2.0, 5.0])
