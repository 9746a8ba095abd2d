# Copyright (c) mmris contributors. All rights reserved.
"""``AtomicLocalBackend``: MMEngine's local file backend whose writes are
atomic, for checkpoints.

MMEngine writes a checkpoint through the file backend of ``backend_args``
(``Runner.save_checkpoint`` -> ``mmengine.runner.save_checkpoint`` ->
``backend.put``), in place: a kill while writing leaves a truncated file
under the final name. With ``backend_args=dict(backend='atomic_local')``
(what :class:`~mmris.engine.hooks.RISCheckpointHook` uses for local
folders) every file is written to a temporary name of the same folder,
``fsync``-ed and renamed onto its name, so a kill at any moment leaves
either the previous file or the complete new one.
"""
import os
import os.path as osp
from pathlib import Path
from typing import Union

from mmengine.fileio import LocalBackend, register_backend

from mmris.checkpoint import commit_file, temporary_name

__all__ = ['AtomicLocalBackend', 'ATOMIC_LOCAL_BACKEND_ARGS']

#: ``backend_args`` selecting :class:`AtomicLocalBackend`.
ATOMIC_LOCAL_BACKEND_ARGS = dict(backend='atomic_local')


class AtomicLocalBackend(LocalBackend):
    """``LocalBackend`` whose ``put`` / ``put_text`` replace the file
    atomically (temporary file of the same folder, ``fsync``, rename); the
    temporary file is removed when the write fails. Reading, listing and
    removing are ``LocalBackend``'s."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        """Write ``obj`` to ``filepath`` atomically (creating its folder).

        Args:
            obj (bytes): The data.
            filepath (str | Path): The file to create or replace.
        """
        filepath = str(filepath)
        tmp = temporary_name(filepath)
        try:
            super().put(obj, tmp)
            commit_file(tmp, filepath)
        finally:
            if osp.exists(tmp):
                os.remove(tmp)

    def put_text(self,
                 obj: str,
                 filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        """Write the text ``obj`` to ``filepath`` atomically.

        Args:
            obj (str): The text.
            filepath (str | Path): The file to create or replace.
            encoding (str): Its encoding. Defaults to 'utf-8'.
        """
        self.put(obj.encode(encoding), filepath)


register_backend(
    ATOMIC_LOCAL_BACKEND_ARGS['backend'], AtomicLocalBackend, force=True)
