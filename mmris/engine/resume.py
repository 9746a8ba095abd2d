# Copyright (c) mmris contributors. All rights reserved.
"""Choosing the checkpoint to resume from: the newest one that opens and
holds finite weights."""
import glob
import os.path as osp
from typing import Callable, List, Optional, Tuple

from mmris.checkpoint import is_temporary
from .finite import all_finite, floating_items, nonfinite_names

__all__ = [
    'NoResumableCheckpointError', 'checkpoint_problem', 'resume_candidates',
    'find_resumable_checkpoint'
]


class NoResumableCheckpointError(RuntimeError):
    """``resume`` was asked for, checkpoints exist, but none is usable."""


def checkpoint_problem(checkpoint) -> Optional[str]:
    """Why a loaded checkpoint cannot be resumed from, or None if it can.

    Checks that it is a dict with ``state_dict`` and ``meta`` (``epoch``,
    ``iter``) and that every floating-point tensor of the state dict is
    finite.
    """
    if not isinstance(checkpoint, dict):
        return f'it holds a {type(checkpoint).__name__}, not a dict'
    state = checkpoint.get('state_dict')
    if not isinstance(state, dict):
        return 'it has no "state_dict" dict'
    meta = checkpoint.get('meta')
    if not isinstance(meta, dict) or not {'epoch', 'iter'} <= set(meta):
        return 'its "meta" lacks "epoch"/"iter" (not a training checkpoint)'
    items = floating_items(state)
    if not all_finite([t for _, t in items]):
        bad = nonfinite_names(items)
        return (f'{len(bad)} of {len(items)} floating-point tensors of its '
                f'state_dict hold NaN/inf (e.g. {", ".join(bad[:3])})')
    return None


def resume_candidates(work_dir: str) -> List[str]:
    """Checkpoints of ``work_dir`` to resume from, in the order to try.

    The file named by ``last_checkpoint`` first (when it exists), then the
    other ``*.pth`` files of ``work_dir``, newest first (modification time).
    ``best_*.pth`` files (no optimizer state) and temporary files of an
    interrupted save are left out.
    """
    ordered = []
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            last = f.read().strip()
        if last:
            ordered.append(last)
    files = [
        p for p in glob.glob(osp.join(work_dir, '*.pth'))
        if not osp.basename(p).startswith('best_') and not is_temporary(p)
    ]
    files.sort(key=lambda p: (osp.getmtime(p), p), reverse=True)
    seen = {osp.realpath(p) for p in ordered}
    ordered += [p for p in files if osp.realpath(p) not in seen]
    return ordered


def find_resumable_checkpoint(
    work_dir: str,
    load: Callable[[str], dict],
    log: Callable[[str], None],
    never_skip: Tuple[type, ...] = ()
) -> Tuple[Optional[str], Optional[dict]]:
    """The newest usable checkpoint of ``work_dir`` and its content.

    Each candidate of :func:`resume_candidates` is opened with ``load``; one
    that is missing, does not open (truncated, corrupt) or fails
    :func:`checkpoint_problem` is skipped with a message through ``log``.

    Args:
        work_dir (str): The run's work dir.
        load (Callable): ``load(path) -> checkpoint``.
        log (Callable): Receives one message per skipped file.
        never_skip (tuple[type]): Exceptions of ``load`` that are raised,
            not skipped (e.g. a refused malicious pickle).

    Returns:
        tuple: ``(path, checkpoint)``, or ``(None, None)`` when ``work_dir``
        holds no checkpoint at all.

    Raises:
        NoResumableCheckpointError: Checkpoints exist, none is usable.
    """
    tried = []
    for path in resume_candidates(work_dir):
        if not osp.isfile(path):
            reason = 'the file does not exist'
        else:
            try:
                checkpoint = load(path)
            except never_skip:
                raise
            except Exception as exc:  # truncated/corrupt: any error type
                reason = (f'it does not open ({type(exc).__name__}: '
                          f'{str(exc).splitlines()[0] if str(exc) else ""})')
            else:
                reason = checkpoint_problem(checkpoint)
                if reason is None:
                    return path, checkpoint
        tried.append(f'{path}: {reason}')
        log(f'Not resuming from {path}: {reason}; trying the next newest '
            'checkpoint')
    if tried:
        raise NoResumableCheckpointError(
            f'--resume: no usable checkpoint in {work_dir}:\n  ' +
            '\n  '.join(tried))
    return None, None
