# Copyright (c) mmris contributors. All rights reserved.
"""The benchmark suite: mmris and the official models timed side by side
on the same inputs (``tools/analysis_tools/benchmark_suite.py`` is its
command line).

* :mod:`.specs`: the models and where their official clones are;
* :mod:`.sides`: building each side and preparing its runs;
* :mod:`.runs`: :class:`Suite`, running the sides and recording the runs;
* :mod:`.report`: comparisons and the markdown table;
* :mod:`.environment`: versions, device and date.
"""
from .environment import environment, git_commit
from .report import comparisons, markdown, run_summary
from .runs import Plan, Suite, cudnn_settings, free_memory
from .sides import MmrisSide, OfficialSide, Prepared, load_config
from .specs import (DEFAULT_MODELS, MODEL_SPECS, OFFICIAL_CLONES, PRECISION,
                    ModelSpec, find_clone, official_clones)

__all__ = [
    'environment', 'git_commit', 'comparisons', 'markdown', 'run_summary',
    'Plan', 'Suite', 'cudnn_settings', 'free_memory', 'MmrisSide',
    'OfficialSide', 'Prepared', 'load_config', 'DEFAULT_MODELS', 'MODEL_SPECS',
    'OFFICIAL_CLONES', 'PRECISION', 'ModelSpec', 'find_clone',
    'official_clones'
]
