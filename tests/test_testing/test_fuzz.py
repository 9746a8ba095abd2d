# Copyright (c) mmris contributors. All rights reserved.
"""The fuzz harness (mmris.testing.fuzz): it finds what it must find, and a
short fixed-seed campaign of every real loader target passes."""
import os.path as osp
import random
import zlib

import pytest

from mmris.testing import fuzz
from test_testing import _fuzz_fake

TESTS = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _inputs(target, count, seed=0):
    seeds = _fuzz_fake.seeds(None)
    return [fuzz.make_input(target, seeds, seed, i) for i in range(count)]


def _expected(target, count, every):
    return [
        i for i, data in enumerate(_inputs(target, count))
        if zlib.crc32(data) % every == 0
    ]


def test_inputs_are_deterministic_and_mutated():
    first = _inputs(_fuzz_fake.CRASH, 50)
    assert first == _inputs(_fuzz_fake.CRASH, 50)
    assert first != _inputs(_fuzz_fake.CRASH, 50, seed=1)
    seeds = set(_fuzz_fake.seeds(None))
    assert sum(data not in seeds for data in first) >= 45


def test_crashes_are_found_and_the_worker_restarted(tmp_path):
    report = fuzz.run_fuzz(
        'test_testing._fuzz_fake:CRASH',
        12,
        save_dir=str(tmp_path),
        python_path=[TESTS])
    crashed = sorted(f['index'] for f in report.failures)
    assert crashed == _expected(_fuzz_fake.CRASH, 12, 4) and crashed
    assert all(f['kind'] == 'crash' and f['returncode'] == -11
               for f in report.failures)
    assert report.inputs == 12 and report.refused == 12 - len(crashed)
    # the failing input is saved, byte for byte
    first = crashed[0]
    saved = tmp_path / f'fake-crash-0-{first}.bin'
    assert saved.read_bytes() == _inputs(_fuzz_fake.CRASH, first + 1)[first]


def test_hangs_are_cut_at_the_time_limit():
    report = fuzz.run_fuzz(
        'test_testing._fuzz_fake:HANG', 6, time_limit=1.5, python_path=[TESTS])
    hung = sorted(f['index'] for f in report.failures)
    assert hung == _expected(_fuzz_fake.HANG, 6, 3) and hung
    assert {f['kind'] for f in report.failures} == {'hang'}
    assert report.seconds < 60


def test_allocations_past_the_cap_fail():
    report = fuzz.run_fuzz(
        'test_testing._fuzz_fake:MEMORY',
        8,
        memory_limit_mb=256,
        python_path=[TESTS])
    over = sorted(f['index'] for f in report.failures)
    assert over == _expected(_fuzz_fake.MEMORY, 8, 3) and over
    assert {f['kind'] for f in report.failures} == {'memory'}
    assert report.loaded == 8 - len(over)


def test_unnamed_and_unexpected_errors_fail():
    report = fuzz.run_fuzz(
        'test_testing._fuzz_fake:MESSAGES', 12, python_path=[TESTS])
    data = _inputs(_fuzz_fake.MESSAGES, 12)
    want = {
        i: 'unnamed' if zlib.crc32(d) % 2 == 0 else 'error'
        for i, d in enumerate(data)
        if zlib.crc32(d) % 2 == 0 or zlib.crc32(d) % 3 == 0
    }
    assert {f['index']: f['kind'] for f in report.failures} == want
    assert all(f['error'] == 'KeyError' for f in report.failures
               if f['kind'] == 'error')


def test_a_loader_writing_to_stderr_does_not_stall_the_worker():
    """30 inputs x 8 KiB of warnings overflow a 64 KiB pipe: the worker's
    stderr must go where nobody needs to read it for the worker to go on."""
    report = fuzz.run_fuzz(
        'test_testing._fuzz_fake:NOISY', 30, time_limit=5, python_path=[TESTS])
    assert report.failures == [] and report.loaded == 30


@pytest.mark.parametrize('mutator', [
    fuzz.mutate_bytes, fuzz.mutate_pickle, fuzz.mutate_zip_member,
    fuzz.mutate_zip_headers, fuzz.mutate_json
])
def test_mutators_change_their_input(mutator):
    import io
    import json
    import pickle
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w') as zf:
        zf.writestr('a/data.pkl', pickle.dumps({'k': [1, 2.5, 'x']}, 2))
        zf.writestr('a/data/0', b'\x00' * 64)
    doc = json.dumps({'refs': [{'ref_id': 1, 'sentences': ['a b']}]})
    seed = dict(
        mutate_bytes=buf.getvalue(),
        mutate_zip_member=buf.getvalue(),
        mutate_zip_headers=buf.getvalue(),
        mutate_pickle=pickle.dumps({'k': [1, 2.5, 'x']}, 2),
        mutate_json=doc.encode())[mutator.__name__]
    rng = random.Random(0)
    changed = sum(mutator(seed, rng) != seed for _ in range(40))
    assert changed >= 30


#: Inputs per real target in the default suite (the README's long campaign
#: runs 100,000 per target with tools/misc/fuzz_loaders.py).
SHORT_RUN = 150


@pytest.mark.parametrize('target', ['checkpoint', 'torchscript'])
def test_short_campaign(target, tmp_path):
    report = fuzz.run_fuzz(target, SHORT_RUN, seed=0, save_dir=str(tmp_path))
    assert report.inputs == SHORT_RUN
    assert not report.failures, report.failures[:3]
    # the campaign exercises both outcomes
    assert report.loaded > 0 and report.refused > SHORT_RUN // 2
