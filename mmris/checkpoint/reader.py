# Copyright (c) mmris contributors. All rights reserved.
"""Reading checkpoint files as data, with memory bounded by their size.

Three layouts, one reader each, all on :class:`~.unpickler.DataUnpickler`:

* zip checkpoints (``torch.save`` since PyTorch 1.6, MMEngine, the
  official RIS repositories, Meta's DINOv2 files): :func:`read_zip`;
* TorchScript archives (``torch.jit.save``: OpenAI's ``ViT-B-16.pt``,
  ``RN50.pt``, ``RN101.pt``): :func:`read_torchscript_weights` reads the
  module tree of ``data.pkl`` as inert records; ``torch.jit.load``, which
  runs code of the archive, is never called;
* legacy ``torch.save`` files (before PyTorch 1.6): :func:`read_legacy`.

Before anything is allocated, a zip file must be one that ``torch.save``
could have written: every record stored uncompressed (a deflated record
can expand a few megabytes into gigabytes), no two records sharing bytes,
no duplicate names, all records under one folder. Each storage record must
hold exactly the bytes its tensors' persistent id declares, and every
record passes its CRC-32 check as it is read. So the bytes allocated for
tensors never exceed the file's size (views are checked by
:func:`~.unpickler.check_view`; together they may cover their storages at
most :data:`MAX_VIEW_FACTOR` times, e.g. tied weights).

A legacy file has no checksums: it is read the same way, but damaged
values cannot be detected, which :class:`~.errors.LegacyCheckpointWarning`
says.
"""
import io
import os
import struct
import sys
import warnings
import zipfile
import zlib
from collections import OrderedDict
from typing import Any, BinaryIO, Dict, List, Tuple

import torch
from torch import Tensor

from .errors import (CorruptCheckpointError, LegacyCheckpointWarning,
                     UnsafeCheckpointError)
from .unpickler import DataUnpickler, ScriptRecord, StorageRecord, StorageType

__all__ = [
    'MAX_VIEW_FACTOR', 'read_checkpoint_file', 'read_zip', 'read_legacy',
    'read_torchscript_weights', 'is_torchscript_archive', 'describe_file',
    'verify_zip_records'
]

#: Tensors may cover the bytes of their storages at most this many times
#: (plus :data:`VIEW_SLACK` bytes): tied weights appear twice.
MAX_VIEW_FACTOR = 2
VIEW_SLACK = 1 << 20
#: Deepest module nesting of a TorchScript archive that is read.
MAX_MODULE_DEPTH = 64

ZIP_MAGIC = b'PK\x03\x04'
#: The legacy format starts with the pickled magic number, as LONG1
#: (protocol >= 2) or as decimal text (protocols 0 and 1).
LEGACY_MAGIC = (b'\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19',
                b'119547037146038801333356')
_LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_LOCAL_HEADER = struct.Struct('<4s2B4HL2L2H')


def describe_file(head: bytes) -> str:
    """What a file that is not a checkpoint looks like (for messages)."""
    if head.startswith(b'PK'):
        return 'a zip archive'
    if head.lstrip().startswith((b'<', b'{', b'[')):
        return 'a text (HTML / JSON) file'
    if head[257:262] == b'ustar':
        return 'a tar archive'
    return f'a file starting with {head[:16]!r}'


def _loader_error(path: str, err: BaseException) -> Exception:
    """Turn an error raised while unpickling into a named one."""
    if isinstance(err, UnsafeCheckpointError):
        return UnsafeCheckpointError(
            f'Refusing to load checkpoint "{path}": it pickles something '
            f'outside the allow-list of plain data ({err}). Unpickling it '
            'could execute code or corrupt memory. If you trust the file, '
            'opt in explicitly with `--unsafe-load` (tools) or '
            '`mmris.checkpoint.unsafe_checkpoint_loading()` (Python).')
    if isinstance(err, CorruptCheckpointError):
        return err
    if isinstance(err, RecursionError):
        detail = 'objects nested too deeply'
    else:
        detail = f'{type(err).__name__}: {err}'
    return CorruptCheckpointError(
        f'Checkpoint "{path}" is damaged or malformed: its pickle cannot be '
        f'read as data ({detail}).')


