# Copyright (c) mmris contributors. All rights reserved.
"""Start-up of the command-line tools: the Python environment and the
number of CPU threads.

This module imports nothing of mmris, torch or mmengine at module level, so
a tool can load it by file path before its heavy imports (and before the
project's environment is known to be active)::

    python mmris/utils/tool_env.py          # prints the thread count

Two rules live here, used by every tool under ``tools/`` and by
``tools/quickstart.sh``:

* :func:`ensure_environment`: a tool started by a Python that lacks the
  project's packages (typically: ``.venv`` was not activated) re-runs itself
  with the checkout's ``.venv/bin/python`` when there is one (saying so in
  one line), and otherwise stops with one line saying what to run.
* :func:`choose_cpu_threads`: ``OMP_NUM_THREADS`` when it is set (the user's
  choice always wins), else the number of cores idle right now, sampled from
  ``/proc/stat`` (at least 1, at most the cores this process may use),
  because oversubscribing a busy box makes every step several times slower.
  :func:`setup_cpu_threads` applies it (environment and torch) and says it
  once.
"""
import glob
import importlib.util
import os
import os.path as osp
import re
import sys
import time
from typing import Callable, Optional, Sequence, Tuple

#: Modules every tool needs; one missing means the wrong interpreter.
REQUIRED_MODULES = ('torch', 'mmengine', 'mmcv', 'mmseg')
#: Set in the re-run process, so that a broken ``.venv`` cannot loop.
_REEXEC_FLAG = 'MMRIS_TOOL_REEXEC'
#: Seconds over which idle cores are sampled.
SAMPLE_SECONDS = 0.5


def _missing_modules(modules: Sequence[str]) -> list:
    return [m for m in modules if importlib.util.find_spec(m) is None]


def find_checkout_venv(start: str) -> Optional[str]:
    """``<checkout>/.venv/bin/python`` for a file inside the checkout.

    Args:
        start (str): A path inside the checkout (a tool's ``__file__``).

    Returns:
        str | None: The interpreter, or None when no parent folder of
        ``start`` holds an executable ``.venv/bin/python``.
    """
    folder = osp.dirname(osp.abspath(start))
    while True:
        python = osp.join(folder, '.venv', 'bin', 'python')
        if os.access(python, os.X_OK):
            return python
        parent = osp.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def ensure_environment(tool_file: str,
                       modules: Sequence[str] = REQUIRED_MODULES) -> None:
    """Make sure the tool runs in the project's environment.

    When one of ``modules`` cannot be imported by this interpreter, the tool
    is run again with the checkout's ``.venv/bin/python`` (the same rule as
    ``tools/find_python.sh``, used by the launch scripts), after one line on
    stderr saying so. Without a ``.venv`` (or when it lacks them too) it
    stops with one line naming what is missing and what to run.

    Args:
        tool_file (str): The tool's ``__file__``.
        modules (Sequence[str]): Modules the tool needs. Defaults to
            :data:`REQUIRED_MODULES`.
    """
    missing = _missing_modules(modules)
    if not missing:
        return
    name = osp.basename(tool_file)
    venv = find_checkout_venv(tool_file)
    # a venv's python is a link to the base interpreter: compare prefixes
    inside = venv is not None and osp.realpath(sys.prefix) == osp.realpath(
        osp.dirname(osp.dirname(venv)))
    if venv is not None and not inside and not os.environ.get(_REEXEC_FLAG):
        rel = osp.relpath(venv)
        print(
            f'[{name}] {", ".join(missing)} not found for {sys.executable}'
            f'; running with {rel} (activate it with `source '
            f'{osp.dirname(rel)}/activate`)',
            file=sys.stderr,
            flush=True)
        os.environ[_REEXEC_FLAG] = '1'
        os.execv(venv, [venv, osp.abspath(tool_file)] + sys.argv[1:])
    raise SystemExit(
        f'{name}: {", ".join(missing)} not installed for {sys.executable}: '
        'run `bash tools/setup_env.sh` in the checkout, then `source '
        '.venv/bin/activate`')


def _cpu_ticks() -> Tuple[int, int]:
    """(idle + iowait, total) jiffies of all CPUs from ``/proc/stat``."""
    with open('/proc/stat') as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return fields[3] + fields[4], sum(fields)


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def idle_cores(seconds: float = SAMPLE_SECONDS,
               ticks: Callable[[], Tuple[int, int]] = _cpu_ticks,
               sleep: Callable[[float], None] = time.sleep,
               cpu_count: Optional[int] = None) -> Optional[float]:
    """Cores idle over the next ``seconds`` (None when unknown).

    Args:
        seconds (float): Sampling time. Defaults to :data:`SAMPLE_SECONDS`.
        ticks (callable): Returns (idle, total) CPU jiffies. Defaults to
            reading ``/proc/stat``.
        sleep (callable): Waits ``seconds``. Defaults to ``time.sleep``.
        cpu_count (int, optional): Cores of the machine. Defaults to
            ``os.cpu_count()``.

    Returns:
        float | None: Idle cores (e.g. 1.02 on a 2-core box with one core
        busy), or None without ``/proc/stat``.
    """
    try:
        idle0, total0 = ticks()
        sleep(seconds)
        idle1, total1 = ticks()
    except (OSError, ValueError, IndexError):
        return None
    cpus = cpu_count or os.cpu_count() or 1
    return cpus * (idle1 - idle0) / max(1, total1 - total0)


