# Copyright (c) mmris contributors. All rights reserved.
"""Strict checkpoint loading with a readable report of what does not fit.

MMEngine's ``Runner`` loads ``load_from`` with ``strict=False`` and only logs
warnings, so a DETRIS-B file loaded into a DETRIS-L config (or an ETRIS file
into DETRIS) would silently give a half-initialised model. mmris loads
strictly by default: :func:`check_state_dict` compares the checkpoint with
the model and :class:`CheckpointMismatchError` lists the missing, unexpected
and shape-mismatched keys (short lists + counts).
"""
import re
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch.nn as nn

__all__ = [
    'CheckpointMismatchError', 'StateDictReport', 'check_state_dict',
    'extract_state_dict', 'load_ris_checkpoint', 'load_state_dict_strict'
]

#: How many keys of each kind the error message shows.
MAX_LISTED = 8


class CheckpointMismatchError(RuntimeError):
    """The checkpoint does not match the model (missing / unexpected /
    shape-mismatched keys)."""

    def __init__(self, message: str, report: 'StateDictReport') -> None:
        super().__init__(message)
        self.report = report


class StateDictReport:
    """Differences between a model's and a checkpoint's state dicts.

    Attributes:
        missing (list[str]): In the model, not in the checkpoint.
        unexpected (list[str]): In the checkpoint, not in the model.
        mismatched (list[tuple]): ``(key, checkpoint_shape, model_shape)``.
    """

    def __init__(self, missing: List[str], unexpected: List[str],
                 mismatched: List[Tuple[str, tuple, tuple]]) -> None:
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def format(self, source: str = 'checkpoint',
               max_listed: int = MAX_LISTED) -> str:
        """Human readable summary (counts + the first ``max_listed`` keys)."""

        def listing(items: Sequence[str]) -> str:
            shown = ', '.join(items[:max_listed])
            more = len(items) - max_listed
            return shown + (f', ... (+{more} more)' if more > 0 else '')

        lines = [
            f'{source} does not match the model: '
            f'{len(self.missing)} missing, {len(self.unexpected)} unexpected '
            f'and {len(self.mismatched)} shape-mismatched keys.'
        ]
        if self.missing:
            lines.append(f'  missing in checkpoint ({len(self.missing)}): '
                         + listing(self.missing))
        if self.unexpected:
            lines.append(f'  unexpected in checkpoint ({len(self.unexpected)})'
                         ': ' + listing(self.unexpected))
        if self.mismatched:
            lines.append(
                f'  shape mismatch ({len(self.mismatched)}): ' + listing([
                    f'{k} (checkpoint {tuple(c)} vs model {tuple(m)})'
                    for k, c, m in self.mismatched
                ]))
        return '\n'.join(lines)


def extract_state_dict(checkpoint: Any,
                       revise_keys: Sequence[Tuple[str, str]] = (
                           (r'^module\.', ''), )) -> 'OrderedDict':
    """The ``state_dict`` of a loaded checkpoint with keys revised.

    Args:
        checkpoint (dict): A loaded checkpoint (``{'state_dict': ...}`` or a
            bare state dict).
        revise_keys (Sequence[tuple]): ``(pattern, replacement)`` regex pairs
            applied to every key. Defaults to stripping ``module.``.
    """
    if not isinstance(checkpoint, dict):
        raise TypeError('checkpoint should be a dict (a state dict or '
                        f'{{"state_dict": ...}}), got {type(checkpoint)}')
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, dict):
        raise TypeError('checkpoint["state_dict"] should be a dict, got '
                        f'{type(state)}')
    out = OrderedDict()
    for key, value in state.items():
        for pattern, repl in revise_keys:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def _unwrap(model: nn.Module) -> nn.Module:
    from mmengine.model import is_model_wrapper
    return model.module if is_model_wrapper(model) else model


def check_state_dict(model: nn.Module,
                     state_dict: Dict[str, Any]) -> StateDictReport:
    """Compare ``state_dict`` with ``model.state_dict()`` (keys + shapes)."""
    own = _unwrap(model).state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = []
    for key, value in state_dict.items():
        if key in own and hasattr(value, 'shape'):
            if tuple(value.shape) != tuple(own[key].shape):
                mismatched.append(
                    (key, tuple(value.shape), tuple(own[key].shape)))
    return StateDictReport(missing, unexpected, mismatched)


def load_state_dict_strict(model: nn.Module,
                           state_dict: Dict[str, Any],
                           strict: bool = True,
                           source: str = 'checkpoint',
                           logger: Optional[Any] = None) -> StateDictReport:
    """Load ``state_dict`` into ``model``; raise on any mismatch if strict.

    With ``strict=False`` the matching tensors are loaded, mismatched-shape
    ones are skipped, and the report is logged as a warning.

    Raises:
        CheckpointMismatchError: If ``strict`` and anything does not match.
    """
    report = check_state_dict(model, state_dict)
    if not report.ok:
        message = report.format(source)
        if strict:
            raise CheckpointMismatchError(
                message + '\nThis usually means the checkpoint belongs to '
                'another config (method, width or depth). Pass '
                '`strict_load=False` in the config (`--cfg-options '
                'strict_load=False`) or `strict=False` to '
                '`load_ris_checkpoint` to load the matching tensors anyway.',
                report)
        from mmengine.logging import print_log
        print_log('Non-strict load: ' + message, logger=logger or 'current',
                  level=30)
    bad = {k for k, _, _ in report.mismatched}
    filtered = OrderedDict(
        (k, v) for k, v in state_dict.items() if k not in bad)
    _unwrap(model).load_state_dict(filtered, strict=False)
    return report


def load_ris_checkpoint(model: nn.Module,
                        filename: str,
                        strict: bool = True,
                        map_location: Any = 'cpu',
                        revise_keys: Sequence[Tuple[str, str]] = (
                            (r'^module\.', ''), ),
                        unsafe: Optional[bool] = None) -> dict:
    """Load an mmris (or converted) checkpoint safely and strictly.

    The file is read with :func:`mmris.compat.safe_torch_load`
    (zip CRC-32 check, ``weights_only=True`` + allow-list), then matched
    against the model.

    Args:
        model (nn.Module): Target model (wrappers are unwrapped).
        filename (str): Checkpoint path.
        strict (bool): Raise :class:`CheckpointMismatchError` on any missing,
            unexpected or shape-mismatched key. Defaults to True.
        map_location: Defaults to 'cpu'.
        revise_keys (Sequence[tuple]): Key rewrites. Defaults to stripping
            ``module.``.
        unsafe (bool, optional): See ``safe_torch_load``. Defaults to None.

    Returns:
        dict: The loaded checkpoint.

    Raises:
        mmris.compat.UnsafeCheckpointError: The file pickles a global outside
            the allow-list (nothing of it is executed).
        mmris.compat.CorruptCheckpointError: The file is damaged or not a
            checkpoint.
        CheckpointMismatchError: ``strict`` and the keys / shapes differ.
    """
    from mmris.compat import safe_torch_load
    checkpoint = safe_torch_load(filename, map_location=map_location,
                                 unsafe=unsafe)
    state = extract_state_dict(checkpoint, revise_keys)
    load_state_dict_strict(model, state, strict=strict,
                           source=f'Checkpoint "{filename}"')
    return checkpoint