# ---------------------------------------------------------------------------
# zip files
# ---------------------------------------------------------------------------
def _is_read(name: str) -> bool:
    """Whether a record of a checkpoint is ever read (its pickle, byte
    order, format version and tensor data; not TorchScript code)."""
    parts = name.split('/')
    return len(parts) >= 2 and (parts[1] in ('data.pkl', 'byteorder',
                                             'version', '.format_version')
                                or parts[1] == 'data')


class _ZipRecords:
    """The records of a checked zip file, read by offset."""

    def __init__(self, f: BinaryIO, path: str) -> None:
        self.f = f
        self.path = path
        f.seek(0, os.SEEK_END)
        self.size = f.tell()
        f.seek(0)
        try:
            zf = zipfile.ZipFile(f)
        except Exception as err:  # zipfile raises many types on bad input
            raise CorruptCheckpointError(
                f'Checkpoint "{path}" is damaged: it is not a readable zip '
                f'archive ({err}); it was probably truncated by an '
                'interrupted save or copy.') from None
        self.infos: Dict[str, zipfile.ZipInfo] = OrderedDict()
        self.data_start: Dict[str, int] = {}
        #: records CRC-checked (or never to be read)
        self.verified: set = set()
        spans: List[Tuple[int, int, str]] = []
        for info in zf.infolist():
            name = info.filename
            if name in self.infos:
                raise self._bad(f'record "{name}" appears twice')
            if info.flag_bits & 0x1:
                raise self._bad(f'record "{name}" is encrypted')
            if info.compress_type != zipfile.ZIP_STORED:
                # torch.jit.save deflates its code/ and debug records, which
                # are never read here; anything read must be stored as is
                if _is_read(name):
                    raise self._bad(
                        f'record "{name}" is compressed; torch.save stores '
                        'the records it reads uncompressed (a compressed '
                        'record can expand to far more memory than the file '
                        'holds)')
                self.verified.add(name)
            elif info.compress_size != info.file_size:
                raise self._bad(f'record "{name}" declares {info.file_size} '
                                f'bytes but stores {info.compress_size}')
            start = self._data_offset(info)
            end = start + info.compress_size
            if end > self.size:
                raise self._bad(f'record "{name}" runs past the end of the '
                                'file (truncated?)')
            spans.append((info.header_offset, end, name))
            self.infos[name] = info
            self.data_start[name] = start
        spans.sort()
        for (_, end, name), (begin, _, other) in zip(spans, spans[1:]):
            if begin < end:
                raise self._bad(f'records "{name}" and "{other}" share bytes')
        folders = {name.split('/', 1)[0] for name in self.infos}
        pickles = [
            n for n in self.infos
            if n.count('/') == 1 and n.endswith('/data.pkl')
        ]
        if len(folders) != 1 or len(pickles) != 1:
            raise self._bad('expected one folder holding one data.pkl, found '
                            f'{sorted(folders)[:5]} and {pickles[:5]}')
        self.prefix = pickles[0][:-len('data.pkl')]

    def _bad(self, what: str) -> CorruptCheckpointError:
        return CorruptCheckpointError(
            f'Checkpoint "{self.path}" is malformed: {what}. It was not '
            'written by torch.save / torch.jit.save.')

    def _data_offset(self, info: zipfile.ZipInfo) -> int:
        if not 0 <= info.header_offset <= self.size - _LOCAL_HEADER.size:
            raise self._bad(f'record "{info.filename}" starts outside the '
                            'file')
        self.f.seek(info.header_offset)
        header = self.f.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size or \
                header[:4] != ZIP_MAGIC:
            raise self._bad(f'record "{info.filename}" has no local header')
        fields = _LOCAL_HEADER.unpack(header)
        return info.header_offset + _LOCAL_HEADER.size + fields[10] + \
            fields[11]

    def read_into(self, name: str, buffer: memoryview) -> None:
        """Read record ``name`` (exactly ``len(buffer)`` bytes) into
        ``buffer`` and check its CRC-32."""
        info = self.infos[name]
        if len(buffer) != info.file_size:
            raise self._bad(f'record "{name}" holds {info.file_size} bytes, '
                            f'{len(buffer)} expected')
        self.f.seek(self.data_start[name])
        if self.f.readinto(buffer) != len(buffer):
            raise CorruptCheckpointError(
                f'Checkpoint "{self.path}" is damaged: record "{name}" is '
                'truncated.')
        self._check_crc(name, zlib.crc32(buffer))

    def read(self, name: str) -> bytes:
        """A (small) record as bytes, CRC-checked."""
        data = bytearray(self.infos[name].file_size)
        self.read_into(name, memoryview(data))
        return bytes(data)

    def verify_rest(self) -> None:
        """CRC-check the records not read yet, in 1 MiB chunks."""
        for name, info in self.infos.items():
            if name in self.verified:
                continue
            self.f.seek(self.data_start[name])
            crc, left = 0, info.file_size
            while left:
                chunk = self.f.read(min(left, 1 << 20))
                if not chunk:
                    raise CorruptCheckpointError(
                        f'Checkpoint "{self.path}" is damaged: record '
                        f'"{name}" is truncated.')
                crc = zlib.crc32(chunk, crc)
                left -= len(chunk)
            self._check_crc(name, crc)

    def _check_crc(self, name: str, crc: int) -> None:
        if crc != self.infos[name].CRC:
            raise CorruptCheckpointError(
                f'Checkpoint "{self.path}" is damaged: record "{name}" fails '
                'its CRC-32 check (a bad copy or disk error); download or '
                'save it again.')
        self.verified.add(name)


