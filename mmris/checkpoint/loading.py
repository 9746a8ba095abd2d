# Copyright (c) mmris contributors. All rights reserved.
"""Loading checkpoints: the one safe loader every tool uses, and strict
matching against a model.

:func:`safe_torch_load` reads a file with :mod:`.reader` (never
``torch.load``; nothing in the process's ``torch.serialization`` allow-list
is changed). Full unpickling, which can run code, is an explicit, named
opt-in: :func:`unsafe_checkpoint_loading` (``--unsafe-load`` in the tools).

MMEngine's ``Runner`` loads ``load_from`` with ``strict=False`` and only
logs warnings, so a DETRIS-B file loaded into a DETRIS-L config would
silently give a half-initialised model. mmris loads strictly by default:
:func:`check_state_dict` compares the checkpoint with the model and
:class:`CheckpointMismatchError` lists the missing, unexpected and
shape-mismatched keys.
"""
import contextlib
import os
import os.path as osp
import re
from collections import OrderedDict
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from .errors import CorruptCheckpointError
from .reader import ZIP_MAGIC, read_checkpoint_file, verify_zip_records

__all__ = [
    'safe_torch_load', 'unsafe_checkpoint_loading', 'unsafe_loading_enabled',
    'check_checkpoint_integrity', 'register_mmengine_loader',
    'CheckpointMismatchError', 'StateDictReport', 'check_state_dict',
    'extract_state_dict', 'load_state_dict_strict', 'load_ris_checkpoint',
    'OptimizerMismatchError', 'check_optimizer_state'
]

_UNSAFE_LOADING = False


@contextlib.contextmanager
def unsafe_checkpoint_loading(enabled: bool = True) -> Iterator[None]:
    """Explicit, named opt-in to full (code-executing) unpickling.

    Only use it for checkpoints from a source you trust: unpickling an
    arbitrary file can run arbitrary code.

    Args:
        enabled (bool): Whether to allow unsafe loading inside the context.
            Defaults to True.
    """
    global _UNSAFE_LOADING
    previous = _UNSAFE_LOADING
    _UNSAFE_LOADING = bool(enabled)
    try:
        yield
    finally:
        _UNSAFE_LOADING = previous


def unsafe_loading_enabled() -> bool:
    """Whether :func:`unsafe_checkpoint_loading` is active."""
    return _UNSAFE_LOADING


def check_checkpoint_integrity(filename: Any) -> None:
    """Check that ``filename`` is an undamaged PyTorch checkpoint without
    unpickling it: a zip checkpoint (``torch.save`` >= 1.6, TorchScript)
    must have the structure ``torch.save`` writes and every record must pass
    its CRC-32 check; a non-zip file must start like a legacy ``torch.save``
    file (which has no checksums).

    Args:
        filename (str | PathLike | file-like): The file; a file-like must be
            seekable and is rewound afterwards.

    Raises:
        CorruptCheckpointError: Naming the file and what is wrong.
    """
    from .reader import LEGACY_MAGIC, describe_file
    if isinstance(filename, (str, os.PathLike)):
        with open(filename, 'rb') as f:
            return _check_open(f, str(filename), LEGACY_MAGIC, describe_file)
    start = filename.tell()
    try:
        return _check_open(filename,
                           str(getattr(filename, 'name', '<buffer>')),
                           LEGACY_MAGIC, describe_file)
    finally:
        filename.seek(start)


def _check_open(f, name, legacy_magic, describe_file) -> None:
    head = f.read(512)
    f.seek(0)
    if not head:
        raise CorruptCheckpointError(
            f'Checkpoint "{name}" is empty (0 bytes): not a PyTorch '
            'checkpoint (an interrupted save or copy?).')
    if head.startswith(ZIP_MAGIC):
        verify_zip_records(f, name)
    elif not any(magic in head[:64] for magic in legacy_magic):
        raise CorruptCheckpointError(
            f'"{name}" is not a PyTorch checkpoint: it is neither a zip '
            'archive written by torch.save nor a legacy torch.save file (it '
            f'is {describe_file(head)}).')


