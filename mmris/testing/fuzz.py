# Copyright (c) mmris contributors. All rights reserved.
"""A fuzzer for the loaders of files users hand over.

Each :class:`FuzzTarget` names a loader (``'module:function'``, called with a
file path), builds valid seed files, and lists the exception classes that
count as a clean refusal. :func:`run_fuzz` mutates the seeds deterministically
(input ``i`` of a run depends only on the run's seed and ``i``) and feeds
them to the loader in a separate worker process whose address space is
capped (``RLIMIT_AS`` = its size after the imports + ``memory_limit_mb``).
Every input must either load or raise one of the target's errors, with the
file's name in the message. A worker that dies (a signal: memory corruption,
stack overflow), exceeds the memory cap (``MemoryError``), raises anything
else, or takes more than ``time_limit`` seconds on one input is a failure;
the worker is restarted after the failing input and the input is saved.

Mutations: generic byte edits (bit flips, interesting integers, truncation,
insertion, deletion, duplication, splicing two seeds) and structure-aware
ones a target chooses (:func:`mutate_pickle` edits opcodes and their
arguments, :func:`mutate_zip_member` re-packs a zip with one record mutated
and its CRC-32 recomputed so the edit reaches the reader behind the
checksum, :func:`mutate_zip_headers` edits sizes, offsets and methods in the
zip headers, :func:`mutate_json` edits a JSON document's values and types).

The suite runs a short fixed-seed campaign (``tests/test_testing/
test_fuzz_loaders.py``); long campaigns run with::

    python tools/misc/fuzz_loaders.py --targets all --count 100000 \
        --out work_dirs/fuzz
"""
import importlib
import io
import json
import os
import os.path as osp
import pickletools
import random
import select
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

__all__ = [
    'FuzzTarget', 'FuzzReport', 'TARGETS', 'get_target', 'make_input',
    'run_fuzz', 'mutate_bytes', 'mutate_pickle', 'mutate_zip_member',
    'mutate_zip_headers', 'mutate_json'
]

Mutator = Callable[[bytes, random.Random], bytes]


@dataclass
class FuzzTarget:
    """A loader to fuzz.

    Args:
        name (str): Target name.
        load (str): ``'module:function'``; called with the input's path.
        seeds (str): ``'module:function'`` returning ``List[bytes]``, the
            valid seed files (called with a scratch folder).
        errors (Sequence[str]): Dotted names of the exception classes that
            are a clean refusal.
        suffix (str): File name suffix of the inputs. Defaults to '.bin'.
        mutators (Sequence[str]): ``'module:function'`` structure-aware
            mutators, each ``(data, rng) -> data``, used for half of the
            inputs. Defaults to ().
        name_in_message (bool): Whether a refusal must name the file.
            Defaults to True.
    """
    name: str
    load: str
    seeds: str
    errors: Sequence[str]
    suffix: str = '.bin'
    mutators: Sequence[str] = ()
    name_in_message: bool = True


@dataclass
class FuzzReport:
    """The outcome of a campaign on one target."""
    target: str
    inputs: int = 0
    loaded: int = 0
    refused: int = 0
    failures: List[Dict] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def crashes(self) -> int:
        return sum(f['kind'] == 'crash' for f in self.failures)

    @property
    def hangs(self) -> int:
        return sum(f['kind'] == 'hang' for f in self.failures)

    def summary(self) -> str:
        kinds: Dict[str, int] = {}
        for f in self.failures:
            kinds[f['kind']] = kinds.get(f['kind'], 0) + 1
        return (f'{self.target}: {self.inputs} inputs in {self.seconds:.0f} s'
                f': {self.loaded} loaded, {self.refused} refused by name, '
                f'{len(self.failures)} failures ' + json.dumps(kinds))


#: Registered targets: name -> :class:`FuzzTarget`.
TARGETS: Dict[str, FuzzTarget] = {}


