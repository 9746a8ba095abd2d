# Copyright (c) mmris contributors. All rights reserved.
"""Crafted malicious checkpoint files for the loader tests.

Every payload, if unpickled or executed, writes a marker file; the tests
assert that the marker never appears.

* ``getattr_state_dict``: one tensor of the state dict is replaced by the
  getattr chain ``getattr(getattr, '__self__')`` (the builtins module) ->
  ``eval`` -> ``torch._tensor._rebuild_from_type_v2(eval, Tensor, (code,),
  {})``. The code writes the marker and returns a tensor of the original
  shape, so a strict load would otherwise pass.
* ``getattr_meta``: the same chain in ``meta``.
* ``reduce``: a classic ``__reduce__`` payload, ``open(marker, 'w')``.
"""
import os
from collections import OrderedDict
from typing import Dict, Tuple

import torch
import torch.nn as nn

#: kind -> the global the loaders must name when refusing the file (the
#: first one outside the allow-list in pickle order: the getattr chain is
#: an argument of ``_rebuild_from_type_v2``, which is refused first).
PAYLOADS = OrderedDict(
    getattr_state_dict='torch._tensor._rebuild_from_type_v2',
    getattr_meta='torch._tensor._rebuild_from_type_v2',
    reduce='io.open')


class GetAttr:
    """Pickles as ``getattr(obj, name)``."""

    def __init__(self, obj, name: str) -> None:
        self.obj = obj
        self.name = name

    def __reduce__(self):
        return (getattr, (self.obj, self.name))


class EvalTensor:
    """Pickles as ``_rebuild_from_type_v2(eval, Tensor, (code,), {})`` with
    ``eval`` reached through ``getattr(getattr, '__self__').eval``."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        builtins_eval = GetAttr(GetAttr(getattr, '__self__'), 'eval')
        return (torch._tensor._rebuild_from_type_v2,
                (builtins_eval, torch.Tensor, (self.code, ), {}))


class OpenFile:
    """Unpickling this writes a file: the classic ``__reduce__`` payload."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


def eval_tensor(marker: str, shape: Tuple[int, ...]) -> EvalTensor:
    """A payload that writes ``marker`` and evaluates to zeros(shape)."""
    code = (f"(open({marker!r}, 'w').write('pwned'), "
            f"__import__('torch').zeros({tuple(shape)!r}))[1]")
    return EvalTensor(code)


def malicious_checkpoint(path: str, kind: str, state_dict: Dict[str,
                                                                torch.Tensor],
                         marker: str) -> str:
    """Write ``{'state_dict', 'meta', 'message_hub'}`` with payload
    ``kind`` (a key of :data:`PAYLOADS`) to ``path``."""
    state = OrderedDict(state_dict)
    meta = dict(epoch=1, iter=1)
    if kind == 'getattr_state_dict':
        key = next(k for k, v in state.items() if v.is_floating_point())
        state[key] = eval_tensor(marker, state[key].shape)
    elif kind == 'getattr_meta':
        meta['seed'] = eval_tensor(marker, (1, ))
    elif kind == 'reduce':
        meta['seed'] = OpenFile(marker)
    else:
        raise ValueError(f'unknown payload kind {kind!r}')
    torch.save(dict(state_dict=state, meta=meta, message_hub={}), path)
    assert not os.path.exists(marker)
    return path


class SetstateWritesFile(nn.Module):
    """A TorchScript module whose ``__setstate__`` (run by
    ``torch.jit.load``) creates ``path`` via ``torch.from_file(...,
    shared=True)``."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.weight = nn.Parameter(torch.ones(3))
        self.mapped = torch.zeros(8, dtype=torch.uint8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight

    @torch.jit.export
    def __getstate__(self) -> Tuple[str, torch.Tensor, bool]:
        return (self.path, self.weight, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[str, torch.Tensor, bool]) -> None:
        self.path = state[0]
        self.weight = state[1]
        self.training = state[2]
        self.mapped = torch.from_file(self.path, True, 8, dtype=torch.uint8)
