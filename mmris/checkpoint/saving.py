# Copyright (c) mmris contributors. All rights reserved.
"""Crash-safe file replacement: write a temporary file in the target's
folder, ``fsync`` it, ``os.replace`` it onto the target, ``fsync`` the
folder. A reader (or a run resumed after ``kill -9`` or a power cut) sees
either the old complete file or the new complete file, never a torn one."""
import os
import os.path as osp
import re
from typing import List

__all__ = [
    'TMP_MARK', 'temporary_name', 'is_temporary', 'commit_file',
    'write_text_atomic', 'remove_stale_temporaries'
]

#: Part of the name of every temporary file written here.
TMP_MARK = '.mmris-tmp-'
_TMP_RE = re.compile(r'^\..+' + re.escape(TMP_MARK) + r'\d+$')


def temporary_name(filename: str) -> str:
    """The hidden temporary name (same folder) under which ``filename`` is
    written before :func:`commit_file` moves it into place."""
    folder, base = osp.split(filename)
    return osp.join(folder, f'.{base}{TMP_MARK}{os.getpid()}')


def is_temporary(filename: str) -> bool:
    """Whether ``filename`` is a (possibly stale) :func:`temporary_name`."""
    return bool(_TMP_RE.match(osp.basename(filename)))


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder or '.', os.O_RDONLY)
    except OSError:  # e.g. Windows: folders cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def commit_file(tmp_path: str, final_path: str) -> None:
    """Flush ``tmp_path`` to disk and atomically rename it to
    ``final_path`` (replacing it), then flush the folder entry."""
    with open(tmp_path, 'rb+') as f:
        os.fsync(f.fileno())
    os.replace(tmp_path, final_path)
    _fsync_dir(osp.dirname(final_path))


def write_text_atomic(path: str, text: str) -> None:
    """Replace the text file ``path`` by ``text`` atomically."""
    tmp = temporary_name(path)
    try:
        with open(tmp, 'w') as f:
            f.write(text)
        commit_file(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def remove_stale_temporaries(folder: str) -> List[str]:
    """Delete the temporary files a killed writer left in ``folder``.

    Returns:
        list[str]: The removed paths.
    """
    removed = []
    if not osp.isdir(folder):
        return removed
    for name in sorted(os.listdir(folder)):
        path = osp.join(folder, name)
        if is_temporary(name) and osp.isfile(path):
            os.remove(path)
            removed.append(path)
    return removed
