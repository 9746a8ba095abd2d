# Copyright (c) mmris contributors. All rights reserved.
"""Crafted checkpoint files for the loader tests: each one loads (or
crashes the process) with ``torch.load(weights_only=True)`` plus a naive
allow-list, and must be refused by name by :mod:`mmris.checkpoint`."""
import io
import pickle
import struct
import sys
import types
import zipfile
import zlib
from collections import OrderedDict
from typing import Dict, Iterable, Optional

import numpy as np
import torch

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover
    from numpy.core.multiarray import _reconstruct

#: numpy's dtype flags: an object dtype has all of these; without
#: NPY_LIST_PICKLE (0x02) its pickled data is read as raw PyObject pointers.
OBJECT_FLAGS = 0x3f
NPY_LIST_PICKLE = 0x02


class FakeDType:
    """Pickles as ``numpy.dtype(code)`` whose ``__setstate__`` gets
    ``state``."""

    def __init__(self, code: str, state: tuple) -> None:
        self.code = code
        self.state = state

    def __reduce__(self):
        return (np.dtype, (self.code, False, True), self.state)


class FakeArray:
    """Pickles as a numpy array of dtype ``dtype`` over ``raw``."""

    def __init__(self, dtype, shape: tuple, raw: bytes) -> None:
        self.dtype = dtype
        self.shape = shape
        self.raw = raw

    def __reduce__(self):
        return (_reconstruct, (np.ndarray, (0, ), b'b'),
                (1, self.shape, self.dtype, False, self.raw))


def object_pointer_array() -> FakeArray:
    """An object array whose 'pointers' are 0x4141414141414141."""
    dtype = FakeDType(
        'O8',
        (3, '|', None, None, None, -1, -1, OBJECT_FLAGS & ~NPY_LIST_PICKLE))
    return FakeArray(dtype, (1, ), b'A' * 8)


def out_of_range_field_array() -> FakeArray:
    """A structured array whose field 'a' starts 1 MiB past its 8-byte
    item."""
    dtype = FakeDType('V8', (3, '|', None, ('a', ), {
        'a': (np.dtype('f8'), 1 << 20)
    }, 8, 1, 16))
    return FakeArray(dtype, (4, ), b'\0' * 32)


class StridedTensor:
    """Pickles as a tensor of ``size``/``stride`` over ``storage``."""

    def __init__(self, storage, size: tuple, stride: tuple) -> None:
        self.storage = storage
        self.size = size
        self.stride = stride

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, (self.storage, 0, self.size,
                                                  self.stride, False,
                                                  OrderedDict()))


def stride_zero_tensor(numel: int = 2**31) -> StridedTensor:
    """``numel`` fp16 elements over a 1-element storage (stride 0)."""
    storage = torch.zeros(1, dtype=torch.float16).untyped_storage()
    return StridedTensor(
        torch.storage.TypedStorage(
            wrap_storage=storage, dtype=torch.float16, _internal=True),
        (numel, ), (0, ))


# -- raw zip writing ---------------------------------------------------------
def _dos_time() -> tuple:
    return (0, 33)  # 1980-01-01 00:00


def write_zip(path: str,
              records: Dict[str, bytes],
              raw: Optional[Dict[str, tuple]] = None) -> None:
    """Write a zip file. ``records`` are stored as they are; ``raw`` maps a
    name to ``(method, payload, crc, uncompressed_size)`` written verbatim
    (e.g. a deflate stream), so its declared size need not exist anywhere.
    """
    entries = [(n, 0, d, zlib.crc32(d), len(d)) for n, d in records.items()]
    entries += [(n, *v) for n, v in (raw or {}).items()]
    out = io.BytesIO()
    central = []
    for name, method, payload, crc, size in entries:
        offset = out.tell()
        fname = name.encode()
        t, d = _dos_time()
        out.write(
            struct.pack('<4s5H3L2H', b'PK\x03\x04', 20, 0, method, t, d, crc,
                        len(payload), size, len(fname), 0))
        out.write(fname)
        out.write(payload)
        central.append(
            struct.pack('<4s6H3L5H2L', b'PK\x01\x02',
                        20, 20, 0, method, t, d, crc, len(payload), size,
                        len(fname), 0, 0, 0, 0, 0, offset) + fname)
    start = out.tell()
    for entry in central:
        out.write(entry)
    out.write(
        struct.pack('<4s4H2LH', b'PK\x05\x06', 0, 0, len(central),
                    len(central),
                    out.tell() - start, start, 0))
    with open(path, 'wb') as f:
        f.write(out.getvalue())


