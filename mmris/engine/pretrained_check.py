# Copyright (c) mmris contributors. All rights reserved.
"""Refuse to train a paper config whose frozen encoders would stay random.

The paper configs freeze pretrained CLIP / DINOv2 towers and train only the
adapters, so training them without the pretrained files runs for days and
learns nothing useful. Each ``configs/_base_/models/*.py`` lists the files
it needs in the top-level ``required_pretrained`` dict (config key ->
expected file); :func:`check_required_pretrained` refuses to start training
when one of them is unset or missing, unless the encoder weights come from a
checkpoint (``load_from`` / ``resume``) or the config opts out with
``allow_random_encoders = True`` (``--cfg-options
allow_random_encoders=True``), e.g. for smoke tests.
"""
import os.path as osp
from typing import Any, List, Tuple

__all__ = ['RandomEncoderError', 'check_required_pretrained']


class RandomEncoderError(RuntimeError):
    """A paper config would train with randomly initialised frozen
    encoders."""


def _lookup(cfg: Any, dotted: str) -> Any:
    node = cfg
    for part in dotted.split('.'):
        if not hasattr(node, 'get'):
            return None
        node = node.get(part)
        if node is None:
            return None
    return node


def check_required_pretrained(cfg: Any) -> None:
    """Raise :class:`RandomEncoderError` when ``cfg`` (a paper config) would
    train randomly initialised frozen encoders.

    Args:
        cfg (Config | dict): The full config.

    Raises:
        RandomEncoderError: Naming every unset or missing file, the config
            key to set, the expected file and the opt-out.
    """
    required = cfg.get('required_pretrained') or {}
    if not required or cfg.get('allow_random_encoders', False):
        return
    if cfg.get('load_from') or cfg.get('resume'):
        return  # the checkpoint holds the encoder weights
    problems: List[Tuple[str, str, str]] = []
    for key, expected in required.items():
        value = _lookup(cfg, key)
        if not value:
            problems.append((key, expected, 'not set'))
        elif not osp.isfile(str(value)):
            problems.append((key, expected, f'"{value}" does not exist'))
    if not problems:
        return
    lines = '\n'.join(f'  {key}: {why} (expected: {expected})'
                      for key, expected, why in problems)
    example = ' '.join(f'{key}=/path/to/{osp.basename(expected.split()[-1])}'
                       for key, expected, _ in problems)
    raise RandomEncoderError(
        'This config freezes pretrained encoders, but their weights are '
        f'missing, so they would train as random networks:\n{lines}\n'
        f'Set them, e.g. --cfg-options {example}\n'
        'or pass --cfg-options allow_random_encoders=True to train with '
        'random encoders on purpose (experiments, smoke tests).')