def choose_cpu_threads(environ: Optional[dict] = None,
                       idle: Optional[Callable[[], Optional[float]]] = None,
                       cores: Optional[int] = None) -> Tuple[int, str]:
    """The CPU thread count a tool should use, and why.

    ``OMP_NUM_THREADS`` wins when it is a positive integer; otherwise the
    cores idle now, rounded, clipped to ``[1, cores]`` (all usable cores
    when idleness cannot be read).

    Args:
        environ (dict, optional): Environment. Defaults to ``os.environ``.
        idle (callable, optional): Returns the idle cores. Defaults to
            :func:`idle_cores`.
        cores (int, optional): Usable cores. Defaults to
            :func:`usable_cores`.

    Returns:
        tuple[int, str]: The count and a sentence saying where it comes
        from.

    Raises:
        ValueError: When ``OMP_NUM_THREADS`` is set but not a positive
            integer.
    """
    environ = os.environ if environ is None else environ
    cores = cores or usable_cores()
    value = environ.get('OMP_NUM_THREADS', '').strip()
    if value:
        try:
            threads = int(value)
        except ValueError:
            threads = 0
        if threads < 1:
            raise ValueError('OMP_NUM_THREADS must be a positive integer, '
                             f'got {value!r}')
        return threads, f'OMP_NUM_THREADS={threads} from the environment'
    free = (idle or idle_cores)()
    if free is None:
        return cores, (f'{cores} usable cores (idle cores unknown); set '
                       'OMP_NUM_THREADS to override')
    threads = max(1, min(cores, int(round(free))))
    return threads, (f'{cores} usable cores, {free:.1f} idle now; set '
                     'OMP_NUM_THREADS to override')


def setup_cpu_threads(tool: str,
                      environ: Optional[dict] = None,
                      idle: Optional[Callable[[], Optional[float]]] = None,
                      cores: Optional[int] = None,
                      quiet: bool = False) -> int:
    """Choose the thread count (:func:`choose_cpu_threads`), apply it and
    say it once.

    Sets ``OMP_NUM_THREADS`` (read by data-loader workers and any child
    process) and, when torch is imported, ``torch.set_num_threads``.

    Args:
        tool (str): Name printed in the line, e.g. 'train.py'.
        environ (dict, optional): Environment to read and update. Defaults
            to ``os.environ``.
        idle (callable, optional): See :func:`choose_cpu_threads`.
        cores (int, optional): See :func:`choose_cpu_threads`.
        quiet (bool): Do not print the line. Defaults to False.

    Returns:
        int: The thread count.
    """
    environ = os.environ if environ is None else environ
    threads, why = choose_cpu_threads(environ, idle, cores)
    environ['OMP_NUM_THREADS'] = str(threads)
    torch = sys.modules.get('torch')
    if torch is not None:
        torch.set_num_threads(threads)
    # one line per run: only the first process of a distributed launch
    first = environ.get('RANK', '0') == '0' and \
        environ.get('LOCAL_RANK', '0') == '0'
    if not quiet and first:
        print(f'[{tool}] CPU threads: {threads} ({why})', flush=True)
    return threads


def newest_checkpoint(folder: str) -> Optional[str]:
    """The checkpoint a work dir offers: the file its ``last_checkpoint``
    names (when it exists), else its newest ``epoch_*.pth`` / ``iter_*.pth``
    (highest number), else its newest ``*.pth``.

    Args:
        folder (str): A directory.

    Returns:
        str | None: A checkpoint path, or None when there is none.
    """
    last = osp.join(folder, 'last_checkpoint')
    if osp.isfile(last):
        try:
            with open(last, encoding='utf-8') as f:
                named = f.read().strip()
        except (OSError, UnicodeDecodeError):
            named = ''
        for path in (named, osp.join(folder, osp.basename(named))):
            if named and osp.isfile(path):
                return path

    def number(path: str) -> int:
        found = re.search(r'(\d+)\.pth$', osp.basename(path))
        return int(found.group(1)) if found else -1

    for pattern in ('epoch_*.pth', 'iter_*.pth'):
        found = glob.glob(osp.join(folder, pattern))
        if found:
            return max(found, key=number)
    found = glob.glob(osp.join(folder, '*.pth'))
    return max(found, key=osp.getmtime) if found else None


def check_checkpoint_path(path: Optional[str], tool: str) -> None:
    """Stop with one clear line when ``path`` is not a checkpoint file.

    A directory (e.g. the work dir ``work_dirs/quickstart``) is named as
    one, with the checkpoint it offers (:func:`newest_checkpoint`) to pass
    instead. None and 'none' (random weights) pass.

    Args:
        path (str, optional): The checkpoint argument.
        tool (str): Tool name for the message, e.g. 'demo.py'.

    Raises:
        SystemExit: For a directory or a missing file.
    """
    if path is None or str(path).lower() == 'none' or osp.isfile(path):
        return
    if osp.isdir(path):
        offer = newest_checkpoint(path)
        hint = (f'did you mean {offer}?'
                if offer else 'it holds no *.pth checkpoint')
        raise SystemExit(f'{tool}: checkpoint {path} is a directory, not a '
                         f'checkpoint file: {hint}')
    raise SystemExit(f'{tool}: checkpoint file not found: {path}')


if __name__ == '__main__':
    # tools/quickstart.sh: print the count the tools would choose
    print(choose_cpu_threads()[0])
