# Copyright (c) mmris contributors. All rights reserved.
"""Builders of the official RIS models from local clones of their
repositories, for ``tools/analysis_tools/compare_official.py`` and the
benchmark suite (:mod:`mmris.benchmark.suite`).

Nothing of the official code is part of mmris: each module here imports the
official repository from the path the user gives (see
:func:`.common.official_imports`), stands in only for its missing
third-party imports and its pretrained-file loading, and builds the model
with random weights of the official shapes.

Each method module (``etris``, ``barleria``, ``detris``) provides:

* ``DEFAULT_YAML``: the official config file used when none is given;
* ``build(repo, yaml_file) -> (model, cfg)``: the fp32 model with the
  official freezing, and its yaml settings as a dict;
* ``logits(model, img, word) -> Tensor``: the test-mode mask logits;
* ``loss(model, img, word, mask) -> Tensor``: the training loss of one
  forward pass, as the official training loop computes it.
"""
import importlib
from types import ModuleType

METHODS = ('etris', 'barleria', 'detris')


def method_module(method: str) -> ModuleType:
    """The builder module of ``method``."""
    if method not in METHODS:
        raise ValueError(f'unknown method {method!r}; choose from '
                         f'{list(METHODS)}')
    return importlib.import_module(f'{__name__}.{method}')
