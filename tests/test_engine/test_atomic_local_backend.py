# Copyright (c) mmris contributors. All rights reserved.
"""AtomicLocalBackend: a write that dies leaves the previous file and no
temporary one; RISCheckpointHook selects it for local folders only."""
import os

import pytest
from mmengine.fileio import LocalBackend, get_file_backend

import mmris  # noqa: F401
from mmris.checkpoint import is_temporary
from mmris.engine.atomic_local_backend import (ATOMIC_LOCAL_BACKEND_ARGS,
                                               AtomicLocalBackend)
from mmris.engine.hooks import RISCheckpointHook


def test_put_replaces_atomically(tmp_path, monkeypatch):
    backend = get_file_backend(
        str(tmp_path), backend_args=ATOMIC_LOCAL_BACKEND_ARGS)
    assert isinstance(backend, AtomicLocalBackend)
    target = tmp_path / 'sub' / 'ckpt.pth'
    backend.put(b'first', target)  # creates the folder
    backend.put_text('second', target)
    assert target.read_bytes() == b'second'
    seen = []

    def dying_put(self, obj, filepath):
        seen.append(str(filepath))
        with open(filepath, 'wb') as f:
            f.write(obj[:2])
        raise KeyboardInterrupt('killed while writing')

    monkeypatch.setattr(LocalBackend, 'put', dying_put)
    with pytest.raises(KeyboardInterrupt):
        backend.put(b'third, longer', target)
    assert target.read_bytes() == b'second'  # untouched
    assert len(seen) == 1 and is_temporary(seen[0])  # written aside
    assert os.listdir(target.parent) == ['ckpt.pth']  # no temporary left


def test_checkpoint_hook_selects_it_for_local_folders_only(
        tmp_path, monkeypatch):
    from mmengine.hooks import CheckpointHook
    resolved = []

    # MMEngine's part (resolving out_dir, building the file backend) is
    # recorded instead of run: no remote storage is reached
    def resolve(self, runner):
        self.out_dir = self.out_dir or runner.work_dir
        resolved.append(self.out_dir)

    monkeypatch.setattr(CheckpointHook, 'before_train', resolve)
    runner = type('Runner', (), dict(work_dir=str(tmp_path)))()
    cases = (
        (None, None, ATOMIC_LOCAL_BACKEND_ARGS),  # the work dir
        (str(tmp_path / 'ckpts'), None, ATOMIC_LOCAL_BACKEND_ARGS),
        ('s3://bucket/ckpts', None, None),  # remote: MMEngine's backend
        (None, dict(backend='local'), dict(backend='local')),  # the user's
    )
    for out_dir, args, expected in cases:
        hook = RISCheckpointHook(
            interval=1, out_dir=out_dir, backend_args=args)
        hook.before_train(runner)
        assert hook.backend_args == expected, (out_dir, args)
    assert len(resolved) == len(cases)