def _to_device(obj: Any, device: torch.device, memo: Dict[int, Any]) -> Any:
    """``obj`` with every tensor moved to ``device``. Loaded objects are
    acyclic and at most ``unpickler.MAX_DEPTH`` deep; ``memo`` keeps shared
    objects shared (and the walk linear)."""
    key = id(obj)
    if key in memo:
        return memo[key]
    if isinstance(obj, Tensor):
        out = obj.to(device)
    elif isinstance(obj, dict):
        for k in list(obj):
            obj[k] = _to_device(obj[k], device, memo)
        out = obj
    elif isinstance(obj, list):
        obj[:] = [_to_device(v, device, memo) for v in obj]
        out = obj
    elif type(obj) is tuple:
        out = tuple(_to_device(v, device, memo) for v in obj)
    else:
        out = obj
    memo[key] = out
    return out


def safe_torch_load(filename: Any,
                    map_location: Optional[Any] = 'cpu',
                    unsafe: Optional[bool] = None) -> Any:
    """Load a checkpoint as data (module docstring); the replacement of
    ``torch.load`` used by every mmris loader and tool.

    Args:
        filename (str | PathLike | file-like): The checkpoint.
        map_location (str | torch.device, optional): Device of the
            returned tensors. None and 'cpu' keep them on the CPU.
            Defaults to 'cpu'.
        unsafe (bool, optional): Force full unpickling with ``torch.load``
            (runs code of the file). Defaults to None, which follows
            :func:`unsafe_checkpoint_loading`.

    Raises:
        UnsafeCheckpointError: The file pickles something outside the
            allow-list of plain data; the message names the file and what.
        CorruptCheckpointError: The file is damaged, malformed, or not a
            checkpoint.
    """
    if unsafe is None:
        unsafe = _UNSAFE_LOADING
    if unsafe:
        check_checkpoint_integrity(filename)
        return torch.load(
            filename, map_location=map_location, weights_only=False)
    if map_location is not None and not isinstance(map_location,
                                                   (str, torch.device)):
        raise TypeError('map_location must be None, a device string or a '
                        f'torch.device, got {type(map_location).__name__}')
    checkpoint = read_checkpoint_file(filename)
    device = torch.device(map_location or 'cpu')
    if device.type != 'cpu':
        checkpoint = _to_device(checkpoint, device, {})
    return checkpoint


def register_mmengine_loader() -> None:
    """Route MMEngine's local-file checkpoint loader (``load_checkpoint``,
    ``Runner(load_from=...)``, ``resume``) through :func:`safe_torch_load`
    (MMEngine 0.10.7 calls plain ``torch.load``, which under torch >= 2.6
    refuses MMEngine's own checkpoints)."""
    from mmengine.runner.checkpoint import CheckpointLoader

    def load_from_local(filename, map_location=None):
        filename = osp.expanduser(filename)
        if not osp.isfile(filename):
            raise FileNotFoundError(f'{filename} can not be found.')
        if callable(map_location):
            map_location = None
        return safe_torch_load(filename, map_location=map_location)

    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local, force=True)