def deflated_zeros(nbytes: int, block: int = 1 << 20) -> tuple:
    """A raw deflate stream of ``nbytes`` zero bytes made of repeated
    full-flushed blocks (built without ever holding ``nbytes``), with its
    CRC-32: ``(payload, crc)``."""
    assert nbytes % block == 0
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = comp.compress(bytes(block)) + comp.flush(zlib.Z_FULL_FLUSH)
    tail = comp.flush(zlib.Z_FINISH)
    crc, zeros = 0, bytes(block)
    for _ in range(nbytes // block):
        crc = zlib.crc32(zeros, crc)
    return chunk * (nbytes // block) + tail, crc


def records_of(path: str) -> Dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


class FakeStorage:
    """A storage that exists only as a persistent id: ``('storage',
    torch.<dtype_name>, key, 'cpu', numel)``."""

    def __init__(self,
                 key: str,
                 numel: int,
                 dtype_name: str = 'FloatStorage') -> None:
        self.key = key
        self.numel = numel
        self.dtype_name = dtype_name


class _Pickler(pickle.Pickler):

    def persistent_id(self, obj):
        if isinstance(obj, FakeStorage):
            return ('storage', getattr(torch, obj.dtype_name), obj.key, 'cpu',
                    obj.numel)
        return None


def crafted_pickle(obj) -> bytes:
    """``obj`` pickled as torch.save would (protocol 2), with
    :class:`FakeStorage` objects as storage persistent ids (and
    :class:`_TorchModule` as the TorchScript class ``__torch__.Module``)."""
    out = io.BytesIO()
    fake = types.ModuleType('__torch__')
    fake.Module = _TorchModule
    saved = sys.modules.get('__torch__')
    sys.modules['__torch__'] = fake
    try:
        _Pickler(out, protocol=2).dump(obj)
    finally:
        if saved is None:
            del sys.modules['__torch__']
        else:
            sys.modules['__torch__'] = saved
    return out.getvalue()


def crafted_checkpoint(path: str,
                       obj,
                       records: Dict[str, bytes] = None,
                       raw: Optional[Dict[str, tuple]] = None,
                       prefix: str = 'archive') -> None:
    """A zip checkpoint: ``obj`` as data.pkl plus tensor ``records``
    (``{key: bytes}`` under ``<prefix>/data/``) and ``raw`` ones."""
    files = {
        f'{prefix}/data.pkl': crafted_pickle(obj),
        f'{prefix}/byteorder': b'little',
        f'{prefix}/version': b'3\n'
    }
    for key, data in (records or {}).items():
        files[f'{prefix}/data/{key}'] = data
    write_zip(
        path,
        files,
        raw={
            f'{prefix}/data/{k}': v
            for k, v in (raw or {}).items()
        })


def deflate_bomb(path: str, nbytes: int, torchscript: bool = False) -> None:
    """A checkpoint (or TorchScript-shaped archive) whose one fp32 tensor
    of ``nbytes`` is stored as a deflated record: about nbytes / 1000 on
    disk."""
    numel = nbytes // 4
    tensor = StridedTensor(FakeStorage('0', numel), (numel, ), (1, ))
    payload, crc = deflated_zeros(nbytes)
    if torchscript:
        obj = _ScriptModule(dict(weight=tensor))
        files = {
            'm/data.pkl': crafted_pickle(obj),
            'm/constants.pkl': pickle.dumps((), protocol=2),
            'm/version': b'3\n',
            'm/code/__torch__.py': b''
        }
        write_zip(path, files, raw={'m/data/0': (8, payload, crc, nbytes)})
    else:
        crafted_checkpoint(
            path, {'state_dict': {
                'weight': tensor
            }},
            raw={'0': (8, payload, crc, nbytes)})


class _ScriptModule:
    """Pickles as a ``__torch__.Module`` record with ``state``."""

    def __init__(self, state: dict) -> None:
        self.state = state

    def __reduce__(self):
        return (_TorchModule, (), self.state)


class _TorchModule:
    pass


_TorchModule.__module__ = '__torch__'
_TorchModule.__qualname__ = 'Module'
_TorchModule.__name__ = 'Module'


def nested_torchscript(path: str, depth: int) -> None:
    """A TorchScript-shaped archive whose module records nest ``depth``
    deep (``__torch__.M`` objects, each holding the next as 'c')."""
    body = io.BytesIO()
    body.write(pickle.PROTO + b'\x02')
    opening = (b'c__torch__\nM\n' + pickle.EMPTY_TUPLE + pickle.NEWOBJ +
               pickle.EMPTY_DICT + pickle.SHORT_BINUNICODE + b'\x01c')
    for _ in range(depth):
        body.write(opening)
    body.write(pickle.NONE)
    for _ in range(depth):
        body.write(pickle.SETITEM + pickle.BUILD)
    body.write(pickle.STOP)
    write_zip(
        path, {
            'm/data.pkl': body.getvalue(),
            'm/constants.pkl': pickle.dumps((), protocol=2),
            'm/version': b'3\n',
            'm/code/__torch__.py': b''
        })


def replace_records(path: str, src: str, changes: Dict[str, bytes],
                    drop: Iterable[str] = ()) -> None:  # yapf: disable
    """Copy zip ``src`` with some records replaced (CRCs recomputed)."""
    records = records_of(src)
    for name in drop:
        records.pop(name)
    for name, data in changes.items():
        records[name] = data
    write_zip(path, records)
