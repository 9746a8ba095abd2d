# Copyright (c) mmris contributors. All rights reserved.
"""A data-only unpickler for the pickles inside checkpoint files.

``torch.load(weights_only=True)`` was not enough (see the README, "Security
and reliability"): its allow-list is process-wide, it lets a pickle call
``numpy.dtype.__setstate__`` with crafted flags (an object dtype whose
bytes become pointers, fields that read past their buffer), and it builds
tensors whose size and strides need far more memory than the file holds.
:class:`DataUnpickler` is Python's own pure-Python unpickler with every
operation that can run code or touch native state replaced:

* globals resolve only through an explicit table (:data:`CHECKPOINT_GLOBALS`,
  plus the TorchScript records of :data:`TORCHSCRIPT_GLOBALS`); every entry
  is a stand-in written here that validates its arguments, never the real
  callable (``builtins.getattr`` answers only
  ``getattr(HistoryBuffer, <statistic>)``);
* ``REDUCE`` calls only those stand-ins; ``NEWOBJ``/``OBJ``/``INST`` create
  only ``HistoryBuffer`` and TorchScript module records; ``BUILD`` sets the
  state of exactly three kinds of object, after checking it: numpy arrays
  (plain numeric dtype, byte count equal to the shape), numpy dtypes (the
  canonical state only; ``__setstate__`` is never called) and
  ``HistoryBuffer`` (its own statistics only);
* numpy dtypes are the builtin numeric ones rebuilt from their code
  (``'f4'``, ``'i8'``, ...): no object, structured or big-endian dtype;
* dictionary keys and set elements are scalars or flat tuples of scalars
  (hashing a deeply nested tuple would overflow the C stack), appends and
  item assignments go to lists and dicts only, and the protocol-5 buffer
  operations and the extension registry are refused;
* tensors are views of storages the caller provides, checked to lie
  inside their storage without overlapping themselves, and the bytes of all
  tensors together are bounded by the bytes of the storages
  (:attr:`DataUnpickler.view_bytes`);
* the loaded object graph must be acyclic and at most :data:`MAX_DEPTH`
  containers deep.

What MMEngine writes (measured: ``Runner`` checkpoints with Adam,
``MultiStepLR``, AMP loss scaler, message hub, RNG states) is exactly what
the table holds: ``collections.OrderedDict`` / ``Counter``,
``_codecs.encode`` (bytes under pickle protocol 2), ``builtins.getattr``,
``HistoryBuffer``, ``numpy.dtype``, ``numpy.ndarray`` with ``_reconstruct``
and ``scalar``, ``torch.*Storage`` and ``torch._utils._rebuild_tensor_v2``.
"""
import codecs
import collections
import pickle
import sys
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from .errors import UnsafeCheckpointError

__all__ = [
    'DataUnpickler', 'StorageRecord', 'CHECKPOINT_GLOBALS',
    'TORCHSCRIPT_GLOBALS', 'MAX_DEPTH', 'check_view'
]

#: Deepest nesting of containers a loaded object may have.
MAX_DEPTH = 100
#: Most dimensions a tensor or array may have.
MAX_NDIM = 64

_SCALARS = (str, int, float, bool, bytes, type(None))

#: numpy dtypes a checkpoint may hold (builtin numeric types, native order).
_NUMPY_CODES = ('b1', 'i1', 'i2', 'i4', 'i8', 'u1', 'u2', 'u4', 'u8', 'f2',
                'f4', 'f8', 'c8', 'c16')
_NUMPY_DTYPES = {code: np.dtype(code) for code in _NUMPY_CODES}

#: ``torch.<Name>Storage`` -> dtype (zip, legacy and TorchScript files).
STORAGE_DTYPES = {
    'DoubleStorage': torch.float64,
    'FloatStorage': torch.float32,
    'HalfStorage': torch.float16,
    'BFloat16Storage': torch.bfloat16,
    'LongStorage': torch.int64,
    'IntStorage': torch.int32,
    'ShortStorage': torch.int16,
    'CharStorage': torch.int8,
    'ByteStorage': torch.uint8,
    'BoolStorage': torch.bool,
    'ComplexFloatStorage': torch.complex64,
    'ComplexDoubleStorage': torch.complex128,
    'UntypedStorage': torch.uint8,
}