class _StorageLoader:
    """``persistent_load`` of zip checkpoints and TorchScript archives."""

    def __init__(self, records: _ZipRecords) -> None:
        self.records = records
        self.storages: Dict[str, StorageRecord] = {}
        self.nbytes = 0

    def __call__(self, pid: Any) -> StorageRecord:
        if not (type(pid) is tuple and len(pid) == 5 and pid[0] == 'storage'
                and isinstance(pid[1], StorageType) and type(pid[2]) is str
                and type(pid[4]) is int and pid[4] >= 0):
            raise pickle_error(f'unknown persistent id {_short(pid)}')
        _, storage_type, key, _location, numel = pid
        found = self.storages.get(key)
        if found is not None:
            if found.flat.dtype != storage_type.dtype or \
                    found.flat.numel() != numel:
                raise pickle_error(f'storage "{key}" declared twice with '
                                   'different types or sizes')
            return found
        name = f'{self.records.prefix}data/{key}'
        info = self.records.infos.get(name)
        if info is None:
            raise CorruptCheckpointError(
                f'Checkpoint "{self.records.path}" is damaged: tensor record '
                f'"{name}" is missing.')
        itemsize = torch.empty(0, dtype=storage_type.dtype).element_size()
        if info.file_size != numel * itemsize:
            raise CorruptCheckpointError(
                f'Checkpoint "{self.records.path}" is damaged: tensor record '
                f'"{name}" holds {info.file_size} bytes, but its tensors '
                f'declare {numel} x {itemsize}.')
        flat = torch.empty(numel, dtype=storage_type.dtype)
        self.records.read_into(name, _bytes_view(flat))
        self.nbytes += info.file_size
        record = StorageRecord(flat, key)
        self.storages[key] = record
        return record


def _bytes_view(tensor: Tensor) -> memoryview:
    if tensor.numel() == 0:
        return memoryview(bytearray(0))
    return memoryview(tensor.view(torch.uint8).numpy()).cast('B')


def pickle_error(what: str) -> Exception:
    import pickle
    return pickle.UnpicklingError(f'malformed: {what}')


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, (str, int, tuple)) else \
        f'<{type(value).__name__}>'
    return text if len(text) <= 80 else text[:77] + '...'


