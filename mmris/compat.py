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
   checkpoints (which pickle ``HistoryBuffer`` and numpy objects) fail to
   load. MMEngine's local-file checkpoint loader is routed through
   :func:`mmris.checkpoint.safe_torch_load`, which reads checkpoints as
   plain data without ``torch.load`` (and without touching torch's
   process-wide ``weights_only`` allow-list).

This module is imported first by ``import mmris``.
"""
import importlib
import importlib.machinery
import sys
import types
from typing import Any

__all__ = ['MMCV_OPS_AVAILABLE']


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


def _register_checkpoint_loader() -> None:
    from mmris.checkpoint import register_mmengine_loader
    register_mmengine_loader()


_register_checkpoint_loader()
