# Copyright (c) mmris contributors. All rights reserved.
"""Safe readers of referring-segmentation annotation files.

REFER ``refs(*).p`` files (L. Yu's REFER API, lichengunc/refer; copied as
kkakkkka/ETRIS, tools/refer.py) are pickles holding only dicts, lists,
tuples, strings and numbers. Users fetch them from mirrors, and the plain
``pickle.load`` of the REFER API runs any code a crafted file names, so
:func:`load_refer_pickle` refuses every pickled global (class or function):
a data-only file loads, anything else fails before a single object is built.

Python 2 pickles (protocol 0 or 2, as the original downloads) store ``str``
as byte strings. They are decoded as UTF-8; only a byte string that is not
valid UTF-8 falls back to latin-1, with a warning naming where it is (the
``*_id`` entries of the enclosing dicts, e.g. ``ref_id=5 sent_id=12``).

The work is bounded by the file's size. A pickle can reference one object
many times (its memo), so a few hundred bytes can describe billions of
references ("billion laughs"): every object is visited and decoded once
(shared objects stay shared), and a file whose objects, expanded, would
outnumber its bytes is refused (without shared containers a pickle needs at
least one byte per element, so a genuine file never is). So is a file
nested more than :data:`MAX_DEPTH` levels deep (or cyclic), and one holding
an integer beyond 64 bits (such keys can all share one hash value, which
makes building a dict quadratic in the file size).

Corrupt files (empty, truncated, an HTML error page saved under the pickle's
name, invalid JSON) raise :class:`AnnotationFileError` naming the file.
"""
import io
import json
import os.path as osp
import pickle
import pickletools
import re
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

#: Number of latin-1 fallbacks spelled out in the warning (all are counted).
MAX_LISTED = 5
#: Integer entries of enclosing dicts that locate a string in a warning.
ID_KEYS = ('ref_id', 'ann_id', 'sent_id', 'id')
#: Deepest nesting accepted in an annotation file (a REFER sentence token
#: is 5 levels deep: refs list, ref, sentences, sentence, tokens).
MAX_DEPTH = 64
#: Integers a pickle may hold: ``|v| < 2**63``.
INT_LIMIT = 2**63
#: Opcodes of pickle integers that may exceed 64 bits (LONG1 of >= 8 bytes,
#: LONG4, protocol-0 INT / LONG of >= 19 digits). Only a file where this
#: matches (possibly inside a string) is scanned opcode by opcode.
_MAYBE_BIG_INT = re.compile(rb'\x8a[\x08-\xff]|\x8b|[IL]-?[0-9]{19}')
_CONTAINERS = (list, tuple, dict, set, frozenset)


class AnnotationFileError(ValueError):
    """An annotation file is corrupt or does not have the expected format."""


class RefusedGlobalError(pickle.UnpicklingError):
    """A pickle names a global (class or function); nothing was loaded."""