def _unpickle(data: bytes,
              persistent_load: Any,
              path: str,
              torchscript: bool = False) -> Tuple[Any, DataUnpickler]:
    unpickler = DataUnpickler(
        io.BytesIO(data), persistent_load, torchscript=torchscript)
    try:
        return unpickler.load(), unpickler
    except (CorruptCheckpointError, UnsafeCheckpointError) as err:
        raise _loader_error(path, err) from None
    except Exception as err:  # malformed pickles raise any built-in error
        raise _loader_error(path, err) from None


def _check_views(unpickler: DataUnpickler, storage_bytes: int,
                 path: str) -> None:
    if unpickler.view_bytes > MAX_VIEW_FACTOR * storage_bytes + VIEW_SLACK:
        raise CorruptCheckpointError(
            f'Checkpoint "{path}" is malformed: its tensors view '
            f'{unpickler.view_bytes} bytes of {storage_bytes} bytes of '
            'storage (a file that expands in memory far beyond its size).')


def _check_byteorder(records: _ZipRecords) -> None:
    name = f'{records.prefix}byteorder'
    if name in records.infos:
        order = records.read(name)
        if order not in (b'little', b'big'):
            raise records._bad(f'byteorder record holds {order[:16]!r}')
        if order.decode() != sys.byteorder:
            raise CorruptCheckpointError(
                f'Checkpoint "{records.path}" stores {order.decode()}-endian '
                f'tensors; this machine is {sys.byteorder}-endian.')


def read_zip(f: BinaryIO, path: str, torchscript: bool = False) -> Any:
    """The object pickled in a zip checkpoint (or TorchScript archive)."""
    records = _ZipRecords(f, path)
    _check_byteorder(records)
    data = records.read(f'{records.prefix}data.pkl')
    storages = _StorageLoader(records)
    result, unpickler = _unpickle(data, storages, path, torchscript)
    _check_views(unpickler, storages.nbytes, path)
    records.verify_rest()
    return result


def verify_zip_records(f: BinaryIO, path: str) -> None:
    """Check the structure and every CRC-32 of a zip checkpoint without
    unpickling it."""
    records = _ZipRecords(f, path)
    records.verify_rest()


