# Copyright (c) mmris contributors. All rights reserved.
"""Throughput of a dataset's pipeline in the calling process."""
import time
from typing import Sequence, Tuple

__all__ = ['time_pipeline']


def time_pipeline(dataset: Sequence, samples: int) -> Tuple[int, float]:
    """Load ``samples`` items of ``dataset`` (cycling over it, at most ten
    times its length) after one untimed warm-up item (tokenizer, imports).

    Args:
        dataset (Sequence): The dataset (``len`` and indexing).
        samples (int): Items to load.

    Returns:
        tuple[int, float]: The items loaded and the seconds they took.

    Raises:
        ValueError: The dataset is empty or ``samples`` < 1.
    """
    if len(dataset) == 0 or samples < 1:
        raise ValueError(f'time_pipeline: needs a non-empty dataset and '
                         f'samples >= 1, got {len(dataset)} items and '
                         f'samples={samples}')
    n = min(samples, 10 * len(dataset))
    dataset[0]  # warm up
    t0 = time.perf_counter()
    for i in range(n):
        dataset[i % len(dataset)]
    return n, time.perf_counter() - t0