# ---------------------------------------------------------------------------
# strict matching
# ---------------------------------------------------------------------------
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

    def format(self,
               source: str = 'checkpoint',
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
            lines.append(f'  missing in checkpoint ({len(self.missing)}): ' +
                         listing(self.missing))
        if self.unexpected:
            lines.append(f'  unexpected in checkpoint ({len(self.unexpected)})'
                         ': ' + listing(self.unexpected))
        if self.mismatched:
            lines.append(f'  shape mismatch ({len(self.mismatched)}): ' +
                         listing([
                             f'{k} (checkpoint {tuple(c)} vs model {tuple(m)})'
                             for k, c, m in self.mismatched
                         ]))
        return '\n'.join(lines)


def extract_state_dict(
    checkpoint: Any,
    revise_keys: Sequence[Tuple[str, str]] = ((r'^module\.', ''), )
) -> 'OrderedDict':
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
        print_log(
            'Non-strict load: ' + message,
            logger=logger or 'current',
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
                        revise_keys: Sequence[Tuple[str,
                                                    str]] = ((r'^module\.',
                                                              ''), ),
                        unsafe: Optional[bool] = None) -> dict:
    """Load an mmris (or converted) checkpoint safely and strictly.

    Args:
        model (nn.Module): Target model (wrappers are unwrapped).
        filename (str): Checkpoint path.
        strict (bool): Raise :class:`CheckpointMismatchError` on any missing,
            unexpected or shape-mismatched key. Defaults to True.
        map_location: Defaults to 'cpu'.
        revise_keys (Sequence[tuple]): Key rewrites. Defaults to stripping
            ``module.``.
        unsafe (bool, optional): See :func:`safe_torch_load`.
            Defaults to None.

    Returns:
        dict: The loaded checkpoint.

    Raises:
        UnsafeCheckpointError: The file pickles something outside the
            allow-list (nothing of it is executed).
        CorruptCheckpointError: The file is damaged or not a checkpoint.
        CheckpointMismatchError: ``strict`` and the keys / shapes differ.
    """
    checkpoint = safe_torch_load(
        filename, map_location=map_location, unsafe=unsafe)
    state = extract_state_dict(checkpoint, revise_keys)
    load_state_dict_strict(
        model, state, strict=strict, source=f'Checkpoint "{filename}"')
    return checkpoint


# ---------------------------------------------------------------------------
# optimizer state
# ---------------------------------------------------------------------------
class OptimizerMismatchError(ValueError):
    """A checkpoint's optimizer state belongs to another optimizer."""


def _optimizer_names(keys: frozenset) -> str:
    """The ``torch.optim`` classes whose parameter groups hold the most of
    ``keys`` and nothing else (schedulers add keys such as ``initial_lr``)."""
    best, names = 0, []
    for name in sorted(dir(torch.optim)):
        cls = getattr(torch.optim, name)
        if not (isinstance(cls, type)
                and issubclass(cls, torch.optim.Optimizer)
                and cls is not torch.optim.Optimizer):
            continue
        try:
            opt = cls([torch.zeros(1, requires_grad=True)], lr=0.1)
        except Exception:  # optimizers with other required arguments
            continue
        own = frozenset(opt.param_groups[0]) - {'params'}
        if own <= keys and len(own) >= best:
            names = names + [name] if len(own) == best else [name]
            best = len(own)
    return 'torch.optim.' + '/'.join(names) if names else \
        'an optimizer not in torch.optim'


def check_optimizer_state(optimizer: torch.optim.Optimizer, state: Any,
                          source: str) -> None:
    """Check that ``state`` (a saved ``optimizer.state_dict()``) belongs to
    an optimizer like ``optimizer`` before it is loaded.

    ``torch.optim.Optimizer.load_state_dict`` takes the hyper-parameters of
    another optimizer without a word, and the first step then fails with a
    bare ``KeyError`` (e.g. 'momentum' after switching Adam for SGD).

    Raises:
        OptimizerMismatchError: Naming ``source`` and both optimizers.
    """
    if not isinstance(state, dict) or not isinstance(
            state.get('param_groups'), list):
        raise OptimizerMismatchError(
            f'{source}: the optimizer state is not an optimizer state dict '
            '(no "param_groups" list).')
    groups = state['param_groups']
    current = optimizer.param_groups
    mine = type(optimizer).__name__
    if len(groups) != len(current):
        raise OptimizerMismatchError(
            f'{source}: the saved optimizer state has {len(groups)} '
            f'parameter groups, this run\'s {mine} has {len(current)}. '
            'Resume with the config of the interrupted run.')
    for i, (saved, own) in enumerate(zip(groups, current)):
        if not isinstance(saved, dict):
            raise OptimizerMismatchError(
                f'{source}: parameter group {i} is not a dict.')
        saved_keys = frozenset(saved) - {'params'}
        own_keys = frozenset(own) - {'params'}
        if saved_keys != own_keys:
            raise OptimizerMismatchError(
                f'{source} was saved with another optimizer: its parameter '
                f'groups hold {sorted(saved_keys)} (as '
                f'{_optimizer_names(saved_keys)}), but this '
                f'run\'s optimizer is torch.optim.{mine} '
                f'({sorted(own_keys)}). Resume with the optimizer of the '
                'interrupted run, or start a new run with `load_from` '
                '(weights only).')
        if len(saved.get('params', ())) != len(own['params']):
            raise OptimizerMismatchError(
                f'{source}: parameter group {i} holds '
                f'{len(saved.get("params", ()))} parameters, this run\'s '
                f'has {len(own["params"])} (another model or freezing '
                'rule?).')
