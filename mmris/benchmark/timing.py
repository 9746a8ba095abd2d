# Copyright (c) mmris contributors. All rights reserved.
"""Timing of benchmark steps."""
import statistics
import time
from typing import Any, Callable, List, Sequence

import torch

__all__ = ['BF16_PEAK_TFLOPS', 'time_steps', 'time_interleaved']

#: The counted limit on an H100 SXM / H200: the bf16 dense matrix-multiply
#: rate these cards sustain, about 790 TFLOP/s (80 % of the 989 dense
#: BF16/FP16 Tensor Core figure of NVIDIA's datasheets, 1,979 "with
#: sparsity").
BF16_PEAK_TFLOPS = 790.0


def time_steps(step: Callable[[], Any], iters: int, warmup: int,
               device: torch.device) -> List[float]:
    """Run ``warmup`` untimed then ``iters`` timed calls of ``step``.

    On CUDA each call is timed with CUDA events and the peak-memory
    statistics are reset after the warm-up (read them with
    ``torch.cuda.max_memory_allocated``); elsewhere wall clock is used.

    Returns:
        list[float]: The milliseconds of each timed call.
    """
    cuda = device.type == 'cuda'
    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(iters):
        if cuda:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1000)
    return times


def time_interleaved(steps: Sequence[Callable[[], None]],
                     iters: int) -> List[float]:
    """Median milliseconds (wall clock) of each of ``steps``, run in turn
    ``iters`` times (interleaved, so that a busy machine slows all of them
    alike)."""
    times: List[List[float]] = [[] for _ in steps]
    for _ in range(iters):
        for step, out in zip(steps, times):
            t0 = time.perf_counter()
            step()
            out.append((time.perf_counter() - t0) * 1000)
    return [statistics.median(t) for t in times]
