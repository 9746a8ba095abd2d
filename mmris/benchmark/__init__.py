# Copyright (c) mmris contributors. All rights reserved.
"""Benchmark code shared by the tools of ``tools/analysis_tools/``
(``benchmark.py``, ``compare_official.py``, ``benchmark_suite.py``,
``benchmark_data.py``): random inputs of a config's size, counted and
timed training / inference steps, the builders of the official models and
the benchmark suite. Not imported by ``import mmris``.

* :mod:`.inputs`: random batches and the official models' view of them;
* :mod:`.steps`: mmris training / inference steps and their counts;
* :mod:`.timing`: timing of steps;
* :mod:`.formatting`: the printed lines of counted steps;
* :mod:`.data`: throughput of a data pipeline;
* :mod:`.official`: official models built from local clones;
* :mod:`.suite`: the benchmark suite.
"""
from .data import time_pipeline
from .formatting import format_counts
from .inputs import input_spec, make_batch, official_inputs
from .steps import (build_train_wrapper, count_flops, counted_train_step,
                    infer_step)
from .timing import BF16_PEAK_TFLOPS, time_interleaved, time_steps

__all__ = [
    'time_pipeline', 'format_counts', 'input_spec', 'make_batch',
    'official_inputs', 'build_train_wrapper', 'count_flops',
    'counted_train_step', 'infer_step', 'BF16_PEAK_TFLOPS', 'time_interleaved',
    'time_steps'
]
