# Copyright (c) mmris contributors. All rights reserved.
"""Absorbs the two incompatibilities of the pinned stack (README,
"Installation").

1. ``mmcv-lite`` ships no compiled ops, yet ``import mmseg.models`` imports
   ``mmcv.ops`` at module level, which needs ``mmcv._ext``. When (and only
   when) the compiled extension is missing, a placeholder module is
   registered whose functions raise a clear error if a compiled op is
   actually called. Pure-torch helpers keep working.
2. ``torch>=2.6`` loads checkpoints with ``weights_only=True`` by default,
   and MMEngine 0.10.7 calls plain ``torch.load``, so MMEngine's own
   checkpoints (which pickle ``HistoryBuffer``, numpy objects and
   ``getattr(HistoryBuffer, 'mean')``) fail to load. We keep
   ``weights_only=True`` and allow-list exactly the globals MMEngine writes;
   ``builtins.getattr`` resolves to a stand-in that answers only
   ``getattr(HistoryBuffer, <min|max|current|mean>)``. Loading a checkpoint
   with any other pickled global is refused with a message naming the file
   and that global, unless the caller opts in explicitly with
   :func:`unsafe_checkpoint_loading` (``--unsafe-load`` in the tools). Every
   load first checks the zip CRC-32s (:class:`CorruptCheckpointError` for a
   damaged or non-checkpoint file).

This module is imported first by ``import mmris``.
"""
import contextlib
import functools
import importlib
import importlib.machinery
import os
import os.path as osp
import pickle
import re
import sys
import types
import zipfile
from typing import Any, Iterator, Optional

import torch

__all__ = [
    'MMCV_OPS_AVAILABLE', 'CorruptCheckpointError', 'UnsafeCheckpointError',
    'HISTORY_BUFFER_STATISTICS', 'check_checkpoint_integrity',
    'history_buffer_getattr', 'safe_torch_load', 'unsafe_checkpoint_loading',
    'unsafe_loading_enabled'
]


# ---------------------------------------------------------------------------
# 1. mmcv._ext placeholder
# ---------------------------------------------------------------------------
def _install_mmcv_ext_placeholder() -> bool:
    """Register ``mmcv._ext`` as a placeholder if the compiled ops are absent.

    Returns:
        bool: True if the real compiled extension is available.
    """
    try:
        importlib.import_module('mmcv._ext')
        return True
    except ImportError:
        pass

    class _MissingOpsModule(types.ModuleType):

        def __getattr__(self, name: str) -> Any:
            if name.startswith('__'):
                raise AttributeError(name)

            def _unavailable(*args, **kwargs):
                raise RuntimeError(
                    f'mmcv compiled op "{name}" is unavailable: mmris runs on '
                    'mmcv-lite, which has no compiled ops. Install the full '
                    '"mmcv" package to use it.')

            return _unavailable

    module = _MissingOpsModule('mmcv._ext')
    module.__spec__ = importlib.machinery.ModuleSpec('mmcv._ext', None)
    module.__file__ = None
    sys.modules['mmcv._ext'] = module
    return False


MMCV_OPS_AVAILABLE = _install_mmcv_ext_placeholder()


# ---------------------------------------------------------------------------
# 2. weights_only checkpoint loading with an explicit allow-list
# ---------------------------------------------------------------------------
class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds a pickled global outside the allow-list."""


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file is damaged (failed CRC-32 check, truncated, empty)
    or is not a PyTorch checkpoint at all."""


_UNSAFE_LOADING = False

#: The statistics MMEngine's message hub pickles as
#: ``getattr(HistoryBuffer, name)`` (``HistoryBuffer.__getstate__`` stores
#: its ``_statistics_methods``; pickle protocol 2 writes a method as getattr).
HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')

#: How the legacy (non-zip) ``torch.save`` format starts: the pickled magic
#: number, as LONG1 (protocol >= 2) or decimal (protocols 0/1).
_LEGACY_MAGIC = (b'\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19',
                 b'119547037146038801333356')
_ZIP_MAGIC = b'PK\x03\x04'


def _describe(obj: Any) -> str:
    """Short, side-effect free description of an unpickled object."""
    if obj is history_buffer_getattr:
        return 'builtins.getattr'
    if isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)):
        return f'{obj.__module__}.{obj.__qualname__}'
    if isinstance(obj, types.ModuleType):
        return f'module {obj.__name__}'
    text = object.__repr__(obj)
    return text if len(text) <= 60 else text[:57] + '...'


