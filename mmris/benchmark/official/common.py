# Copyright (c) mmris contributors. All rights reserved.
"""Import isolation and stand-ins shared by the official-model builders."""
import contextlib
import importlib
import logging
import os.path as osp
import sys
import types
from typing import Callable, Dict, Iterator, Optional, Tuple

import torch
from torch import Tensor

ModuleFactory = Callable[[], types.ModuleType]


def logger_stub() -> types.ModuleType:
    """A ``loguru`` replacement whose ``logger`` forwards to logging."""
    module = types.ModuleType('loguru')
    module.logger = logging.getLogger('official')
    return module


#: Stand-ins used for every method when the package is not installed.
COMMON_STUBS: Dict[str, ModuleFactory] = dict(loguru=logger_stub)


def _installed(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def official_imports(
        repo: str,
        stubs: Optional[Dict[str, ModuleFactory]] = None) -> Iterator[None]:
    """Make ``repo`` importable (first on ``sys.path``), standing in for the
    packages of ``stubs`` (name -> factory of a module) that are not
    installed; restore ``sys.path`` and ``sys.modules`` afterwards.

    Args:
        repo (str): Local clone of the official repository.
        stubs (dict, optional): Extra stand-ins besides
            :data:`COMMON_STUBS`. A dotted name (``'a.b'``) stands in for a
            submodule; its parent is then stood in for too if missing.
    """
    if not osp.isdir(repo):
        raise FileNotFoundError(f'--official-repo {repo!r} is not a folder')
    wanted = dict(COMMON_STUBS)
    wanted.update(stubs or {})
    added: Dict[str, types.ModuleType] = {}
    for name in sorted(wanted):  # parents before their submodules
        top = name.split('.')[0]
        if top not in added and _installed(top):
            continue  # the real package is there: use it
        added[name] = wanted[name]()
    for name in list(added):
        while '.' in name:
            parent, _, child = name.rpartition('.')
            added.setdefault(parent, types.ModuleType(parent))
            setattr(added[parent], child, added[name])
            name = parent
    sys.modules.update(added)
    sys.path.insert(0, repo)
    root = osp.abspath(repo) + osp.sep
    try:
        yield
    finally:
        sys.path.remove(repo)
        for name, module in list(sys.modules.items()):
            path = getattr(module, '__file__', None) or ''
            if name in added or osp.abspath(path).startswith(root):
                del sys.modules[name]


def jitter(state: Dict[str, Tensor], std: float = 0.02) -> Dict[str, Tensor]:
    """``state`` with N(0, std^2) noise added to every floating tensor
    (from the global torch generator); other entries are kept."""
    return {
        k: v + std * torch.randn_like(v) if v.is_floating_point() else v
        for k, v in state.items()
    }


@contextlib.contextmanager
def pretrained_files(answers: Dict[str, Tuple[str, object]]) -> Iterator[None]:
    """Answer ``torch.jit.load`` / ``torch.load`` of the paths in
    ``answers`` (path -> (loader name, object)) without reading any file;
    refuse every other call. The loaders are restored afterwards."""
    real = {'torch.jit.load': torch.jit.load, 'torch.load': torch.load}

    def loader(name: str) -> Callable:

        def load(f, *args, **kwargs):
            if f not in answers or answers[f][0] != name:
                expected = sorted(p for p, a in answers.items()
                                  if a[0] == name)
                raise RuntimeError(f'unexpected {name}({f!r}) while building '
                                   f'the official model; only {expected} '
                                   'are answered (with random weights)')
            return answers[f][1]

        return load

    torch.jit.load = loader('torch.jit.load')
    torch.load = loader('torch.load')
    try:
        yield
    finally:
        torch.jit.load = real['torch.jit.load']
        torch.load = real['torch.load']
