# Copyright (c) mmris contributors. All rights reserved.
"""Scaffolding for tests, demos and benchmarks: not used by the models or the
datasets. ``synthetic`` writes small datasets in the exact REFER / gRefCOCO
formats (``tools/dataset_converters/make_synthetic_refer.py``)."""
from .synthetic import (make_synthetic_grefcoco, make_synthetic_refer,
                        make_synthetic_refer_all, python2_pickle_dumps)

__all__ = [
    'make_synthetic_grefcoco', 'make_synthetic_refer',
    'make_synthetic_refer_all', 'python2_pickle_dumps'
]