def register_target(target: FuzzTarget) -> FuzzTarget:
    TARGETS[target.name] = target
    return target


def _resolve(path: str):
    module, _, attr = path.partition(':')
    return getattr(importlib.import_module(module), attr)


def get_target(name: str) -> FuzzTarget:
    """The registered target ``name`` (importing the modules that register
    the built-in targets)."""
    if ':' in name:  # 'module:attr': a target defined elsewhere (any object
        return _resolve(name)  # with the attributes of FuzzTarget)
    importlib.import_module('mmris.testing.fuzz_targets')
    # the registry of the importable module (this file may run as __main__)
    targets = importlib.import_module('mmris.testing.fuzz').TARGETS
    if name not in targets:
        raise KeyError(f'unknown fuzz target {name!r}; known: '
                       f'{sorted(targets)}')
    return targets[name]


# ---------------------------------------------------------------------------
# Mutators
# ---------------------------------------------------------------------------
INTERESTING = (0, 1, 2, 7, 8, 16, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0xffff,
               0x10000, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**40, 2**62,
               2**63 - 1, 2**64 - 1)


def mutate_bytes(data: bytes, rng: random.Random,
                 others: Sequence[bytes] = ()) -> bytes:
    """One generic edit of ``data``."""
    buf = bytearray(data)
    if not buf:
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    op = rng.randrange(9)
    pos = rng.randrange(len(buf))
    if op == 0:  # flip bits
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
    elif op == 1:  # interesting bytes
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(len(buf))] = rng.choice(
                (0, 1, 0x7f, 0x80, 0xff, 0x2e, 0x28, 0x4b))
    elif op == 2:  # an interesting integer, little-endian
        width = rng.choice((1, 2, 4, 8))
        value = rng.choice(INTERESTING) % (1 << (8 * width))
        buf[pos:pos + width] = value.to_bytes(width, 'little')
    elif op == 3:  # truncate
        del buf[pos:]
    elif op == 4:  # insert random bytes
        buf[pos:pos] = bytes(
            rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif op == 5:  # delete a span
        del buf[pos:pos + rng.randint(1, 64)]
    elif op == 6:  # duplicate a span
        end = min(len(buf), pos + rng.randint(1, 256))
        buf[pos:pos] = buf[pos:end]
    elif op == 7 and others:  # splice in a span of another seed
        other = rng.choice(others)
        if other:
            start = rng.randrange(len(other))
            piece = other[start:start + rng.randint(1, 512)]
            buf[pos:pos + len(piece)] = piece
    else:  # overwrite a span with a repeated byte
        n = rng.randint(1, 64)
        buf[pos:pos + n] = bytes([rng.randrange(256)]) * n
    return bytes(buf)


#: Names a pickle mutation may put into GLOBAL opcodes: allowed ones in
#: odd places, and refused ones.
GLOBAL_NAMES = (('numpy', 'dtype'), ('numpy._core.multiarray', '_reconstruct'),
                ('numpy._core.multiarray',
                 'scalar'), ('numpy', 'ndarray'), ('torch._utils',
                                                   '_rebuild_tensor_v2'),
                ('torch', 'FloatStorage'), ('torch', 'HalfStorage'),
                ('collections', 'OrderedDict'), ('collections', 'Counter'),
                ('__builtin__', 'getattr'), ('_codecs',
                                             'encode'), ('__builtin__', 'set'),
                ('mmengine.logging.history_buffer',
                 'HistoryBuffer'), ('builtins', 'eval'), ('os', 'system'),
                ('numpy', 'frombuffer'), ('torch', 'load'),
                ('__torch__', 'Evil'), ('torch.jit._pickle', 'build_intlist'))
STRINGS = ('O8', 'V8', 'f8', '<f4', 'U8', 'b', 'storage', 'cpu', 'cuda:9',
           'mean', '__init__', '__class__', '0', '1', '', 'x' * 300)
_INT_OPS = {
    'BININT1': ('K', '<B'),
    'BININT2': ('M', '<H'),
    'BININT': ('J', '<i'),
    'BINPUT': ('q', '<B'),
    'BINGET': ('h', '<B'),
    'LONG_BINPUT': ('r', '<I'),
    'LONG_BINGET': ('j', '<I')
}


def _encode_int(value: int) -> bytes:
    """The shortest pickle opcode pushing ``value``."""
    if 0 <= value < 256:
        return b'K' + struct.pack('<B', value)
    if 0 <= value < 65536:
        return b'M' + struct.pack('<H', value)
    if -2**31 <= value < 2**31:
        return b'J' + struct.pack('<i', value)
    raw = value.to_bytes((value.bit_length() + 8) // 8, 'little', signed=True)
    return b'\x8a' + bytes([len(raw)]) + raw


def _encode_str(text: str) -> bytes:
    raw = text.encode('utf-8')
    if len(raw) < 256:
        return b'\x8c' + bytes([len(raw)]) + raw
    return b'X' + struct.pack('<I', len(raw)) + raw


#: Opcodes a pickle mutation may insert.
INSERT_OPS = (b'0', b'2', b'(', b')', b'}', b']', b'N', b'R', b'b', b'\x81',
              b's', b'u', b'a', b'e', b't', b'\x85', b'\x86', b'\x87', b'Q',
              b'\x88', b'\x89', b'1', b'\x94', b'\x8f', b'\x90', b'\x91')


def mutate_pickle(data: bytes, rng: random.Random) -> bytes:
    """One opcode-level edit of a pickle: change an integer or string
    argument, swap a global for another (allowed or refused) name, delete,
    duplicate, move or insert an opcode. Falls back to a byte edit when
    ``data`` does not parse."""
    try:
        ops = [(pos, op.name, arg)
               for op, arg, pos in pickletools.genops(data)]
    except Exception:
        return mutate_bytes(data, rng)
    if not ops:
        return mutate_bytes(data, rng)
    bounds = [pos for pos, _, _ in ops] + [len(data)]
    i = rng.randrange(len(ops))
    start, end = bounds[i], bounds[i + 1]
    _, name, arg = ops[i]
    choice = rng.randrange(6)
    if choice == 0 and (name in _INT_OPS or name.startswith('LONG')
                        or name in ('INT', 'LONG1')):
        value = rng.choice(INTERESTING + (-1, -2**31, 3, 4, 5))
        new = _encode_int(value if rng.random() < 0.8 else -value)
        if name in _INT_OPS and name.endswith(('PUT', 'GET')):
            code, fmt = _INT_OPS[name]
            limit = 256 if fmt == '<B' else 2**32
            new = code.encode() + struct.pack(fmt, value % limit)
        replacement = new
    elif choice == 1 and name in ('GLOBAL', 'STACK_GLOBAL'):
        module, gname = rng.choice(GLOBAL_NAMES)
        replacement = f'c{module}\n{gname}\n'.encode()
    elif choice == 2 and 'UNICODE' in name:
        replacement = _encode_str(rng.choice(STRINGS))
    elif choice == 3:
        replacement = b''  # delete
    elif choice == 4:
        replacement = data[start:end] * 2  # duplicate
    else:
        replacement = data[start:end] + rng.choice(INSERT_OPS)
    return data[:start] + replacement + data[end:]


def _rezip(records: List[Tuple[zipfile.ZipInfo, bytes]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, 'w', zipfile.ZIP_STORED) as zf:
        for info, data in records:
            new = zipfile.ZipInfo(info.filename, info.date_time)
            new.compress_type = zipfile.ZIP_STORED
            zf.writestr(new, data)
    return out.getvalue()


def mutate_zip_member(data: bytes,
                      rng: random.Random,
                      inner: Optional[Mutator] = None) -> bytes:
    """Re-pack a zip with one record edited (``inner`` for ``data.pkl``
    records, a byte edit otherwise), dropped or duplicated, CRCs
    recomputed."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            records = [(i, zf.read(i)) for i in zf.infolist()]
    except Exception:
        return mutate_bytes(data, rng)
    if not records:
        return mutate_bytes(data, rng)
    pickles = [
        k for k, (i, _) in enumerate(records) if i.filename.endswith('.pkl')
    ]
    k = rng.choice(pickles) if pickles and rng.random() < 0.6 else \
        rng.randrange(len(records))
    info, body = records[k]
    op = rng.random()
    if op < 0.8:
        edit = (inner or mutate_pickle) if info.filename.endswith('.pkl') \
            else mutate_bytes
        records[k] = (info, edit(body, rng))
    elif op < 0.9:
        del records[k]
    else:
        records.append(records[k])
    return _rezip(records)


#: (signature, ((offset, width), ...)) of the zip header fields that
#: :func:`mutate_zip_headers` edits: method, CRC, sizes, name / extra
#: lengths, local-header offset; entry counts, directory size and offset.
_ZIP_FIELDS = (
    (b'PK\x01\x02', ((10, 2), (16, 4), (20, 4), (24, 4), (28, 2), (30, 2),
                     (42, 4))),
    (b'PK\x03\x04', ((8, 2), (14, 4), (18, 4), (22, 4), (26, 2), (28, 2))),
    (b'PK\x05\x06', ((8, 2), (10, 2), (12, 4), (16, 4))),
)


def mutate_zip_headers(data: bytes, rng: random.Random) -> bytes:
    """Edit one field (sizes, offset, method, name length, CRC) of a zip's
    central directory or local headers, or of its end record."""
    buf = bytearray(data)
    spots = []
    for sig, fields in _ZIP_FIELDS:
        pos = buf.find(sig)
        while pos != -1:
            spots += [(pos + offset, width) for offset, width in fields]
            pos = buf.find(sig, pos + 4)
    if not spots:
        return mutate_bytes(data, rng)
    pos, width = rng.choice(spots)
    value = rng.choice(INTERESTING + (8, 12, 14, 99)) % (1 << (8 * width))
    buf[pos:pos + width] = value.to_bytes(width, 'little')
    return bytes(buf)


def mutate_json(data: bytes, rng: random.Random) -> bytes:
    """One structural edit of a JSON document: a value replaced by another
    type (string, number, null, list, dict, a deeply nested list), a key
    deleted or renamed, a list element duplicated. Falls back to a byte
    edit when ``data`` does not parse."""
    try:
        doc = json.loads(data)
    except Exception:
        return mutate_bytes(data, rng)
    parents = []
    stack = [doc]
    while stack and len(parents) < 100000:
        node = stack.pop()
        if isinstance(node, (dict, list)) and node:
            parents.append(node)
            stack.extend(node.values() if isinstance(node, dict) else node)
    if not parents:
        return mutate_bytes(data, rng)
    node = rng.choice(parents)
    key = rng.choice(list(node)) if isinstance(node, dict) else \
        rng.randrange(len(node))
    replacements = ('x', '', -1, 0, 2**63, 1e308, None, True, [], {}, [[]],
                    ['a', 1], {
                        'a': 1
                    }, 'x' * 1000)
    op = rng.randrange(5)
    if op == 0:
        node[key] = rng.choice(replacements)
    elif op == 1:
        deep: list = []
        for _ in range(rng.choice((10, 1000, 100000))):
            deep = [deep]
        node[key] = deep
    elif op == 2 and isinstance(node, dict):
        del node[key]
    elif op == 3 and isinstance(node, dict):
        node[str(key) + 'x'] = node.pop(key)
    elif isinstance(node, list):
        node.insert(key, node[key])
    else:
        node[key] = rng.choice(replacements)
    try:
        return json.dumps(doc).encode()
    except (RecursionError, ValueError):
        return b'[' * 100000 + b']' * 100000


# ---------------------------------------------------------------------------
# Inputs and the worker
# ---------------------------------------------------------------------------
def make_input(target: FuzzTarget, seeds: Sequence[bytes], seed: int,
               index: int) -> bytes:
    """Input ``index`` of a campaign with ``seed``: a seed file with 1-3
    stacked mutations (structure-aware ones for half of the inputs)."""
    rng = random.Random(f'{target.name}-{seed}-{index}')
    data = seeds[index % len(seeds)]
    mutators = [_resolve(m) for m in target.mutators]
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        if mutators and rng.random() < 0.5:
            data = rng.choice(mutators)(data, rng)
        else:
            data = mutate_bytes(data, rng, seeds)
    return data


def _cap_memory(extra_mb: int) -> None:
    import resource
    with open('/proc/self/status') as f:
        vm = next(
            int(line.split()[1]) * 1024 for line in f
            if line.startswith('VmSize:'))
    limit = vm + extra_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _worker(args: Sequence[str]) -> None:
    """``python mmris/testing/fuzz.py --worker NAME SEED START STOP MB DIR``:
    run inputs START..STOP-1 of a campaign, one JSON line per input."""
    name, seed, start, stop, memory_mb, folder = args
    target = get_target(name)
    load = _resolve(target.load)
    errors = tuple(
        _resolve(e.rsplit('.', 1)[0] + ':' + e.rsplit('.', 1)[1])
        for e in target.errors)
    seeds = _resolve(target.seeds)(folder)
    out = sys.stdout
    _cap_memory(int(memory_mb))
    path = osp.join(folder, f'input{target.suffix}')
    for index in range(int(start), int(stop)):
        data = make_input(target, seeds, int(seed), index)
        with open(path, 'wb') as f:
            f.write(data)
        out.write(json.dumps(dict(start=index)) + '\n')
        out.flush()
        try:
            load(path)
            result = dict(index=index, outcome='loaded')
        except errors as err:
            message = str(err)
            if target.name_in_message and path not in message:
                result = dict(
                    index=index,
                    outcome='unnamed',
                    error=type(err).__name__,
                    message=message[:500])
            else:
                result = dict(index=index, outcome='refused')
        except MemoryError:
            result = dict(index=index, outcome='memory')
        except BaseException as err:  # noqa: B902 - anything else is a bug
            result = dict(
                index=index,
                outcome='error',
                error=type(err).__name__,
                message=str(err)[:500],
                trace=traceback.format_exc()[-2000:])
        out.write(json.dumps(result) + '\n')
        out.flush()


def run_fuzz(
    name: str,
    count: int,
    seed: int = 0,
    start: int = 0,
    time_limit: float = 20.0,
    memory_limit_mb: int = 1024,
    save_dir: Optional[str] = None,
    log: Optional[Callable[[str], None]] = None,
    python_path: Sequence[str] = ()
) -> FuzzReport:
    """Run inputs ``start .. start + count - 1`` of target ``name``.

    Args:
        name (str): A registered target.
        count (int): Inputs to run.
        seed (int): Campaign seed. Defaults to 0.
        start (int): First input index. Defaults to 0.
        time_limit (float): Seconds one input may take. Defaults to 20.
        memory_limit_mb (int): Address space a worker may add to what it
            had after its imports. Defaults to 1024.
        save_dir (str, optional): Where failing inputs are written.
        log (Callable, optional): Receives progress lines.
        python_path (Sequence[str]): Extra import folders of the worker
            (for targets given as ``'module:attr'``). Defaults to ().

    Returns:
        FuzzReport: Counts and failures.
    """
    target = get_target(name)
    report = FuzzReport(target.name)
    t0 = time.time()
    stop = start + count
    env = dict(
        os.environ,
        CUDA_VISIBLE_DEVICES='',
        PYTHONPATH=os.pathsep.join(
            [osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))] +
            list(python_path) + [
                p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep)
                if p
            ]))
    next_index = start
    last_log = time.time()
    with tempfile.TemporaryDirectory(prefix='fuzz-') as folder:
        while next_index < stop:
            # run as a script: the worker imports only what its target needs;
            # its stderr goes to a file: decoders warn on every damaged
            # input, and a pipe nobody reads would fill up (64 KiB) and block
            # the worker, which then looked like a hang
            errors_file = tempfile.TemporaryFile(dir=folder)
            proc = subprocess.Popen([
                sys.executable,
                osp.abspath(__file__), '--worker', name,
                str(seed),
                str(next_index),
                str(stop),
                str(memory_limit_mb), folder
            ],
                                    stdout=subprocess.PIPE,
                                    stderr=errors_file,
                                    env=env)

            def stderr_tail() -> str:
                errors_file.seek(max(0, errors_file.seek(0, 2) - 2000))
                return errors_file.read().decode(errors='replace')

            current: Optional[int] = None
            started = time.time()
            buffer = b''
            failure = None
            while True:
                wait = time_limit if current is not None else max(
                    120.0, time_limit)
                ready, _, _ = select.select([proc.stdout], [], [],
                                            max(0.0,
                                                started + wait - time.time()))
                if not ready:
                    proc.kill()
                    proc.wait()
                    if current is None:
                        raise RuntimeError(
                            f'fuzz worker for {name} did not start: '
                            f'{stderr_tail()}')
                    failure = dict(index=current, kind='hang')
                    break
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    proc.wait()
                    if current is not None:
                        failure = dict(
                            index=current,
                            kind='crash',
                            returncode=proc.returncode,
                            stderr=stderr_tail())
                    elif proc.returncode != 0 and next_index < stop:
                        raise RuntimeError(f'fuzz worker for {name} failed: '
                                           f'{stderr_tail()}')
                    break
                buffer += chunk
                while b'\n' in buffer:
                    line, buffer = buffer.split(b'\n', 1)
                    msg = json.loads(line)
                    if 'start' in msg:
                        current = msg['start']
                        started = time.time()
                        continue
                    current = None
                    report.inputs += 1
                    next_index = msg['index'] + 1
                    if msg['outcome'] == 'loaded':
                        report.loaded += 1
                    elif msg['outcome'] == 'refused':
                        report.refused += 1
                    else:
                        msg['kind'] = msg.pop('outcome')
                        report.failures.append(msg)
                        _save(target, msg, seed, save_dir)
                if log is not None and time.time() - last_log > 30:
                    last_log = time.time()
                    log(f'{name}: {report.inputs}/{count} inputs, '
                        f'{len(report.failures)} failures')
            if failure is not None:
                report.inputs += 1
                report.failures.append(failure)
                _save(target, failure, seed, save_dir)
                next_index = failure['index'] + 1
            if proc.stdout:
                proc.stdout.close()
            errors_file.close()
    report.seconds = time.time() - t0
    return report


def _save(target: FuzzTarget, failure: Dict, seed: int,
          save_dir: Optional[str]) -> None:
    if save_dir is None:
        return
    os.makedirs(save_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        seeds = _resolve(target.seeds)(folder)
    data = make_input(target, seeds, seed, failure['index'])
    base = osp.join(save_dir, f'{target.name}-{seed}-{failure["index"]}')
    with open(base + target.suffix, 'wb') as f:
        f.write(data)
    # '.failure.json': a target with the '.json' suffix keeps its input
    with open(base + '.failure.json', 'w') as f:
        json.dump(failure, f, indent=1)


if __name__ == '__main__':
    if len(sys.argv) == 8 and sys.argv[1] == '--worker':
        _worker(sys.argv[2:])
    else:
        sys.exit('usage: python mmris/testing/fuzz.py --worker NAME SEED '
                 'START STOP MEMORY_MB DIR (use tools/misc/fuzz_loaders.py)')
