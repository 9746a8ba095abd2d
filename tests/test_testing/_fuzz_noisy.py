# Copyright (c) mmris contributors. All rights reserved.
"""A fuzz target that writes a lot to stderr, as image decoders do on
damaged files (imported by the fuzz worker; no mmris import)."""
import sys
from types import SimpleNamespace


def seeds(folder):
    return [b'noisy seed']


def load_noisy(path):
    sys.stderr.write('libpng warning: a damaged file\n' * 2000)  # 62 kB
    sys.stderr.flush()
    raise ValueError(f'{path}: refused')


NOISY = SimpleNamespace(
    name='fake-noisy',
    load='test_testing._fuzz_noisy:load_noisy',
    seeds='test_testing._fuzz_noisy:seeds',
    errors=('builtins.ValueError', ),
    suffix='.bin',
    mutators=(),
    name_in_message=True)
