# Copyright (c) mmris contributors. All rights reserved.
"""Versions, device and date of a benchmark run."""
import datetime
import platform
import subprocess
from typing import Optional

import torch

__all__ = ['environment', 'git_commit']


def git_commit(root: str) -> Optional[str]:
    """The commit of the git checkout ``root`` (12 characters, with
    ``+modified`` when tracked files changed); None outside git."""
    try:
        sha = subprocess.run(['git', '-C', root, 'rev-parse', 'HEAD'],
                             capture_output=True,
                             text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(
            ['git', '-C', root, 'status', '--porcelain', '-uno'],
            capture_output=True,
            text=True,
            timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (sha[:12] + ('+modified' if dirty else '')) if sha else None


def environment(device: torch.device, root: str) -> dict:
    """Versions, device and date of the run (``root``: the mmris checkout
    whose commit is recorded)."""
    import mmengine
    import mmseg
    cuda = device.type == 'cuda'
    return dict(
        date=datetime.datetime.now(
            datetime.timezone.utc).isoformat(timespec='seconds'),
        git_commit=git_commit(root),
        python=platform.python_version(),
        torch=torch.__version__,
        cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version() if cuda else None,
        mmengine=mmengine.__version__,
        mmseg=mmseg.__version__,
        device=torch.cuda.get_device_name(device) if cuda else 'cpu',
        cpu_threads=torch.get_num_threads())