# ---------------------------------------------------------------------------
# Markers returned by find_class
# ---------------------------------------------------------------------------
class Allowed:
    """A global of the table: ``call`` is its validated stand-in (None for
    a marker that can only be passed as an argument)."""

    __slots__ = ('name', 'call', 'new')

    def __init__(self,
                 name: str,
                 call: Optional[Callable] = None,
                 new: Optional[Callable] = None) -> None:
        self.name = name
        self.call = call
        self.new = new

    def __repr__(self) -> str:
        return self.name


class StorageType(Allowed):
    """``torch.<Name>Storage`` in a persistent id: only its dtype."""

    __slots__ = ('dtype', )

    def __init__(self, name: str, dtype: torch.dtype) -> None:
        super().__init__(name)
        self.dtype = dtype


class StorageRecord:
    """A storage read from the file: a flat tensor of ``numel`` elements."""

    __slots__ = ('flat', 'key')

    def __init__(self, flat: Tensor, key: str) -> None:
        self.flat = flat
        self.key = key


class ScriptRecord:
    """Inert stand-in for a ``__torch__.*`` object of a TorchScript archive:
    keeps the pickled attributes, runs no code of the archive."""

    __slots__ = ('type_name', 'state', 'built')

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name
        self.state: Any = None
        self.built = False


_NDARRAY = Allowed('numpy.ndarray')


def _refuse(what: str) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(f'refused: {what}')


def _malformed(what: str) -> pickle.UnpicklingError:
    return pickle.UnpicklingError(f'malformed: {what}')


def _ints(value: Any, what: str) -> Tuple[int, ...]:
    if not isinstance(value, (tuple, list, torch.Size)) or \
            len(value) > MAX_NDIM or \
            not all(type(v) is int and 0 <= v < 2**62 for v in value):
        raise _malformed(f'{what} must be a tuple of at most {MAX_NDIM} '
                         f'non-negative ints, got {_show(value)}')
    return tuple(value)


def _show(value: Any) -> str:
    """A short, side-effect free description of an unpickled value."""
    if isinstance(value, Allowed):
        return value.name
    if isinstance(value, _SCALARS):
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + '...'
    return f'<{type(value).__module__}.{type(value).__qualname__}>'


# ---------------------------------------------------------------------------
# Tensors
# ---------------------------------------------------------------------------
def check_view(size: Tuple[int, ...], stride: Tuple[int, ...], offset: int,
               numel: int) -> None:
    """Check that a strided view lies inside a storage of ``numel``
    elements and that no two of its elements share memory.

    A view that overlaps itself (e.g. a stride of 0) would turn a few bytes
    of the file into a tensor of any size once copied (``.float()``), so
    it is refused like one that reads past its storage.

    Raises:
        pickle.UnpicklingError: Naming what does not fit.
    """
    if len(size) != len(stride):
        raise _malformed(f'tensor size {size} and stride {stride} differ '
                         'in length')
    if type(offset) is not int or not 0 <= offset <= numel:
        raise _malformed(f'tensor offset {_show(offset)} outside its storage '
                         f'of {numel} elements')
    if any(s == 0 for s in size):
        return
    last = offset + sum((s - 1) * st for s, st in zip(size, stride))
    if last >= numel:
        raise _malformed(f'tensor of size {size}, stride {stride} and offset '
                         f'{offset} reads element {last} of a storage of '
                         f'{numel} elements')
    extent = 1
    for s, st in sorted(((s, st) for s, st in zip(size, stride) if s > 1),
                        key=lambda p: p[1]):
        if st < extent:
            raise _malformed(f'tensor of size {size} and stride {stride} '
                             'overlaps itself (its elements share memory)')
        extent += st * (s - 1)


def _check_hooks(hooks: Any, metadata: Any = None) -> None:
    if not isinstance(hooks, dict) or hooks:
        raise _refuse('a tensor with backward hooks')
    if metadata not in (None, {}):
        raise _refuse(f'tensor metadata {_show(metadata)}')