def history_buffer_getattr(obj: Any, name: str) -> Any:
    """Stand-in resolved for ``builtins.getattr`` in weights-only loads.

    MMEngine checkpoints pickle ``getattr(HistoryBuffer, 'mean')`` (and
    min / max / current). A real ``getattr`` would let a file reach any
    attribute of any allowed object (``getattr(getattr, '__self__')`` is the
    builtins module, hence ``eval``), so only exactly these calls are
    answered.

    Args:
        obj: Must be ``mmengine.logging.HistoryBuffer``.
        name (str): One of :data:`HISTORY_BUFFER_STATISTICS`.

    Raises:
        pickle.UnpicklingError: For any other object or name.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj in (HistoryBuffer, _checked_history_buffer()) and \
            isinstance(name, str) and name in HISTORY_BUFFER_STATISTICS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'refused global: builtins.getattr({_describe(obj)}, {name!r}); '
        'only getattr(mmengine.logging.HistoryBuffer, <' +
        '|'.join(HISTORY_BUFFER_STATISTICS) + '>) is allowed')


@functools.lru_cache(maxsize=1)
def _checked_history_buffer() -> type:
    """Stand-in resolved for ``HistoryBuffer`` in weights-only loads.

    ``HistoryBuffer.__setstate__`` merges the pickled ``statistics_methods``
    into the class-level table that every buffer of the process uses, so a
    file could rebind ``'mean'`` to another allowed callable. The stand-in
    accepts only the class's own statistics, then turns the object into a
    plain ``HistoryBuffer``.
    """
    from mmengine.logging.history_buffer import HistoryBuffer

    class CheckedHistoryBuffer(HistoryBuffer):

        def __setstate__(self, state: Any) -> None:
            methods = state.get('statistics_methods', {}) \
                if isinstance(state, dict) else None
            if not isinstance(methods, dict) or any(
                    key not in HISTORY_BUFFER_STATISTICS
                    or value is not getattr(HistoryBuffer, key)
                    for key, value in methods.items()):
                shown = {k: _describe(v) for k, v in methods.items()} \
                    if isinstance(methods, dict) else _describe(state)
                raise pickle.UnpicklingError(
                    'refused global: HistoryBuffer statistics_methods '
                    f'{shown}; only HistoryBuffer.<' +
                    '|'.join(HISTORY_BUFFER_STATISTICS) + '> are allowed;')
            self.__class__ = HistoryBuffer
            HistoryBuffer.__setstate__(self, state)

    return CheckedHistoryBuffer


def _mmengine_safe_globals() -> list:
    """The globals that MMEngine checkpoints (meta, message hub) pickle.

    ``builtins.getattr`` resolves to :func:`history_buffer_getattr` and
    ``HistoryBuffer`` to a subclass that checks its statistics; no general
    callable is allow-listed.
    """
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    safe = [(_checked_history_buffer(), f'{HistoryBuffer.__module__}.'
             f'{HistoryBuffer.__qualname__}'), np.ndarray, np.dtype,
            (history_buffer_getattr, 'builtins.getattr')]
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    safe += [_reconstruct, scalar]
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        safe += [
            getattr(dtypes, name) for name in dir(dtypes)
            if name.endswith('DType')
        ]
    return safe


def _register_safe_globals() -> None:
    torch.serialization.add_safe_globals(_mmengine_safe_globals())


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


def _display_name(filename: Any) -> str:
    if isinstance(filename, (str, os.PathLike)):
        return str(filename)
    return str(getattr(filename, 'name', '<buffer>'))


@contextlib.contextmanager
def _opened(filename: Any) -> Iterator[Any]:
    """A binary file object for a path, or the seekable file-like given
    (rewound to where it was afterwards)."""
    if isinstance(filename, (str, os.PathLike)):
        with open(filename, 'rb') as f:
            yield f
        return
    start = filename.tell()
    try:
        yield filename
    finally:
        filename.seek(start)


def check_checkpoint_integrity(filename: Any) -> None:
    """Check that ``filename`` is an undamaged PyTorch checkpoint.

    A zip checkpoint (``torch.save`` >= 1.6, TorchScript archives) must open
    and every record must pass its CRC-32 check (``ZipFile.testzip``); a
    non-zip file must start like the legacy ``torch.save`` format.

    Args:
        filename (str | PathLike | file-like): The file; a file-like must be
            seekable and is rewound afterwards.

    Raises:
        CorruptCheckpointError: Naming the file and what is wrong.
    """
    name = _display_name(filename)
    with _opened(filename) as f:
        start = f.tell()
        head = f.read(64)
        f.seek(start)
        if not head:
            raise CorruptCheckpointError(
                f'Checkpoint "{name}" is empty (0 bytes): not a PyTorch '
                'checkpoint (an interrupted save or copy?).')
        if head.startswith(_ZIP_MAGIC):
            try:
                with zipfile.ZipFile(f) as zf:
                    bad = zf.testzip()
            except (zipfile.BadZipFile, EOFError, OSError) as err:
                raise CorruptCheckpointError(
                    f'Checkpoint "{name}" is damaged: it is not a readable '
                    f'zip archive ({err}); it was probably truncated by an '
                    'interrupted save or copy.') from None
            if bad is not None:
                raise CorruptCheckpointError(
                    f'Checkpoint "{name}" is damaged: record "{bad}" fails '
                    'its CRC-32 check (a bad copy or disk error); '
                    'download or save it again.')
        elif not any(magic in head for magic in _LEGACY_MAGIC):
            raise CorruptCheckpointError(
                f'"{name}" is not a PyTorch checkpoint: it is neither a zip '
                'archive written by torch.save nor a legacy torch.save file '
                f'(it starts with {head[:16]!r}).')


_REFUSAL_PATTERNS = (
    # (regex on torch's / the stand-in's message, how to show the match)
    (r'refused global: (builtins\.getattr\(.*?\));', r'\1'),
    (r'refused global: (HistoryBuffer statistics_methods .*?);', r'\1'),
    (r'GLOBAL (\S+) was not an allowed global', r'\1'),
    (r'unsupported GLOBAL (\S+) whose module', r'\1'),
    (r'unrecognized function (.+?)(?: which belongs|$)', r'\1'),
    (r'but got <class \'(.+?)\'>', r'\1'),
)


def _refused_global(message: str) -> str:
    """The global a weights-only error message refuses (dotted path)."""
    for pattern, repl in _REFUSAL_PATTERNS:
        match = re.search(pattern, message, flags=re.MULTILINE)
        if match:
            found = match.expand(repl)
            if ' ' not in found and '(' not in found and '.' not in found:
                found = 'builtins.' + found  # torch strips "builtins."
            return found
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[-1] if lines else 'unknown'


def safe_torch_load(filename: Any,
                    map_location: Optional[Any] = 'cpu',
                    unsafe: Optional[bool] = None) -> Any:
    """``torch.load`` with ``weights_only=True`` and the mmris allow-list.

    The file is first checked by :func:`check_checkpoint_integrity` (zip
    CRC-32s), with or without ``unsafe``.

    Args:
        filename (str | PathLike | file-like): The checkpoint.
        map_location: Passed to ``torch.load``. Defaults to 'cpu'.
        unsafe (bool, optional): Force full unpickling. Defaults to None,
            which follows :func:`unsafe_checkpoint_loading`.

    Raises:
        UnsafeCheckpointError: If the file pickles a global that is not
            allow-listed; the message names the file and the global.
        CorruptCheckpointError: If the file is damaged or not a checkpoint.
    """
    if unsafe is None:
        unsafe = _UNSAFE_LOADING
    name = _display_name(filename)
    check_checkpoint_integrity(filename)
    try:
        return torch.load(filename, map_location=map_location,
                          weights_only=not unsafe)
    except pickle.UnpicklingError as err:
        if unsafe:
            raise
        message = str(err)
        if 'WeightsUnpickler error' not in message and \
                'GLOBAL' not in message:
            raise CorruptCheckpointError(
                f'Checkpoint "{name}" is damaged: its pickle cannot be read '
                f'({message.splitlines()[-1] if message else err!r}).'
            ) from None
        raise UnsafeCheckpointError(
            f'Refusing to load checkpoint "{name}": it pickles an object '
            'outside the allow-list of tensors, containers and MMEngine '
            f'records (refused global: {_refused_global(message)}). '
            'Unpickling it could execute code. If you trust the file, opt '
            'in explicitly with `--unsafe-load` (tools) or '
            '`mmris.compat.unsafe_checkpoint_loading()` (Python).') from None
    except (EOFError, KeyError, RuntimeError) as err:
        if isinstance(err, RuntimeError) and 'PytorchStreamReader' not in \
                str(err):
            raise  # e.g. a CUDA map_location on a CPU-only machine
        raise CorruptCheckpointError(
            f'Checkpoint "{name}" is damaged: torch.load failed with '
            f'{type(err).__name__}: {err}') from None


def _register_mmengine_loaders() -> None:
    """Route MMEngine's local-file and http checkpoint loaders through
    :func:`safe_torch_load` so ``load_from``/``resume`` honour the policy."""
    from mmengine.runner.checkpoint import CheckpointLoader

    def load_from_local(filename, map_location=None):
        filename = osp.expanduser(filename)
        if not osp.isfile(filename):
            raise FileNotFoundError(f'{filename} can not be found.')
        return safe_torch_load(filename, map_location=map_location)

    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local, force=True)


_register_safe_globals()
_register_mmengine_loaders()