class _DataOnlyUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global (data-only pickles load)."""

    def __init__(self, file, path: str, encoding: str) -> None:
        super().__init__(file, encoding=encoding)
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        raise RefusedGlobalError(
            f'Refusing to load {self._path}: it references the global '
            f'"{module}.{name}", but REFER annotation pickles hold only '
            'dicts, lists, strings and numbers. The file is not a genuine '
            'REFER file (possibly malicious); nothing was executed. Get it '
            'again from a trusted source.')


def _describe_corrupt(path: str, head: bytes, err: BaseException) -> str:
    if not head:
        return f'{path} is empty (an interrupted download?)'
    if head.lstrip().startswith(b'<'):
        return (f'{path} is an HTML/XML page, not a pickle (an error page '
                'saved by a failed download?)')
    kind = ('truncated (ends in the middle of the data)' if isinstance(
        err, EOFError) else f'not a readable pickle ({type(err).__name__}: '
            f'{err})')
    return f'{path} is {kind}; download it again'


class _NestingError(Exception):
    """Raised inside the walks below; turned into AnnotationFileError."""


def expanded_size(obj: Any,
                  limit: Optional[int] = None,
                  max_depth: int = MAX_DEPTH) -> int:
    """Number of objects ``obj`` would hold with every shared reference
    copied: 1 per container or scalar, plus its elements (dict keys and
    values both count). Each distinct container is visited once.

    Args:
        obj (Any): Nested lists, tuples, sets, dicts and scalars.
        limit (int, optional): Stop as soon as the size exceeds it (the
            returned value is then only known to be larger). Defaults to
            None (no limit).
        max_depth (int): Deepest nesting accepted. Defaults to
            :data:`MAX_DEPTH`.

    Returns:
        int: The expanded size (or a value above ``limit``).

    Raises:
        ValueError: If ``obj`` is nested more than ``max_depth`` levels
            deep or contains itself.
    """
    sizes: Dict[int, int] = {}
    cap = float('inf') if limit is None else limit

    def size(value: Any, depth: int) -> int:
        if depth > max_depth:
            raise _NestingError(
                f'nested more than {max_depth} levels deep (or cyclic)')
        known = sizes.get(id(value))
        if known is not None:
            return known
        items = value.items() if isinstance(value, dict) else value
        total = 1
        for item in items:
            for part in (item if isinstance(value, dict) else (item, )):
                total += (
                    size(part, depth +
                         1) if isinstance(part, _CONTAINERS) else 1)
            if total > cap:
                break
        sizes[id(value)] = total
        return total

    if not isinstance(obj, _CONTAINERS):
        return 1
    try:
        return size(obj, 1)
    except _NestingError as err:
        raise ValueError(str(err)) from None


def decode_byte_strings(obj: Any,
                        on_fallback: Optional[Callable[
                            [Tuple[str, ...], bytes], None]] = None,
                        id_keys: Sequence[str] = ID_KEYS,
                        max_depth: int = MAX_DEPTH) -> Any:
    """Decode every ``bytes`` in a nested structure (keys too) as UTF-8.

    A byte string that is not valid UTF-8 is decoded as latin-1 (which never
    fails) and reported to ``on_fallback(where, raw)``, ``where`` being the
    ``'<key>=<value>'`` strings of the integer ``id_keys`` entries of the
    enclosing dicts (e.g. ``('ref_id=5', 'sent_id=12')``), then the
    ``'key <name>'`` holding the string, if any.

    Every distinct object is decoded once, so objects shared in ``obj``
    (pickle memo references) stay shared and a string referenced many
    times is reported once (where it is first met).

    Args:
        obj (Any): Lists, tuples, sets, dicts, strings, numbers.
        on_fallback (callable, optional): Called for each latin-1 fallback.
        id_keys (Sequence[str]): Dict keys that identify a record.
            Defaults to :data:`ID_KEYS`.
        max_depth (int): Deepest nesting accepted. Defaults to
            :data:`MAX_DEPTH`.

    Returns:
        Any: The same structure with ``str`` instead of ``bytes``.

    Raises:
        ValueError: If ``obj`` is nested more than ``max_depth`` levels
            deep or contains itself.
    """
    done: Dict[int, Any] = {}

    def text(raw: bytes, where: Tuple[str, ...]) -> str:
        try:
            return raw.decode('utf-8')
        except UnicodeDecodeError:
            if on_fallback is not None:
                on_fallback(where, raw)
            return raw.decode('latin-1')

    def walk(value: Any, where: Tuple[str, ...], depth: int) -> Any:
        if not isinstance(value, (bytes, ) + _CONTAINERS):
            return value
        if id(value) in done:
            return done[id(value)]
        if depth > max_depth:
            raise _NestingError(
                f'nested more than {max_depth} levels deep (or cyclic)')
        if isinstance(value, bytes):
            # only the innermost key names the string
            ids = tuple(w for w in where[:-1] if not w.startswith('key '))
            out: Any = text(value, ids + where[-1:])
        elif isinstance(value, dict):
            keys = {k: walk(k, where, depth + 1) for k in value}
            ids = tuple(f'{keys[k]}={v}' for k, v in value.items()
                        if keys[k] in id_keys and isinstance(v, int))
            inner = where + ids
            out = {
                keys[k]: walk(v, inner + (f'key {keys[k]!r}', ), depth + 1)
                for k, v in value.items()
            }
        else:
            out = type(value)(walk(v, where, depth + 1) for v in value)
        done[id(value)] = out
        return out

    try:
        return walk(obj, (), 1)
    except _NestingError as err:
        raise ValueError(str(err)) from None


def _check_integers(data: bytes, path: str) -> None:
    """Refuse a pickle holding an integer beyond 64 bits (opcode scan, only
    when the bytes may encode one)."""
    if not _MAYBE_BIG_INT.search(data):
        return
    try:
        for opcode, arg, pos in pickletools.genops(data):
            if (opcode.name in ('INT', 'LONG', 'LONG1', 'LONG4')
                    and isinstance(arg, int) and abs(arg) >= INT_LIMIT):
                raise AnnotationFileError(
                    f'{path}: byte {pos} holds an integer outside the '
                    f'signed 64 bits range (a {arg.bit_length()}-bit '
                    'magnitude); REFER files hold ids and counts only (a '
                    'crafted file?)')
    except AnnotationFileError:
        raise
    except Exception:  # noqa: BLE001  (the unpickler names what is wrong)
        return


def _unpickle(data: bytes, path: str, encoding: str) -> Any:
    """Unpickle data only; a Python 2 string that is not valid ``encoding``
    raises ``UnicodeDecodeError`` (never with ``encoding='bytes'``)."""
    try:
        return _DataOnlyUnpickler(io.BytesIO(data), path, encoding).load()
    except RefusedGlobalError:
        raise
    except UnicodeDecodeError as err:
        if encoding != 'bytes':
            raise
        raise AnnotationFileError(_describe_corrupt(path, data[:64],
                                                    err)) from err
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError,
            IndexError, KeyError, AttributeError, OverflowError, MemoryError,
            RecursionError) as err:
        raise AnnotationFileError(_describe_corrupt(path, data[:64],
                                                    err)) from err


def _check_expansion(obj: Any, path: str, num_bytes: int) -> None:
    """Refuse ``obj`` if it expands to more objects than the file has
    bytes, or nests too deeply."""
    try:
        size = expanded_size(obj, limit=num_bytes)
    except ValueError as err:
        raise AnnotationFileError(f'{path} is {err}; REFER files are a few '
                                  'levels deep') from None
    if size > num_bytes:
        raise AnnotationFileError(
            f'{path} expands to more than {num_bytes} objects through '
            f'shared references, more than its {num_bytes} bytes can hold '
            'without them; genuine REFER files share no list or dict (a '
            '"billion laughs" file?)')


def load_refer_pickle(path: str) -> Any:
    """Load a REFER-style annotation pickle without running any code.

    Every pickled global is refused (:class:`RefusedGlobalError` naming the
    file and the global), so only dicts, lists, tuples, sets, strings, bytes,
    numbers, booleans and None can be loaded. Python 2 byte strings (and
    dict keys) are decoded as UTF-8; if one of them is not valid UTF-8, the
    file is read again keeping byte strings and each one is decoded on its
    own, the invalid ones as latin-1 with a warning naming where (see
    :func:`decode_byte_strings`). Python 3 ``bytes`` values (protocol >= 3)
    are left as they are when every Python 2 string is valid UTF-8.

    The work is bounded by the file's size: integers beyond 64 bits are
    refused before unpickling, the loaded object may not expand (shared
    references copied) to more objects than the file has bytes (see
    :func:`expanded_size`) nor nest more than :data:`MAX_DEPTH` levels, and
    shared objects are decoded once.

    Args:
        path (str): The pickle, e.g. ``<root>/refcoco/refs(unc).p``.

    Returns:
        Any: The unpickled object.

    Raises:
        FileNotFoundError: If ``path`` is not a file.
        RefusedGlobalError: If the pickle references any global.
        AnnotationFileError: If the file is empty, truncated, no pickle,
            too deep, expands beyond its size or holds a huge integer.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Annotation pickle not found: {path}')
    with open(path, 'rb') as f:
        data = f.read()
    _check_integers(data, path)
    try:
        # Fast path: the C unpickler decodes Python 2 strings as UTF-8.
        obj = _unpickle(data, path, 'utf-8')
    except UnicodeDecodeError:
        obj = None
    else:
        _check_expansion(obj, path, len(data))
        return obj
    # Some byte string is not UTF-8: keep them all as bytes and decode
    # them one by one, so that only the bad ones fall back to latin-1.
    obj = _unpickle(data, path, 'bytes')
    _check_expansion(obj, path, len(data))
    fallbacks: List[str] = []

    def record(where: Tuple[str, ...], raw: bytes) -> None:
        fallbacks.append(f'{" ".join(where) or "top level"}: {raw[:40]!r}')

    obj = decode_byte_strings(obj, record)
    if fallbacks:
        listed = '; '.join(fallbacks[:MAX_LISTED])
        more = (f' (and {len(fallbacks) - MAX_LISTED} more)'
                if len(fallbacks) > MAX_LISTED else '')
        warnings.warn(
            f'{path}: {len(fallbacks)} byte string(s) are not valid UTF-8 '
            f'and were decoded as latin-1: {listed}{more}')
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f'{name} is not a JSON number')


