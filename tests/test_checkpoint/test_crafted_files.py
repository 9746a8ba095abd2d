# Copyright (c) mmris contributors. All rights reserved.
"""Crafted checkpoint files: memory corruption through numpy dtypes, tiny
files that allocate gigabytes, malformed records, deep nesting, legacy files
without checksums, another optimizer on --resume. Loads that could crash or
exhaust the machine run in a subprocess with a memory cap and report their
peak memory."""
import json
import os
import os.path as osp
import subprocess
import sys
import textwrap
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn as nn

import mmris  # noqa: F401
from mmris.checkpoint import (CorruptCheckpointError, LegacyCheckpointWarning,
                              OptimizerMismatchError, UnsafeCheckpointError,
                              check_optimizer_state, safe_torch_load)
from test_checkpoint import _crafted

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TESTS = osp.join(ROOT, 'tests')

#: The child's address space may grow this much past its imports; the old
#: loader needed gigabytes for the bombs below.
CAP_MB = 1536

_CHILD = textwrap.dedent('''
    import json, os, resource, sys
    import mmris
    from mmris.checkpoint import load_clip_state_dict, safe_torch_load

    def status(key):
        with open('/proc/self/status') as f:
            return next(int(l.split()[1]) for l in f if l.startswith(key))

    for line in sys.stdin:
        path, loader = json.loads(line)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # one forked process per file: a crash stays there
            os.close(read)
            cap = status('VmSize:') * 1024 + CAP_MB * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
            rss0 = status('VmRSS:')
            out = dict(error=None, message='')
            try:
                dict(safe_torch_load=safe_torch_load,
                     load_clip_state_dict=load_clip_state_dict)[loader](path)
            except BaseException as err:
                out.update(error=type(err).__name__, message=str(err))
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            out['peak_mb'] = max(0, peak - rss0) / 1024
            os.write(write, json.dumps(out).encode())
            os._exit(0)
        os.close(write)
        data = b''
        while True:
            chunk = os.read(read, 65536)
            if not chunk:
                break
            data += chunk
        os.close(read)
        _, status_code = os.waitpid(pid, 0)
        report = json.loads(data) if data else dict(error='died')
        report['returncode'] = os.waitstatus_to_exitcode(status_code)
        print(json.dumps(report), flush=True)
''').replace('CAP_MB', str(CAP_MB))


def _load_in_subprocess(*jobs) -> list:
    """Load each ``(path, loader)`` in a process forked from one fresh
    interpreter, with a capped address space.

    Returns one report per job: ``error`` (class name), ``message``,
    ``peak_mb`` (peak RSS growth during the load) and ``returncode``.
    """
    env = dict(
        os.environ,
        PYTHONPATH=ROOT,
        CUDA_VISIBLE_DEVICES='',
        OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, '-c', _CHILD],
                          input=''.join(
                              json.dumps(list(job)) + '\n' for job in jobs),
                          capture_output=True,
                          text=True,
                          env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [
        json.loads(line) for line in proc.stdout.splitlines()
        if line.startswith('{')
    ]
    assert len(reports) == len(jobs), proc.stderr[-3000:]
    for report in reports:
        assert report['returncode'] == 0, (
            f'the loader process died: {report}')
    return reports