# ---------------------------------------------------------------------------
# legacy files
# ---------------------------------------------------------------------------
class _BoundedReader:
    """``read(n)`` returns at most the bytes left in the file, so a length
    field of a pickle cannot make Python allocate more than the file."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self.f = f
        self.size = size

    def read(self, n: int = -1) -> bytes:
        left = self.size - self.f.tell()
        return self.f.read(left if n < 0 else max(0, min(n, left)))

    def readline(self) -> bytes:
        return self.f.readline(max(0, self.size - self.f.tell()))


def read_legacy(f: BinaryIO, path: str) -> Any:
    """The object of a legacy (pre-zip) ``torch.save`` file.

    The file is: pickled magic number, protocol version, system info, the
    object (storages as persistent ids), the list of storage keys, then
    each storage as its element count (int64) and raw bytes. The storages
    its pickle declares must fit in the rest of the file before they are
    allocated. Warns with :class:`~.errors.LegacyCheckpointWarning`: the
    format has no checksums.
    """
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(0)
    reader = _BoundedReader(f, size)

    def header(what: str) -> Any:
        return _unpickle_stream(reader, _no_storage, path, what)[0]

    if header('magic number') != _LEGACY_MAGIC_NUMBER:
        raise CorruptCheckpointError(
            f'Checkpoint "{path}" is damaged: wrong magic number.')
    if header('protocol version') != _LEGACY_PROTOCOL:
        raise CorruptCheckpointError(
            f'Checkpoint "{path}" has an unknown legacy protocol version.')
    info = header('system info')
    if not isinstance(info, dict) or info.get('little_endian') is not (
            sys.byteorder == 'little'):
        raise CorruptCheckpointError(
            f'Checkpoint "{path}" was written on a machine of another byte '
            'order (or its header is damaged).')
    storages: Dict[str, StorageRecord] = {}
    views: Dict[str, StorageRecord] = {}
    declared = [0]

    def persistent_load(pid: Any) -> StorageRecord:
        if not (type(pid) is tuple and len(pid) == 6 and pid[0] == 'storage'
                and isinstance(pid[1], StorageType) and type(pid[2]) is str
                and type(pid[4]) is int and pid[4] >= 0):
            raise pickle_error(f'unknown persistent id {_short(pid)}')
        _, storage_type, key, _location, numel, view = pid
        record = storages.get(key)
        if record is None:
            nbytes = numel * torch.empty(
                0, dtype=storage_type.dtype).element_size()
            declared[0] += nbytes
            if declared[0] > size - f.tell():
                raise CorruptCheckpointError(
                    f'Checkpoint "{path}" is damaged: its tensors declare '
                    f'{declared[0]} bytes of storage, more than the '
                    f'{size - f.tell()} bytes left in the file.')
            record = StorageRecord(
                torch.empty(numel, dtype=storage_type.dtype), key)
            storages[key] = record
        elif record.flat.dtype != storage_type.dtype or \
                record.flat.numel() != numel:
            raise pickle_error(f'storage "{key}" declared twice differently')
        if view is None:
            return record
        if not (type(view) is tuple and len(view) == 3 and type(view[0]) is str
                and type(view[1]) is int and type(view[2]) is int and view[1]
                >= 0 and view[2] >= 0 and view[1] + view[2] <= numel):
            raise pickle_error('storage view outside its storage')
        if view[0] not in views:
            views[view[0]] = StorageRecord(
                record.flat[view[1]:view[1] + view[2]], view[0])
        return views[view[0]]

    result, unpickler = _unpickle_stream(reader, persistent_load, path,
                                         'object')
    keys = header('storage keys')
    if type(keys) is not list or len(keys) != len(storages) or \
            set(keys) != set(storages):
        raise CorruptCheckpointError(
            f'Checkpoint "{path}" is damaged: its storage list does not '
            'match the tensors of its pickle.')
    for key in keys:
        flat = storages[key].flat
        head = f.read(8)
        if len(head) != 8 or struct.unpack('<q', head)[0] != flat.numel():
            raise CorruptCheckpointError(
                f'Checkpoint "{path}" is damaged: storage "{key}" does not '
                f'declare its {flat.numel()} elements.')
        nbytes = flat.numel() * flat.element_size()
        if f.readinto(_bytes_view(flat)) != nbytes:
            raise CorruptCheckpointError(
                f'Checkpoint "{path}" is damaged: storage "{key}" is '
                'truncated.')
    _check_views(unpickler, declared[0], path)
    warnings.warn(
        f'"{path}" is a legacy (pre-1.6) torch.save file: the format has no '
        'checksums, so damage to its values cannot be detected. Re-save it '
        'with torch.save (zip format) to get a file that is verified on '
        'every load.',
        LegacyCheckpointWarning,
        stacklevel=3)
    return result


def _no_storage(pid: Any) -> Any:
    raise pickle_error('a storage in a legacy header')


def _unpickle_stream(reader: _BoundedReader, persistent_load: Any, path: str,
                     what: str) -> Tuple[Any, DataUnpickler]:
    unpickler = DataUnpickler(reader, persistent_load)
    try:
        return unpickler.load(), unpickler
    except Exception as err:
        if isinstance(err, EOFError):
            err = CorruptCheckpointError(
                f'Checkpoint "{path}" is damaged: it ends inside its {what} '
                '(truncated?).')
        raise _loader_error(path, err) from None


# ---------------------------------------------------------------------------
# any checkpoint file
# ---------------------------------------------------------------------------
def read_checkpoint_file(path: Any) -> Any:
    """The object saved in a checkpoint file (zip or legacy layout), read as
    data.

    Args:
        path (str | PathLike | file-like): A local file, or a seekable
            binary file object (rewound afterwards).

    Raises:
        CorruptCheckpointError: Damaged, malformed or not a checkpoint.
        UnsafeCheckpointError: It pickles something outside the allow-list.
    """
    if isinstance(path, (str, os.PathLike)):
        name = str(path)
        with open(path, 'rb') as f:
            return _read_open(f, name)
    name = str(getattr(path, 'name', '<buffer>'))
    start = path.tell()
    try:
        return _read_open(path, name)
    finally:
        path.seek(start)


def _read_open(f: BinaryIO, name: str) -> Any:
    head = f.read(512)
    f.seek(0)
    if not head:
        raise CorruptCheckpointError(
            f'Checkpoint "{name}" is empty (0 bytes): not a PyTorch '
            'checkpoint (an interrupted save or copy?).')
    if head.startswith(ZIP_MAGIC):
        return read_zip(f, name)
    if any(magic in head[:64] for magic in LEGACY_MAGIC):
        return read_legacy(f, name)
    raise CorruptCheckpointError(
        f'"{name}" is not a PyTorch checkpoint: it is neither a zip archive '
        f'written by torch.save nor a legacy torch.save file (it is '
        f'{describe_file(head)}).')


# ---------------------------------------------------------------------------
# TorchScript archives
# ---------------------------------------------------------------------------
def is_torchscript_archive(path: str) -> bool:
    """Whether ``path`` is a TorchScript zip archive (``torch.jit.save``):
    one with ``<name>/constants.pkl`` or ``<name>/code/``."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except Exception:  # not a readable zip: read_zip says why, if asked
        return False
    prefixes = {
        n[:-len('data.pkl')]
        for n in names if n.endswith('data.pkl') and n.count('/') == 1
    }
    return any(name == f'{p}constants.pkl' or name.startswith(f'{p}code/')
               for p in prefixes for name in names)


