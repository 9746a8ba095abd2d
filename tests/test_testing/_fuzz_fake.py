# Copyright (c) mmris contributors. All rights reserved.
"""Fake fuzz targets that misbehave on known inputs (imported by the fuzz
worker; no mmris import, so the worker starts fast)."""
import os
import signal
import time
import zlib
from types import SimpleNamespace


def seeds(folder):
    return [b'seed-0123456789abcdef', b'another seed \x00\x01\x02']


def _bad(path, every):
    with open(path, 'rb') as f:
        return zlib.crc32(f.read()) % every == 0


def load_crash(path):
    if _bad(path, 4):
        os.kill(os.getpid(), signal.SIGSEGV)
    raise ValueError(f'{path}: refused')


def load_hang(path):
    if _bad(path, 3):
        time.sleep(600)
    raise ValueError(f'{path}: refused')


def load_memory(path):
    if _bad(path, 3):
        return bytearray(8 << 30)  # 8 GiB: over the worker's cap
    return None


def load_messages(path):
    if _bad(path, 2):
        raise ValueError('refused, naming no file')
    if _bad(path, 3):
        raise KeyError('a bare KeyError')
    raise ValueError(f'{path}: refused')


def load_noisy(path):
    """A loader that warns a lot (8 KiB on stderr per input) and loads."""
    import sys
    sys.stderr.write('w' * 8191 + '\n')
    sys.stderr.flush()


def _target(name, load):
    return SimpleNamespace(
        name=name,
        load=f'test_testing._fuzz_fake:{load}',
        seeds='test_testing._fuzz_fake:seeds',
        errors=('builtins.ValueError', ),
        suffix='.bin',
        mutators=(),
        name_in_message=True)


CRASH = _target('fake-crash', 'load_crash')
HANG = _target('fake-hang', 'load_hang')
MEMORY = _target('fake-memory', 'load_memory')
MESSAGES = _target('fake-messages', 'load_messages')
NOISY = _target('fake-noisy', 'load_noisy')
