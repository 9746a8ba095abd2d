# Copyright (c) mmris contributors. All rights reserved.
"""Absorbs the two incompatibilities of the pinned stack (see README, "Installation").

1. ``mmcv-lite`` ships no compiled ops, yet ``import mmseg.models`` imports ``mmcv.ops``
   at module level, which needs ``mmcv._ext``. When (and only when) the compiled
   extension is missing, a placeholder module is registered whose functions raise a
   clear error if a compiled op is actually called. Pure-torch helpers keep working.
2. ``torch>=2.6`` loads checkpoints with ``weights_only=True`` by default, and
   MMEngine 0.10.7 calls plain ``torch.load``, so MMEngine's own checkpoints (which
   pickle ``HistoryBuffer`` and numpy objects) fail to load. We keep
   ``weights_only=True`` and allow-list exactly the globals MMEngine writes. Loading a
   checkpoint with any other pickled global is refused with a message naming that
   global, unless the caller opts in explicitly with :func:`unsafe_checkpoint_loading`
   (``--unsafe-load`` in the tools).

This module is imported first by ``import mmris``.
"""
import contextlib
import importlib
import importlib.machinery
import os.path as osp
import pickle
import sys
import types
from typing import Any, Iterator, Optional

import torch

__all__ = [
    'MMCV_OPS_AVAILABLE', 'UnsafeCheckpointError', 'safe_torch_load',
    'unsafe_checkpoint_loading', 'unsafe_loading_enabled'
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


_UNSAFE_LOADING = False


def _mmengine_safe_globals() -> list:
    """The globals that MMEngine checkpoints (meta, message hub) pickle."""
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    safe = [HistoryBuffer, np.ndarray, np.dtype, getattr]
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


def safe_torch_load(filename: Any,
                    map_location: Optional[Any] = 'cpu',
                    unsafe: Optional[bool] = None) -> Any:
    """``torch.load`` with ``weights_only=True`` and the mmris allow-list.

    Args:
        filename (str | file-like): The checkpoint.
        map_location: Passed to ``torch.load``. Defaults to 'cpu'.
        unsafe (bool, optional): Force full unpickling. Defaults to None,
            which follows :func:`unsafe_checkpoint_loading`.

    Raises:
        UnsafeCheckpointError: If the file pickles a global that is not
            allow-listed; the message names the global.
    """
    if unsafe is None:
        unsafe = _UNSAFE_LOADING
    if unsafe:
        return torch.load(filename, map_location=map_location,
                          weights_only=False)
    try:
        return torch.load(filename, map_location=map_location,
                          weights_only=True)
    except pickle.UnpicklingError as err:
        name = filename if isinstance(filename, str) else '<buffer>'
        detail = str(err).split('\n')
        hint = next((line.strip() for line in detail
                     if 'Unsupported global' in line or 'GLOBAL' in line),
                    detail[0])
        raise UnsafeCheckpointError(
            f'Refusing to load checkpoint "{name}": it contains a pickled '
            f'object outside the allow-list ({hint}). Unpickling it could '
            'execute code. If you trust the file, opt in explicitly with '
            '`--unsafe-load` (tools) or `mmris.compat.'
            'unsafe_checkpoint_loading()` (Python).') from None


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
