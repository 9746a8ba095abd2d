# Copyright (c) mmris contributors. All rights reserved.
"""Reading OpenAI CLIP weights from a local file, without executing it.

OpenAI's ``ViT-B-16.pt`` / ``RN50.pt`` / ``RN101.pt`` are TorchScript
archives (``openai/CLIP``, ``clip/clip.py`` loads them with
``torch.jit.load``). ``torch.jit.load`` runs code of the archive while
loading (a class's TorchScript ``__setstate__`` can, e.g., create files with
``torch.from_file(..., shared=True)``), so mmris never calls it: an archive is
a zip file whose ``<name>/data.pkl`` pickles the module tree and whose
``<name>/data/<key>`` records hold the tensor bytes.
:func:`read_torchscript_weights` unpickles ``data.pkl`` with a restricted
unpickler that resolves only the tensor-rebuild functions, the storage types
and ``OrderedDict``; every ``__torch__.*`` class becomes an inert record of
its attributes, and nothing of ``code/`` or ``constants.pkl`` is read.
"""
import os.path as osp
import pickle
import sys
import zipfile
from collections import OrderedDict
from typing import Any, Dict, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmris.compat import (CorruptCheckpointError, UnsafeCheckpointError,
                          check_checkpoint_integrity, safe_torch_load)

_SCALAR_KEYS = ('input_resolution', 'context_length', 'vocab_size')

#: ``torch.<Name>Storage`` globals of TorchScript archives -> dtype.
_STORAGE_DTYPES = {
    'DoubleStorage': torch.float64, 'FloatStorage': torch.float32,
    'HalfStorage': torch.float16, 'BFloat16Storage': torch.bfloat16,
    'LongStorage': torch.int64, 'IntStorage': torch.int32,
    'ShortStorage': torch.int16, 'CharStorage': torch.int8,
    'ByteStorage': torch.uint8, 'BoolStorage': torch.bool,
    'ComplexFloatStorage': torch.complex64,
    'ComplexDoubleStorage': torch.complex128,
}