def _crafted_files(folder: str) -> dict:
    """name -> (path, loader) of every file that must be loaded in a
    separate process."""
    jobs = {}
    for payload, where in (('object_pointer_array',
                            'state_dict'), ('object_pointer_array', 'meta'),
                           ('out_of_range_field_array', 'meta')):
        path = osp.join(folder, f'{payload}_{where}.pth')
        torch.manual_seed(0)
        state = nn.Linear(4, 3).state_dict()
        meta = dict(epoch=1)
        (state if where == 'state_dict' else meta)['x'] = getattr(
            _crafted, payload)()
        torch.save(dict(state_dict=state, meta=meta), path)
        jobs[f'{payload}-{where}'] = (path, 'safe_torch_load')
    path = osp.join(folder, 'stride0.pth')
    torch.save({'visual.conv1.weight': _crafted.stride_zero_tensor(2**31)},
               path)
    assert os.path.getsize(path) < 2000
    for loader in ('safe_torch_load', 'load_clip_state_dict'):
        jobs[f'stride0-{loader}'] = (path, loader)
    for torchscript in (False, True):
        path = osp.join(folder, 'bomb.pt' if torchscript else 'bomb.pth')
        _crafted.deflate_bomb(path, 1 << 30, torchscript=torchscript)
        assert os.path.getsize(path) < 2 << 20
        jobs[f'deflate-{torchscript}'] = (path, 'load_clip_state_dict' if
                                          torchscript else 'safe_torch_load')
    import pickle
    body = (
        pickle.PROTO + b'\x02' + pickle.EMPTY_DICT + pickle.NONE +
        pickle.TUPLE1 * 100000 + pickle.NONE + pickle.SETITEM + pickle.STOP)
    path = osp.join(folder, 'keys.pth')
    _crafted.write_zip(path, {'archive/data.pkl': body})
    jobs['nested-tuple-key'] = (path, 'safe_torch_load')
    return jobs


@pytest.fixture(scope='module')
def isolated(tmp_path_factory):
    """Reports of the crafted files loaded in separate processes."""
    folder = str(tmp_path_factory.mktemp('crafted'))
    jobs = _crafted_files(folder)
    reports = _load_in_subprocess(*jobs.values())
    return {
        name: dict(report, path=jobs[name][0])
        for name, report in zip(jobs, reports)
    }


def _tiny_state():
    torch.manual_seed(0)
    return nn.Linear(4, 3).state_dict()


# -- numpy dtypes: memory corruption ----------------------------------------
@pytest.mark.parametrize('name', [
    'object_pointer_array-state_dict', 'object_pointer_array-meta',
    'out_of_range_field_array-meta'
])
def test_crafted_numpy_dtypes_are_refused_in_a_clean_process(name, isolated):
    report = isolated[name]
    assert report['error'] == 'UnsafeCheckpointError', report
    assert f'"{report["path"]}"' in report['message']
    code = 'O8' if 'object' in name else 'V8'
    assert f"numpy dtype '{code}'" in report['message']


def test_dtype_state_cannot_change_a_builtin_dtype(tmp_path):
    # a float64 dtype whose pickled state asks for another byte order and
    # flags: numpy's __setstate__ would alter the process-wide float64
    path = str(tmp_path / 'f8.pth')
    dtype = _crafted.FakeDType('f8', (3, '>', None, None, None, -1, -1, 63))
    torch.save(
        dict(meta=dict(a=_crafted.FakeArray(dtype, (1, ), b'\0' * 8))), path)
    with pytest.raises(
            UnsafeCheckpointError, match="numpy dtype <f8 with "
            "state"):
        safe_torch_load(path)
    assert np.dtype('f8').byteorder == '=' and np.dtype('f8').flags == 0


def test_plain_numpy_values_still_load(tmp_path):
    path = str(tmp_path / 'np.pth')
    values = dict(
        arr=np.arange(6, dtype=np.int32).reshape(2, 3),
        f=np.asfortranarray(np.ones((2, 3), np.float16)),
        scalar=np.float64(2.5),
        flag=np.bool_(True),
        empty=np.zeros((0, 4)))
    torch.save(dict(meta=values), path)
    loaded = safe_torch_load(path)['meta']
    for key, value in values.items():
        assert type(loaded[key]) is type(value), key
        assert np.array_equal(loaded[key], value), key
        assert loaded[key].dtype == value.dtype, key