def read_torchscript_weights(path: str) -> 'OrderedDict[str, Tensor]':
    """The parameters and buffers of a TorchScript archive, read as data.

    ``data.pkl`` is unpickled by :class:`~.unpickler.DataUnpickler` with
    every ``__torch__.*`` object as an inert record of its attributes;
    nothing of ``code/`` or ``constants.pkl`` is read. Tensors come back
    on the CPU in their stored dtype, under the module's state-dict names.

    Raises:
        UnsafeCheckpointError: ``data.pkl`` pickles anything but tensors,
            storages, containers and module records, or a module restores
            itself with its own ``__setstate__`` (TorchScript code).
        CorruptCheckpointError: The archive is damaged or malformed.
    """
    with open(path, 'rb') as f:
        root = read_zip(f, path, torchscript=True)
    if not isinstance(root, ScriptRecord):
        raise CorruptCheckpointError(
            f'TorchScript archive "{path}" holds no module (data.pkl gives '
            f'{type(root).__name__}).')
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    stack = [(root, '', 0)]
    while stack:
        record, prefix, depth = stack.pop()
        if depth > MAX_MODULE_DEPTH:
            raise CorruptCheckpointError(
                f'TorchScript archive "{path}" nests modules more than '
                f'{MAX_MODULE_DEPTH} deep (at "{prefix[:80]}...").')
        if not isinstance(record.state, dict):
            raise UnsafeCheckpointError(
                f'Refusing to read TorchScript archive "{path}": '
                f'{record.type_name} restores itself with its own '
                '__setstate__ (TorchScript code that torch.jit.load would '
                'run) instead of plain attributes. mmris reads only archives '
                "of plain modules such as OpenAI's ViT-B-16.pt / RN50.pt / "
                'RN101.pt.')
        children = []
        for key, value in record.state.items():
            if type(key) is not str:
                continue
            if isinstance(value, Tensor):
                out[prefix + key] = value
            elif isinstance(value, ScriptRecord):
                children.append((value, f'{prefix}{key}.', depth + 1))
        stack.extend(reversed(children))
    return out