class _StorageType:
    """Inert stand-in for ``torch.<Name>Storage`` (only its dtype)."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


class _ScriptObject:
    """Inert stand-in for a ``__torch__.*`` class of ``data.pkl``: keeps the
    pickled attributes, runs no code of the archive."""

    type_name = '__torch__'

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _as_ints(value: Any, what: str) -> Tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or not all(
            type(v) is int for v in value):
        raise pickle.UnpicklingError(f'tensor {what} must be a tuple of '
                                     f'ints, got {value!r}')
    return tuple(value)


def _rebuild_tensor(storage: Any, storage_offset: int, size: Any,
                    stride: Any, *unused: Any) -> Tensor:
    """``torch._utils._rebuild_tensor(_v2)``: a view of a storage record."""
    if not isinstance(storage, Tensor) or type(storage_offset) is not int:
        raise pickle.UnpicklingError(
            'malformed tensor record (storage / offset of the wrong type)')
    try:
        return torch.as_strided(storage, _as_ints(size, 'size'),
                                _as_ints(stride, 'stride'), storage_offset)
    except RuntimeError as err:
        raise pickle.UnpicklingError(f'tensor out of its storage: {err}')


def _rebuild_parameter(data: Any, *unused: Any) -> Tensor:
    """``torch._utils._rebuild_parameter(_with_state)``: the plain tensor."""
    if not isinstance(data, Tensor):
        raise pickle.UnpicklingError('malformed parameter record')
    return data


_REBUILD_FUNCTIONS = {
    'torch._utils._rebuild_tensor': _rebuild_tensor,
    'torch._utils._rebuild_tensor_v2': _rebuild_tensor,
    'torch._utils._rebuild_parameter': _rebuild_parameter,
    'torch._utils._rebuild_parameter_with_state': _rebuild_parameter,
    'collections.OrderedDict': OrderedDict,
}


class _WeightsUnpickler(pickle.Unpickler):
    """Restricted unpickler of a TorchScript archive's ``data.pkl``."""

    def __init__(self, archive: zipfile.ZipFile, prefix: str,
                 path: str) -> None:
        super().__init__(archive.open(f'{prefix}data.pkl'))
        self.archive = archive
        self.prefix = prefix
        self.path = path
        self.storages: Dict[str, Tensor] = {}

    def find_class(self, module: str, name: str) -> Any:
        full = f'{module}.{name}'
        if module == '__torch__' or module.startswith('__torch__.'):
            return type(name, (_ScriptObject, ), dict(type_name=full))
        if full in _REBUILD_FUNCTIONS:
            return _REBUILD_FUNCTIONS[full]
        if module == 'torch' and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise UnsafeCheckpointError(
            f'Refusing to read TorchScript archive "{self.path}": its '
            f'data.pkl pickles {full} (refused global: {full}); only tensors '
            'and module attributes are read from such archives.')

    def persistent_load(self, pid: Any) -> Tensor:
        if not (isinstance(pid, tuple) and len(pid) == 5
                and pid[0] == 'storage'
                and isinstance(pid[1], _StorageType)
                and isinstance(pid[2], str) and type(pid[4]) is int):
            raise pickle.UnpicklingError(f'unknown persistent id {pid!r}')
        _, storage_type, key, _location, numel = pid
        if key not in self.storages:
            dtype = storage_type.dtype
            record = f'{self.prefix}data/{key}'
            try:
                raw = self.archive.read(record)
            except KeyError:
                raise pickle.UnpicklingError(
                    f'tensor record "{record}" is missing') from None
            itemsize = torch.empty(0, dtype=dtype).element_size()
            if len(raw) < numel * itemsize:
                raise pickle.UnpicklingError(
                    f'tensor record "{record}" holds {len(raw)} bytes, '
                    f'{numel} x {itemsize} expected')
            raw = bytearray(raw[:numel * itemsize])
            self.storages[key] = (
                torch.frombuffer(raw, dtype=dtype) if numel else
                torch.empty(0, dtype=dtype))
        return self.storages[key]


def _archive_prefix(archive: zipfile.ZipFile) -> str:
    """``'<name>/'``, the folder of the archive's ``data.pkl``."""
    for name in archive.namelist():
        if name.endswith('data.pkl') and name.count('/') == 1:
            return name[:-len('data.pkl')]
    return ''