# -- the process-wide allow-list ---------------------------------------------
def test_import_mmris_leaves_torch_weights_only_untouched(tmp_path):
    path = str(tmp_path / 'numpy.pth')
    torch.save(dict(arr=np.arange(3), hub=OrderedDict(a=np.float64(1))), path)
    code = textwrap.dedent(f'''
        import inspect, json, pickle, torch
        import torch.serialization as ts
        callers = []
        real_add = ts.add_safe_globals
        def spy(*args, **kwargs):
            callers.append(inspect.stack()[1].filename)
            return real_add(*args, **kwargs)
        ts.add_safe_globals = torch.serialization.add_safe_globals = spy
        def plain():
            try:
                torch.load({path!r}, weights_only=True)
                return 'loaded'
            except pickle.UnpicklingError as err:
                return str(err).splitlines()[0]
        before = set(map(str, ts.get_safe_globals())), plain()
        import mmris
        from mmris.checkpoint import safe_torch_load
        assert safe_torch_load({path!r})['hub']['a'] == 1.0
        after = set(map(str, ts.get_safe_globals())), plain()
        print(json.dumps(dict(
            added=sorted(after[0] - before[0]), plain=[before[1], after[1]],
            callers=callers)))
    ''')
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, '-c', code],
                         capture_output=True,
                         text=True,
                         env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # plain torch refuses the numpy file exactly as before
    assert result['plain'][0] == result['plain'][1] != 'loaded'
    # nothing of mmris widened the allow-list (torch.distributed, imported
    # by the OpenMMLab stack, registers its own DTensor classes)
    assert not [c for c in result['callers'] if '/mmris/' in c]
    assert not [
        g for g in result['added'] if any(
            w in g for w in ('numpy', 'mmengine', 'getattr', 'builtins',
                             'collections'))
    ]


# -- tiny files that allocate gigabytes --------------------------------------
@pytest.mark.parametrize('loader', ['safe_torch_load', 'load_clip_state_dict'])
def test_stride_zero_tensor_is_refused_before_allocating(loader, isolated):
    # 782 bytes declaring 2^31 fp16 elements over a 1-element storage
    report = isolated[f'stride0-{loader}']
    assert report['error'] == 'CorruptCheckpointError', report
    assert f'"{report["path"]}"' in report['message']
    assert 'overlaps itself' in report['message']
    assert report['peak_mb'] < 100, report


@pytest.mark.parametrize('torchscript', [False, True])
def test_deflated_record_bomb_is_refused_before_inflating(
        torchscript, isolated):
    # ~1 MB on disk, 1 GiB once inflated
    report = isolated[f'deflate-{torchscript}']
    assert report['error'] == 'CorruptCheckpointError', report
    assert f'"{report["path"]}"' in report['message']
    assert '/data/0" is compressed' in report['message']
    assert report['peak_mb'] < 100, report


def test_views_covering_storage_many_times_are_refused(tmp_path):
    # 64 full views of one 1 MiB storage: 64 MiB of tensors from 1 MiB
    path = str(tmp_path / 'views.pth')
    base = torch.zeros(1 << 18)
    torch.save({f'k{i}': base.view(-1) for i in range(64)}, path)
    with pytest.raises(
            CorruptCheckpointError, match='tensors view .* bytes of storage'):
        safe_torch_load(path)
    # tied weights (each storage viewed twice) are fine
    torch.save({'a': base, 'b': base}, path)
    assert safe_torch_load(path)['a'].shape == (1 << 18, )


# -- malformed records --------------------------------------------------------
@pytest.mark.parametrize('numel,nbytes', [(16, 60), (16, 68), (2**40, 64)])
def test_record_size_must_match_its_tensor(numel, nbytes, tmp_path):
    path = str(tmp_path / 'sizes.pth')
    tensor = _crafted.StridedTensor(
        _crafted.FakeStorage('0', numel), (16, ), (1, ))
    _crafted.crafted_checkpoint(
        path, {'w': tensor}, records={'0': b'\0' * nbytes})
    with pytest.raises(CorruptCheckpointError) as info:
        safe_torch_load(path)
    assert (f'Checkpoint "{path}" is damaged: tensor record '
            f'"archive/data/0" holds {nbytes} bytes, but its tensors '
            f'declare {numel} x 4') in str(info.value)


