# Copyright (c) mmris contributors. All rights reserved.
"""mmris.benchmark.data.time_pipeline on a counting dataset."""
import pytest

from mmris.benchmark import time_pipeline


class _Counting:

    def __init__(self, n):
        self.n, self.loaded = n, []

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        self.loaded.append(i)
        return i


def test_cycles_and_caps_at_ten_epochs():
    ds = _Counting(4)
    n, seconds = time_pipeline(ds, 6)
    assert n == 6 and seconds >= 0
    assert ds.loaded == [0, 0, 1, 2, 3, 0, 1]  # warm-up item first
    ds = _Counting(3)
    n, _ = time_pipeline(ds, 100)
    assert n == 30 and len(ds.loaded) == 31


@pytest.mark.parametrize('size,samples', [(0, 5), (3, 0)])
def test_refuses_nothing_to_time(size, samples):
    with pytest.raises(ValueError, match='non-empty dataset and samples'):
        time_pipeline(_Counting(size), samples)