def is_torchscript_archive(path: str) -> bool:
    """Whether ``path`` is a TorchScript zip archive (``torch.jit.save``):
    one with ``<name>/constants.pkl`` or ``<name>/code/``."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        prefix = _archive_prefix(archive)
        return bool(prefix) and any(
            name == f'{prefix}constants.pkl'
            or name.startswith(f'{prefix}code/')
            for name in archive.namelist())


def _flatten(obj: _ScriptObject, path: str, prefix: str = '',
             out: Dict[str, Tensor] = None) -> Dict[str, Tensor]:
    """The tensors of a module record tree under dotted names."""
    out = OrderedDict() if out is None else out
    state = getattr(obj, 'state', None)
    if not isinstance(state, dict):
        raise UnsafeCheckpointError(
            f'Refusing to read TorchScript archive "{path}": '
            f'{obj.type_name} restores itself with its own __setstate__ '
            '(TorchScript code that torch.jit.load would run) instead of '
            'plain attributes. mmris reads only archives of plain modules '
            "such as OpenAI's ViT-B-16.pt / RN50.pt / RN101.pt.")
    for key, value in state.items():
        if isinstance(value, Tensor):
            out[prefix + key] = value
        elif isinstance(value, _ScriptObject):
            _flatten(value, path, f'{prefix}{key}.', out)
    return out


def read_torchscript_weights(path: str) -> Dict[str, Tensor]:
    """The parameters and buffers of a TorchScript archive, read as data.

    The archive's zip CRC-32s are checked first. Tensors come back on the
    CPU in their stored dtype, under the module's state-dict names.

    Args:
        path (str): A ``torch.jit.save`` archive (OpenAI's CLIP files).

    Returns:
        dict: name -> tensor.

    Raises:
        UnsafeCheckpointError: If ``data.pkl`` pickles anything but tensors,
            storages, ``OrderedDict`` and module records, or a module
            restores itself with a custom ``__setstate__``.
        CorruptCheckpointError: If the archive is damaged or malformed.
    """
    check_checkpoint_integrity(path)
    with zipfile.ZipFile(path) as archive:
        prefix = _archive_prefix(archive)
        order = f'{prefix}byteorder'
        if order in archive.namelist() and \
                archive.read(order).decode().strip() != sys.byteorder:
            raise CorruptCheckpointError(
                f'TorchScript archive "{path}" stores '
                f'{archive.read(order).decode().strip()}-endian tensors; '
                f'this machine is {sys.byteorder}-endian.')
        try:
            root = _WeightsUnpickler(archive, prefix, path).load()
        except UnsafeCheckpointError:
            raise
        except (pickle.UnpicklingError, EOFError, KeyError, TypeError,
                AttributeError, IndexError, ValueError) as err:
            raise CorruptCheckpointError(
                f'TorchScript archive "{path}" is malformed: cannot read its '
                f'data.pkl as weights ({type(err).__name__}: {err}).'
            ) from None
    if not isinstance(root, _ScriptObject):
        raise CorruptCheckpointError(
            f'TorchScript archive "{path}" holds no module (data.pkl gives '
            f'{type(root).__name__}).')
    return _flatten(root, path)


def load_clip_state_dict(path: str) -> Dict[str, Tensor]:
    """Load an OpenAI CLIP checkpoint: a TorchScript archive (``ViT-B-16.pt``,
    ``RN50.pt``, ``RN101.pt``, read by :func:`read_torchscript_weights`,
    never executed) or a plain (``torch.save``) state dict (read by
    :func:`mmris.compat.safe_torch_load`).

    Args:
        path (str): Local file.

    Returns:
        dict: fp32 tensors under the OpenAI key names (``visual.*``,
        ``transformer.*``, ``token_embedding.weight``, ...).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'CLIP checkpoint "{path}" not found; expected an OpenAI archive '
            'such as ViT-B-16.pt / RN50.pt / RN101.pt or a state-dict file.')
    if is_torchscript_archive(path):
        state = read_torchscript_weights(path)
    else:
        state = safe_torch_load(path, map_location='cpu')
        if isinstance(state, dict) and 'state_dict' in state:
            state = state['state_dict']
    if not isinstance(state, dict):
        raise TypeError(f'"{path}" does not hold a state dict '
                        f'(got {type(state).__name__}).')
    return {
        k: v.float() if v.is_floating_point() else v
        for k, v in state.items() if k not in _SCALAR_KEYS
    }


def sub_state_dict(state: Dict[str, Tensor], prefix: str) -> Dict[str, Tensor]:
    """The entries under ``prefix`` with the prefix removed."""
    return {
        k[len(prefix):]: v
        for k, v in state.items() if k.startswith(prefix)
    }


def resize_pos_embed(pos: Tensor, grid: tuple, num_prefix: int = 1,
                     mode: str = 'bicubic') -> Tensor:
    """Resize a (prefix + g*g, C) table to ``grid`` (h, w) with
    ``F.interpolate(mode, align_corners=False)``, keeping the prefix rows
    (as ``kkakkkka/ETRIS``, ``model/clip.py``)."""
    prefix, table = pos[:num_prefix], pos[num_prefix:]
    side = int(round(table.shape[0]**0.5))
    if side * side != table.shape[0]:
        raise ValueError(f'positional table with {table.shape[0]} patch rows '
                         'is not square')
    if (side, side) == tuple(grid):
        return pos
    table = table.reshape(1, side, side, -1).permute(0, 3, 1, 2)
    table = F.interpolate(
        table.float(), size=tuple(grid), mode=mode, align_corners=False)
    table = table.permute(0, 2, 3, 1).reshape(-1, pos.shape[1]).to(pos.dtype)
    return torch.cat([prefix, table], dim=0)