def load_json(path: str) -> Any:
    """Read a JSON annotation file; a corrupt one fails naming the file.

    Args:
        path (str): The JSON file, e.g. ``<root>/refcoco/instances.json``.

    Returns:
        Any: The parsed JSON.

    Raises:
        FileNotFoundError: If ``path`` is not a file.
        AnnotationFileError: If the file is empty, truncated, not UTF-8,
            not JSON (``NaN`` and ``Infinity`` are not JSON either) or
            nested too deeply.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Annotation file not found: {path}')
    with open(path, 'rb') as f:
        raw = f.read()
    try:
        return json.loads(raw.decode('utf-8'), parse_constant=_no_constant)
    except RecursionError as err:
        raise AnnotationFileError(
            f'{path} is nested too deeply for an annotation file') from err
    except (UnicodeDecodeError, ValueError) as err:
        # ValueError: json.JSONDecodeError, or a number of more than 4300
        # digits (Python's integer string conversion limit)
        if not raw.strip():
            what = 'is empty (an interrupted download?)'
        elif raw.lstrip()[:1] == b'<':
            what = ('is an HTML/XML page, not JSON (an error page saved by a '
                    'failed download?)')
        else:
            what = (f'is not valid JSON ({err}); truncated or corrupt? '
                    f'({len(raw)} bytes)')
        raise AnnotationFileError(f'{path} {what}') from err