# ---------------------------------------------------------------------------
# The unpickler
# ---------------------------------------------------------------------------
class DataUnpickler(pickle._Unpickler):
    """Unpickle plain data only (module docstring).

    Args:
        file: A binary file object whose ``read(n)`` returns at most the
            bytes that are there (``io.BytesIO``, or a bounded reader).
        persistent_load (Callable): ``pid -> StorageRecord`` for the
            storages of the file.
        torchscript (bool): Also accept the records of a TorchScript
            archive (``__torch__.*`` objects, ``torch.jit._pickle``
            helpers). Defaults to False.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self,
                 file,
                 persistent_load: Callable[[Any], Any],
                 torchscript: bool = False) -> None:
        super().__init__(file, encoding='utf-8')
        self._persistent = persistent_load
        self.torchscript = torchscript
        self.view_bytes = 0
        self._fresh_arrays: Dict[int, np.ndarray] = {}

    # -- globals ----------------------------------------------------------
    def find_class(self, module: str, name: str) -> Any:
        if not isinstance(module, str) or not isinstance(name, str):
            raise _malformed('a global whose name is not a string')
        full = f'{module}.{name}'
        entry = CHECKPOINT_GLOBALS.get(full)
        if entry is None and self.torchscript:
            entry = TORCHSCRIPT_GLOBALS.get(full)
            if entry is None and (module == '__torch__'
                                  or module.startswith('__torch__.')):
                entry = Allowed(full, new=lambda: ScriptRecord(full))
        if entry is None:
            raise UnsafeCheckpointError(f'refused global: {full}')
        return entry

    def persistent_load(self, pid: Any) -> Any:
        return self._persistent(pid)

    # -- operations that could run code -----------------------------------
    def load_reduce(self) -> None:
        stack = self.stack
        args = stack.pop()
        func = stack[-1]
        if not isinstance(func, Allowed) or func.call is None:
            raise _refuse(f'call of {_show(func)}')
        if type(args) is not tuple:
            raise _malformed(f'arguments of {func.name} are not a tuple')
        value = func.call(self, *args)
        if isinstance(value, Tensor):
            self.view_bytes += value.numel() * value.element_size()
        stack[-1] = value

    dispatch[pickle.REDUCE[0]] = load_reduce

    def _new(self, cls: Any, args: Any) -> None:
        if not isinstance(cls, Allowed) or cls.new is None:
            raise _refuse(f'instance of {_show(cls)}')
        if args not in ((), []):
            raise _malformed(f'{cls.name} created with arguments')
        self.append(cls.new())

    def load_newobj(self) -> None:
        args = self.stack.pop()
        self._new(self.stack.pop(), args)

    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        if kwargs:
            raise _malformed('keyword arguments to a constructor')
        self._new(self.stack.pop(), args)

    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex

    def load_obj(self) -> None:
        args = self.pop_mark()
        if not args:
            raise _malformed('OBJ without a class')
        self._new(args.pop(0), args)

    dispatch[pickle.OBJ[0]] = load_obj

    def load_inst(self) -> None:
        module = self.readline()[:-1].decode('utf-8')
        name = self.readline()[:-1].decode('utf-8')
        self._new(self.find_class(module, name), self.pop_mark())

    dispatch[pickle.INST[0]] = load_inst

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, np.dtype):
            _build_dtype(inst, state)
        elif type(inst) is np.ndarray:
            if self._fresh_arrays.pop(id(inst), None) is not inst:
                raise _refuse('state set twice on a numpy array')
            _build_ndarray(inst, state)
        elif isinstance(inst, ScriptRecord) and self.torchscript:
            if inst.built:
                raise _refuse(f'state set twice on {inst.type_name}')
            inst.state, inst.built = state, True
        elif type(inst) is _history_buffer():
            _build_history_buffer(inst, state)
        elif type(inst) is collections.OrderedDict:
            # torch state dicts carry their module versions as _metadata
            if not (isinstance(state, dict) and set(state) <= {'_metadata'}):
                raise _refuse(f'state {_show(state)} of an OrderedDict')
            if state:
                inst._metadata = state['_metadata']
        else:
            raise _refuse(f'setting the state of {_show(inst)}')

    dispatch[pickle.BUILD[0]] = load_build

    def _refused_op(self) -> None:
        raise _refuse('pickle extension registry / out-of-band buffers')

    for _op in (pickle.EXT1, pickle.EXT2, pickle.EXT4, pickle.NEXT_BUFFER,
                pickle.READONLY_BUFFER, pickle.BYTEARRAY8):
        dispatch[_op[0]] = _refused_op
    del _op

    # -- containers ---------------------------------------------------------
    def load_append(self) -> None:
        value = self.stack.pop()
        target = self.stack[-1]
        if type(target) is not list:
            raise _refuse(f'append to {_show(target)}')
        target.append(value)

    dispatch[pickle.APPEND[0]] = load_append

    def load_appends(self) -> None:
        items = self.pop_mark()
        target = self.stack[-1]
        if type(target) is not list:
            raise _refuse(f'append to {_show(target)}')
        target.extend(items)

    dispatch[pickle.APPENDS[0]] = load_appends

    def _set_items(self, target: Any, items: list) -> None:
        if type(target) not in (dict, collections.OrderedDict,
                                collections.Counter):
            raise _refuse(f'item assignment to {_show(target)}')
        for i in range(0, len(items) - 1, 2):
            target[_key(items[i])] = items[i + 1]

    def load_setitem(self) -> None:
        value = self.stack.pop()
        key = self.stack.pop()
        self._set_items(self.stack[-1], [key, value])

    dispatch[pickle.SETITEM[0]] = load_setitem

    def load_setitems(self) -> None:
        items = self.pop_mark()
        self._set_items(self.stack[-1], items)

    dispatch[pickle.SETITEMS[0]] = load_setitems

    def load_dict(self) -> None:
        items = self.pop_mark()
        target: dict = {}
        self._set_items(target, items)
        self.append(target)

    dispatch[pickle.DICT[0]] = load_dict

    def load_additems(self) -> None:
        items = self.pop_mark()
        target = self.stack[-1]
        if type(target) is not set:
            raise _refuse(f'set update of {_show(target)}')
        target.update(_key(item) for item in items)

    dispatch[pickle.ADDITEMS[0]] = load_additems

    def load_frozenset(self) -> None:
        items = self.pop_mark()
        self.append(frozenset(_key(item) for item in items))

    dispatch[pickle.FROZENSET[0]] = load_frozenset

    def load_persid(self) -> None:
        raise _malformed('a text persistent id (protocol 0)')

    dispatch[pickle.PERSID[0]] = load_persid

    # -- entry point --------------------------------------------------------
    def load(self) -> Any:
        value = super().load()
        check_graph(value)
        return value


def _key(value: Any) -> Any:
    """``value`` if it may be a dict key / set element: a scalar or a flat
    tuple of scalars (hashing nested tuples recurses in C)."""
    if isinstance(value, _SCALARS) and type(value) in _SCALARS:
        return value
    if type(value) is tuple and all(type(v) in _SCALARS for v in value):
        return value
    raise _refuse(f'dictionary key or set element {_show(value)}')


def check_graph(root: Any, max_depth: int = MAX_DEPTH) -> None:
    """Check that the containers under ``root`` form an acyclic graph at
    most ``max_depth`` deep (iteratively: no recursion in Python or C)."""
    containers = (list, tuple, dict, set, frozenset, collections.OrderedDict,
                  collections.Counter)
    depth: Dict[int, int] = {}
    active: Dict[int, bool] = {}
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            del active[key]
            children = _children(node)
            depth[key] = 1 + max(
                (depth.get(id(c), 0) for c in children), default=0)
            if depth[key] > max_depth:
                raise _malformed(f'objects nested more than {max_depth} deep')
            continue
        if key in depth:
            continue
        if key in active:
            raise _malformed('a self-referencing (cyclic) object')
        if type(node) not in containers and not isinstance(
                node, (ScriptRecord, _history_buffer())):
            depth[key] = 0
            continue
        active[key] = True
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))


def _children(node: Any) -> list:
    if isinstance(node, dict):
        return list(node.values())
    if isinstance(node, (list, tuple, set, frozenset)):
        return list(node)
    if isinstance(node, ScriptRecord):
        return [node.state]
    if isinstance(node, _history_buffer()):
        return list(vars(node).values())
    return []


# ---------------------------------------------------------------------------
# Stand-ins
# ---------------------------------------------------------------------------
def _history_buffer() -> type:
    from mmengine.logging.history_buffer import HistoryBuffer
    return HistoryBuffer


#: What ``getattr(HistoryBuffer, name)`` may ask for (MMEngine pickles its
#: statistics methods so).
HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')


def _getattr(unpickler: DataUnpickler, obj: Any, name: Any) -> Any:
    if obj is _HISTORY_BUFFER and type(name) is str and \
            name in HISTORY_BUFFER_STATISTICS:
        return getattr(_history_buffer(), name)
    raise UnsafeCheckpointError(
        f'refused global: builtins.getattr({_show(obj)}, {_show(name)}); only '
        'getattr(mmengine.logging.HistoryBuffer, <' +
        '|'.join(HISTORY_BUFFER_STATISTICS) + '>) is allowed')


def _build_history_buffer(buf: Any, state: Any) -> None:
    hb = _history_buffer()
    allowed = {
        'max_length', '_max_length', '_log_history', '_count_history',
        'statistics_methods'
    }
    if type(state) is not dict or not set(state) <= allowed:
        raise _refuse(f'HistoryBuffer state {_show(state)}')
    methods = state.get('statistics_methods', {})
    if type(methods) is not dict or any(
            key not in HISTORY_BUFFER_STATISTICS
            or value is not getattr(hb, key)
            for key, value in methods.items()):
        raise _refuse('HistoryBuffer statistics_methods other than '
                      'HistoryBuffer.<' + '|'.join(HISTORY_BUFFER_STATISTICS) +
                      '>')
    for key in ('_log_history', '_count_history'):
        if key in state and (type(state[key]) is not np.ndarray
                             or state[key].ndim != 1):
            raise _malformed(f'HistoryBuffer.{key} must be a 1-D array')
    for key in ('max_length', '_max_length'):
        if key in state and type(state[key]) is not int:
            raise _malformed(f'HistoryBuffer.{key} must be an int')
    buf.__dict__.update({
        k: v
        for k, v in state.items() if k != 'statistics_methods'
    })


def _np_dtype(unpickler: DataUnpickler,
              code: Any,
              align: Any = False,
              copy: Any = False) -> np.dtype:
    if type(code) is not str or code not in _NUMPY_DTYPES:
        raise _refuse(f'numpy dtype {_show(code)}: only the builtin numeric '
                      f'dtypes {", ".join(_NUMPY_CODES)} are allowed')
    if type(align) is not bool or type(copy) is not bool:
        raise _malformed('numpy.dtype arguments')
    return _NUMPY_DTYPES[code]


def _build_dtype(dtype: np.dtype, state: Any) -> None:
    """Accept the canonical state of a builtin dtype; never call
    ``dtype.__setstate__`` (it would alter the process-wide dtype)."""
    canonical = dtype.__reduce__()[2]
    if type(state) is not tuple or len(state) != len(canonical) or any(
            type(s) not in _SCALARS for s in state) or state != canonical:
        raise _refuse(f'numpy dtype {dtype.str} with state {_show(state)} '
                      f'(only the plain state {canonical} is allowed: no '
                      'byte-order change, fields, subarrays or flags)')


def _np_reconstruct(unpickler: DataUnpickler, cls: Any, shape: Any,
                    code: Any) -> np.ndarray:
    if cls is not _NDARRAY or shape != (0, ) or code not in (b'b', 'b'):
        raise _refuse(f'numpy _reconstruct({_show(cls)}, {_show(shape)}, '
                      f'{_show(code)})')
    arr = np.ndarray((0, ), np.uint8)
    unpickler._fresh_arrays[id(arr)] = arr
    return arr


def _build_ndarray(arr: np.ndarray, state: Any) -> None:
    if type(state) is not tuple or len(state) != 5:
        raise _malformed(f'numpy array state {_show(state)}')
    version, shape, dtype, fortran, raw = state
    shape = _ints(shape, 'numpy array shape')
    if version != 1 or type(fortran) is not bool:
        raise _malformed('numpy array state (version / order)')
    if not isinstance(dtype, np.dtype) or dtype not in \
            _NUMPY_DTYPES.values():
        raise _refuse(f'numpy array of dtype {_show(dtype)}')
    if type(raw) not in (bytes, bytearray):
        raise _refuse('numpy array whose data is not raw bytes')
    count = 1
    for s in shape:
        count *= s
    if len(raw) != count * dtype.itemsize:
        raise _malformed(f'numpy array of shape {shape} and dtype '
                         f'{dtype.str} with {len(raw)} bytes of data')
    arr.__setstate__((1, shape, dtype, fortran, bytes(raw)))


def _np_scalar(unpickler: DataUnpickler, dtype: Any, raw: Any = None) -> Any:
    if not isinstance(dtype, np.dtype) or dtype not in \
            _NUMPY_DTYPES.values():
        raise _refuse(f'numpy scalar of dtype {_show(dtype)}')
    if type(raw) is not bytes or len(raw) != dtype.itemsize:
        raise _malformed(f'numpy {dtype.str} scalar with {_show(raw)}')
    return np.frombuffer(raw, dtype=dtype)[0].copy()


def _codecs_encode(unpickler: DataUnpickler,
                   text: Any,
                   encoding: Any = 'utf-8') -> bytes:
    # pickle protocol 2 writes bytes as _codecs.encode(str, 'latin1')
    if type(text) is not str or encoding not in ('latin1', 'latin-1'):
        raise _refuse(f'_codecs.encode({_show(text)}, {_show(encoding)})')
    return codecs.encode(text, 'latin1')


def _bytes(unpickler: DataUnpickler, *args: Any) -> bytes:
    # pickle protocol 2 writes b'' as bytes()
    if args:
        raise _refuse(f'bytes{_show(args)}')
    return b''


def _bytearray(unpickler: DataUnpickler, *args: Any) -> bytearray:
    if args == ():
        return bytearray()
    if len(args) == 1 and type(args[0]) is bytes:
        return bytearray(args[0])
    if len(args) == 2 and type(args[0]) is str and \
            args[1] in ('latin1', 'latin-1'):
        return bytearray(args[0], 'latin1')
    raise _refuse(f'bytearray{_show(args)}')


def _container(kind: type) -> Callable:

    def make(unpickler: DataUnpickler, *args: Any) -> Any:
        if not args:
            return kind()
        if len(args) == 1 and type(args[0]) in (list, tuple, dict):
            items = args[0]
            if kind in (set, frozenset):
                return kind(_key(v) for v in items)
            if type(items) is dict:
                return kind((_key(k), v) for k, v in items.items())
            pairs = []
            for pair in items:
                if type(pair) not in (list, tuple) or len(pair) != 2:
                    raise _malformed(f'{kind.__name__} items')
                pairs.append((_key(pair[0]), pair[1]))
            return kind(pairs)
        raise _malformed(f'{kind.__name__} arguments')

    return make


def _torch_size(unpickler: DataUnpickler, dims: Any = ()) -> torch.Size:
    return torch.Size(_ints(dims, 'torch.Size'))


def _rebuild_tensor(unpickler: DataUnpickler,
                    storage: Any,
                    offset: Any,
                    size: Any,
                    stride: Any,
                    requires_grad: Any = False,
                    hooks: Any = None,
                    metadata: Any = None) -> Tensor:
    """``torch._utils._rebuild_tensor(_v2)``: a checked view of a storage."""
    if not isinstance(storage, StorageRecord):
        raise _malformed('tensor without a storage record')
    if hooks is not None:
        _check_hooks(hooks, metadata)
    size = _ints(size, 'tensor size')
    stride = _ints(stride, 'tensor stride')
    check_view(size, stride, offset, storage.flat.numel())
    tensor = storage.flat.as_strided(size, stride, offset)
    if requires_grad is True and tensor.is_floating_point():
        tensor.requires_grad_(True)
    return tensor


def _rebuild_parameter(unpickler: DataUnpickler,
                       data: Any,
                       requires_grad: Any = True,
                       hooks: Any = None,
                       state: Any = None) -> Tensor:
    if not isinstance(data, Tensor) or type(requires_grad) is not bool:
        raise _malformed('parameter record')
    if hooks is not None:
        _check_hooks(hooks)
    if state not in (None, {}):
        raise _refuse(f'parameter state {_show(state)}')
    return torch.nn.Parameter(
        data, requires_grad=requires_grad and data.is_floating_point())


def _same(unpickler: DataUnpickler, value: Any, *unused: Any) -> Any:
    # torch.jit._pickle.restore_type_tag(value, type_str)
    return value


def _typed_list(kind: tuple) -> Callable:

    def make(unpickler: DataUnpickler, values: Any) -> list:
        if type(values) is not list or not all(
                isinstance(v, kind) for v in values):
            raise _malformed('TorchScript list of the wrong type')
        return list(values)

    return make


def _table(entries: Dict[str, Any]) -> Dict[str, Allowed]:
    table = {}
    for names, call in entries.items():
        for name in names.split('|'):
            table[name] = call if isinstance(call, Allowed) else Allowed(
                name, call=call)
    return table


def _new_history_buffer(*unused: Any) -> Any:
    return _history_buffer().__new__(_history_buffer())


def _call_history_buffer(unpickler: 'DataUnpickler', *args: Any) -> Any:
    # ``(HistoryBuffer, (), state)`` reductions call the class with no
    # arguments; the state is then checked by BUILD
    if args:
        raise _refuse('HistoryBuffer created with arguments')
    return _new_history_buffer()


_HISTORY_BUFFER = Allowed(
    'mmengine.logging.history_buffer.HistoryBuffer',
    call=_call_history_buffer,
    new=_new_history_buffer)

#: Globals a checkpoint may name -> validated stand-ins.
CHECKPOINT_GLOBALS: Dict[str, Allowed] = _table({
    'collections.OrderedDict':
    _container(collections.OrderedDict),
    'collections.Counter':
    _container(collections.Counter),
    'builtins.set|__builtin__.set':
    _container(set),
    'builtins.frozenset|__builtin__.frozenset':
    _container(frozenset),
    'builtins.bytes|__builtin__.bytes':
    _bytes,
    'builtins.bytearray|__builtin__.bytearray':
    _bytearray,
    'builtins.getattr|__builtin__.getattr':
    _getattr,
    '_codecs.encode':
    _codecs_encode,
    'mmengine.logging.history_buffer.HistoryBuffer':
    _HISTORY_BUFFER,
    'numpy.dtype':
    _np_dtype,
    'numpy.ndarray':
    _NDARRAY,
    'numpy._core.multiarray._reconstruct|numpy.core.multiarray._reconstruct':
    _np_reconstruct,
    'numpy._core.multiarray.scalar|numpy.core.multiarray.scalar':
    _np_scalar,
    'torch.Size':
    _torch_size,
    'torch._utils._rebuild_tensor|torch._utils._rebuild_tensor_v2':
    _rebuild_tensor,
    'torch._utils._rebuild_parameter|'
    'torch._utils._rebuild_parameter_with_state':
    _rebuild_parameter,
    **{
        f'torch.{name}|torch.storage.{name}': StorageType(
            f'torch.{name}', dtype)
        for name, dtype in STORAGE_DTYPES.items()
    },
})

#: Extra globals of TorchScript archives (``__torch__.*`` module records
#: are accepted as :class:`ScriptRecord` besides these).
TORCHSCRIPT_GLOBALS: Dict[str, Allowed] = _table({
    'torch.jit._pickle.restore_type_tag':
    _same,
    'torch.jit._pickle.build_intlist':
    _typed_list((int, )),
    'torch.jit._pickle.build_doublelist':
    _typed_list((float, )),
    'torch.jit._pickle.build_boollist':
    _typed_list((bool, )),
    'torch.jit._pickle.build_tensorlist':
    _typed_list((Tensor, )),
})

if sys.version_info < (3, 8):  # pragma: no cover
    raise ImportError('mmris.checkpoint needs Python >= 3.8')
