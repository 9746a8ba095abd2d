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

Corrupt files (empty, truncated, an HTML error page saved under the pickle's
name, invalid JSON) raise :class:`AnnotationFileError` naming the file.
"""
import json
import os.path as osp
import pickle
import warnings
from typing import Any, Callable, List, Optional, Sequence, Tuple

#: Number of latin-1 fallbacks spelled out in the warning (all are counted).
MAX_LISTED = 5
#: Integer entries of enclosing dicts that locate a string in a warning.
ID_KEYS = ('ref_id', 'ann_id', 'sent_id', 'id')


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


def decode_byte_strings(
        obj: Any,
        on_fallback: Optional[Callable[[Tuple[str, ...], bytes],
                                       None]] = None,
        id_keys: Sequence[str] = ID_KEYS) -> Any:
    """Decode every ``bytes`` in a nested structure (keys too) as UTF-8.

    A byte string that is not valid UTF-8 is decoded as latin-1 (which never
    fails) and reported to ``on_fallback(where, raw)``, ``where`` being the
    ``'<key>=<value>'`` strings of the integer ``id_keys`` entries of the
    enclosing dicts (e.g. ``('ref_id=5', 'sent_id=12')``), then the
    ``'key <name>'`` holding the string, if any.

    Args:
        obj (Any): Lists, tuples, sets, dicts, strings, numbers.
        on_fallback (callable, optional): Called for each latin-1 fallback.
        id_keys (Sequence[str]): Dict keys that identify a record.
            Defaults to :data:`ID_KEYS`.

    Returns:
        Any: The same structure with ``str`` instead of ``bytes``.
    """

    def text(raw: bytes, where: Tuple[str, ...]) -> str:
        try:
            return raw.decode('utf-8')
        except UnicodeDecodeError:
            if on_fallback is not None:
                on_fallback(where, raw)
            return raw.decode('latin-1')

    def walk(value: Any, where: Tuple[str, ...]) -> Any:
        if isinstance(value, bytes):
            # only the innermost key names the string
            ids = tuple(w for w in where[:-1] if not w.startswith('key '))
            return text(value, ids + where[-1:])
        if isinstance(value, dict):
            keys = {k: text(k, where) if isinstance(k, bytes) else k
                    for k in value}
            ids = tuple(f'{keys[k]}={v}' for k, v in value.items()
                        if keys[k] in id_keys and isinstance(v, int))
            inner = where + ids
            return {
                keys[k]: walk(v, inner + (f'key {keys[k]!r}', ))
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple, set, frozenset)):
            return type(value)(walk(v, where) for v in value)
        return value

    return walk(obj, ())


def _unpickle(path: str, encoding: str) -> Any:
    """Unpickle data only; a Python 2 string that is not valid ``encoding``
    raises ``UnicodeDecodeError`` (never with ``encoding='bytes'``)."""
    with open(path, 'rb') as f:
        head = f.read(64)
        f.seek(0)
        try:
            return _DataOnlyUnpickler(f, path, encoding).load()
        except RefusedGlobalError:
            raise
        except UnicodeDecodeError as err:
            if encoding != 'bytes':
                raise
            raise AnnotationFileError(_describe_corrupt(path, head,
                                                        err)) from err
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError,
                IndexError, KeyError, AttributeError, OverflowError,
                MemoryError, RecursionError) as err:
            raise AnnotationFileError(_describe_corrupt(path, head,
                                                        err)) from err


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

    Args:
        path (str): The pickle, e.g. ``<root>/refcoco/refs(unc).p``.

    Returns:
        Any: The unpickled object.

    Raises:
        FileNotFoundError: If ``path`` is not a file.
        RefusedGlobalError: If the pickle references any global.
        AnnotationFileError: If the file is empty, truncated or no pickle.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Annotation pickle not found: {path}')
    try:
        # Fast path: the C unpickler decodes Python 2 strings as UTF-8.
        return _unpickle(path, 'utf-8')
    except UnicodeDecodeError:
        pass
    # Some byte string is not UTF-8: keep them all as bytes and decode
    # them one by one, so that only the bad ones fall back to latin-1.
    obj = _unpickle(path, 'bytes')
    fallbacks: List[str] = []

    def record(where: Tuple[str, ...], raw: bytes) -> None:
        fallbacks.append(f'{" ".join(where) or "top level"}: {raw[:40]!r}')

    try:
        obj = decode_byte_strings(obj, record)
    except RecursionError as err:
        raise AnnotationFileError(
            f'{path} is nested too deeply for an annotation file') from err
    if fallbacks:
        listed = '; '.join(fallbacks[:MAX_LISTED])
        more = (f' (and {len(fallbacks) - MAX_LISTED} more)'
                if len(fallbacks) > MAX_LISTED else '')
        warnings.warn(
            f'{path}: {len(fallbacks)} byte string(s) are not valid UTF-8 '
            f'and were decoded as latin-1: {listed}{more}')
    return obj


def load_json(path: str) -> Any:
    """Read a JSON annotation file; a corrupt one fails naming the file.

    Args:
        path (str): The JSON file, e.g. ``<root>/refcoco/instances.json``.

    Returns:
        Any: The parsed JSON.

    Raises:
        FileNotFoundError: If ``path`` is not a file.
        AnnotationFileError: If the file is empty, truncated, not UTF-8 or
            not JSON.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Annotation file not found: {path}')
    with open(path, 'rb') as f:
        raw = f.read()
    try:
        return json.loads(raw.decode('utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        if not raw.strip():
            what = 'is empty (an interrupted download?)'
        elif raw.lstrip()[:1] == b'<':
            what = ('is an HTML/XML page, not JSON (an error page saved by a '
                    'failed download?)')
        else:
            what = (f'is not valid JSON ({err}); truncated or corrupt? '
                    f'({len(raw)} bytes)')
        raise AnnotationFileError(f'{path} {what}') from err