def test_tensor_reading_past_its_storage_is_refused(tmp_path):
    path = str(tmp_path / 'past.pth')
    tensor = _crafted.StridedTensor(
        _crafted.FakeStorage('0', 4), (4, 4), (4, 1))
    _crafted.crafted_checkpoint(path, {'w': tensor}, records={'0': b'\0' * 16})
    with pytest.raises(
            CorruptCheckpointError,
            match='reads element 15 of '
            'a storage of 4 elements'):
        safe_torch_load(path)


def test_overlapping_zip_records_are_refused(tmp_path):
    # two directory entries pointing at the same bytes would double the
    # storage read from them
    src = str(tmp_path / 'src.pth')
    torch.save({'a': torch.zeros(1000), 'b': torch.zeros(1000)}, src)
    raw = bytearray(open(src, 'rb').read())
    import zipfile
    with zipfile.ZipFile(src) as zf:
        infos = {i.filename: i for i in zf.infolist()}
    first, second = (infos[n] for n in sorted(infos) if '/data/' in n)
    # point the second record's central entry at the first's local header
    pos = raw.find(b'PK\x01\x02')
    while pos != -1:
        name_len = int.from_bytes(raw[pos + 28:pos + 30], 'little')
        if raw[pos + 46:pos + 46 + name_len].decode() == second.filename:
            raw[pos + 42:pos + 46] = first.header_offset.to_bytes(4, 'little')
        pos = raw.find(b'PK\x01\x02', pos + 4)
    bad = str(tmp_path / 'overlap.pth')
    open(bad, 'wb').write(bytes(raw))
    with pytest.raises(CorruptCheckpointError, match='share bytes'):
        safe_torch_load(bad)


def test_deeply_nested_torchscript_modules_are_refused_by_name(tmp_path):
    from mmris.checkpoint import load_clip_state_dict
    path = str(tmp_path / 'nested.pt')
    _crafted.nested_torchscript(path, 5000)
    with pytest.raises(CorruptCheckpointError) as info:
        load_clip_state_dict(path)
    assert f'"{path}"' in str(info.value)
    assert 'nested more than 100 deep' in str(info.value)


def test_deeply_nested_lists_and_cycles_are_refused(tmp_path):
    path = str(tmp_path / 'deep.pth')
    deep: list = []
    for _ in range(200):
        deep = [deep]
    torch.save({'meta': deep}, path)
    with pytest.raises(CorruptCheckpointError, match='nested more than'):
        safe_torch_load(path)
    cyclic: list = []
    cyclic.append(cyclic)
    torch.save({'meta': cyclic}, path)
    with pytest.raises(CorruptCheckpointError, match='cyclic'):
        safe_torch_load(path)


def test_nested_tuple_keys_are_refused_before_hashing(isolated):
    # hashing a 10^5-deep tuple would overflow the C stack
    report = isolated['nested-tuple-key']
    assert report['error'] == 'UnsafeCheckpointError', report
    assert 'dictionary key' in report['message']


# -- legacy files -------------------------------------------------------------
def test_legacy_file_loads_with_a_warning_that_damage_goes_unseen(tmp_path):
    path = str(tmp_path / 'legacy.pth')
    state = dict(w=torch.arange(8.0), h=torch.ones(3).half())
    torch.save(
        dict(state_dict=state, epoch=2),
        path,
        _use_new_zipfile_serialization=False)
    with pytest.warns(LegacyCheckpointWarning) as record:
        loaded = safe_torch_load(path)
    assert torch.equal(loaded['state_dict']['w'], state['w'])
    assert loaded['state_dict']['h'].dtype == torch.float16
    message = str(record[0].message)
    assert f'"{path}" is a legacy' in message and 'no checksums' in message
    # a flipped byte in the data is not detected (no checksum): the warning
    # is what the user gets
    raw = bytearray(open(path, 'rb').read())
    raw[-1] ^= 0x40  # a byte of the storage written last
    open(path, 'wb').write(bytes(raw))
    with pytest.warns(LegacyCheckpointWarning):
        changed = safe_torch_load(path)['state_dict']
    # (legacy storages are written in the order of their memory addresses,
    # so which tensor holds the byte is not fixed): exactly one element of
    # one tensor changed, and nothing said so but the warning
    diffs = [
        int((changed[k].float() != state[k].float()).sum()) for k in ('w', 'h')
    ]
    assert sorted(diffs) == [0, 1]


def test_legacy_file_declaring_more_storage_than_it_holds(tmp_path):
    path = str(tmp_path / 'legacy.pth')
    torch.save(
        dict(w=torch.zeros(1000)), path, _use_new_zipfile_serialization=False)
    raw = open(path, 'rb').read()
    open(path, 'wb').write(raw[:-2000])
    with pytest.raises(
            CorruptCheckpointError,
            match=f'"{path}" is damaged: its tensors declare'):
        safe_torch_load(path)


# -- optimizer state on --resume ----------------------------------------------
def test_optimizer_state_of_another_optimizer_is_refused():
    param = nn.Parameter(torch.zeros(3))
    adam = torch.optim.Adam([param])
    sgd = torch.optim.SGD([param], lr=0.1, momentum=0.9)
    with pytest.raises(OptimizerMismatchError) as info:
        check_optimizer_state(sgd, adam.state_dict(), 'Checkpoint "x.pth"')
    msg = str(info.value)
    assert 'Checkpoint "x.pth" was saved with another optimizer' in msg
    assert 'torch.optim.Adam' in msg and 'torch.optim.SGD' in msg
    check_optimizer_state(adam, torch.optim.Adam([param]).state_dict(), 'x')
    two = torch.optim.Adam([param, nn.Parameter(torch.zeros(1))])
    with pytest.raises(OptimizerMismatchError, match='holds 2 parameters'):
        check_optimizer_state(adam, two.state_dict(), 'x')


@pytest.mark.slow
def test_resume_with_another_optimizer_fails_before_training(
        synthetic_root, tmp_path, monkeypatch):
    from test_reliability._helpers import (TINY_CONFIG, TRAIN,
                                           run_tool_inprocess, small_options)
    work = tmp_path / 'work'
    run_tool_inprocess(TRAIN, [TINY_CONFIG, '--work-dir', work] +
                       small_options(synthetic_root, batch_size=32),
                       monkeypatch)
    assert (work / 'epoch_1.pth').exists()
    sgd = [
        'optim_wrapper.optimizer.type=SGD',
        'optim_wrapper.optimizer.momentum=0.9'
    ]
    with pytest.raises(OptimizerMismatchError) as info:
        run_tool_inprocess(
            TRAIN,
            [TINY_CONFIG, '--work-dir', work, '--resume'] + small_options(
                synthetic_root, batch_size=32, max_epochs=2, extra=sgd),
            monkeypatch)
    assert 'epoch_1.pth' in str(info.value)
    assert 'Adam' in str(info.value) and 'SGD' in str(info.value)
    assert not (work / 'epoch_2.pth').exists()


@pytest.mark.slow
def test_test_tool_refuses_crafted_dtype_without_crashing(
        synthetic_root, tmp_path):
    # as reported: a real checkpoint whose meta holds a crafted object array
    # loaded, evaluated, then died with SIGSEGV (rc 139)
    from mmris.apis import init_model
    from test_reliability._helpers import TEST, TINY_CONFIG, small_options
    path = str(tmp_path / 'crafted_meta.pth')
    torch.manual_seed(0)
    state = init_model(TINY_CONFIG).state_dict()
    torch.save(
        dict(state_dict=state, meta=dict(x=_crafted.object_pointer_array())),
        path)
    env = dict(os.environ, PYTHONPATH=ROOT, CUDA_VISIBLE_DEVICES='')
    proc = subprocess.run(
        [
            sys.executable, TEST, TINY_CONFIG, path, '--work-dir',
            str(tmp_path / 'w')
        ] + small_options(synthetic_root),
        capture_output=True,
        text=True,
        env=env,
        timeout=600)
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])
    assert 'UnsafeCheckpointError' in proc.stderr
    assert "numpy dtype 'O8'" in proc.stderr and path in proc.stderr
