# Copyright (c) mmris contributors. All rights reserved.
"""The two stack incompatibilities absorbed by ``mmris.compat``: the
mmcv._ext placeholder and the safe checkpoint loader (allow-list, restricted
``getattr`` stand-in, integrity check, messages)."""
import os
import pickle
import pickletools
import sys
import zipfile
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn
from mmengine.runner import load_checkpoint, save_checkpoint

import mmris  # noqa: F401
from mmris import compat
from mmris.checkpoint import (CorruptCheckpointError, UnsafeCheckpointError,
                              safe_torch_load, unsafe_checkpoint_loading)
from test_reliability._malicious import PAYLOADS, GetAttr, malicious_checkpoint


def test_mmcv_ext_placeholder_only_without_compiled_ops():
    import mmseg.models  # noqa: F401  (imports mmcv.ops at module level)
    ext = sys.modules['mmcv._ext']
    if compat.MMCV_OPS_AVAILABLE:
        pytest.skip('full mmcv installed: the placeholder must not be used')
    assert ext.__spec__ is not None and ext.__spec__.name == 'mmcv._ext'
    with pytest.raises(RuntimeError, match='nms.*full "mmcv"'):
        ext.nms()
    # pure-torch helpers keep working
    from mmcv.ops import point_sample
    out = point_sample(torch.ones(1, 1, 4, 4), torch.rand(1, 3, 2))
    assert out.shape == (1, 1, 3)


class _Payload:
    """Unpickling this writes a file: a stand-in for malicious code."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / 'pwned'
    ckpt = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': _Payload(str(marker))}, ckpt)
    assert not marker.exists()
    with pytest.raises(UnsafeCheckpointError, match='evil.pth.*open'):
        safe_torch_load(str(ckpt))
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint(nn.Linear(1, 1), str(ckpt))
    assert not marker.exists()
    # The explicit, named opt-in does unpickle it.
    with unsafe_checkpoint_loading():
        safe_torch_load(str(ckpt))
    assert marker.exists()


def test_mmengine_checkpoint_roundtrip(tmp_path):
    import numpy as np
    from mmengine.logging import HistoryBuffer
    model = nn.Linear(3, 2)
    path = str(tmp_path / 'ckpt.pth')
    meta = dict(
        hist=HistoryBuffer([1.0, 2.0], [1, 1]),
        arr=np.arange(3),
        seed=np.int64(3),
        dtype=np.dtype('float32'))
    save_checkpoint(dict(state_dict=model.state_dict(), meta=meta), path)
    other = nn.Linear(3, 2)
    ckpt = load_checkpoint(other, path)
    assert torch.equal(other.weight, model.weight)
    assert isinstance(ckpt['meta']['hist'], HistoryBuffer)
    assert ckpt['meta']['seed'] == 3


def test_runner_save_then_resume(tmp_path):
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class ToyModel(BaseModel):

        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 1)

        def forward(self, inputs, labels=None, mode='tensor'):
            out = self.linear(inputs)
            if mode == 'loss':
                return dict(loss=((out - labels)**2).mean())
            return out

    data = [
        dict(inputs=torch.randn(2), labels=torch.randn(1)) for _ in range(8)
    ]

    def make_runner(resume):
        return Runner(
            model=ToyModel(),
            work_dir=str(tmp_path),
            train_dataloader=dict(
                dataset=data,
                sampler=dict(type='DefaultSampler', shuffle=False),
                batch_size=2,
                collate_fn=dict(type='default_collate')),
            optim_wrapper=dict(optimizer=dict(type='Adam', lr=0.1)),
            train_cfg=dict(by_epoch=True, max_epochs=2 if not resume else 3),
            default_hooks=dict(logger=dict(type='LoggerHook', interval=1)),
            resume=resume,
            default_scope='mmengine')

    runner = make_runner(False)
    runner.train()
    assert os.path.exists(tmp_path / 'epoch_2.pth')
    # the message hub really pickles getattr(HistoryBuffer, <statistic>)
    assert 'getattr' in _pickled_globals(tmp_path / 'epoch_2.pth')
    w = runner.model.linear.weight.detach().clone()
    resumed = make_runner(True)
    resumed.train()
    assert resumed.epoch == 3
    assert not torch.equal(resumed.model.linear.weight.detach(), w)
    loss = resumed.message_hub.get_scalar('train/loss')
    assert loss.statistics('mean') == loss.mean()
    assert len(loss.data[0]) == 12  # 8 iterations resumed + 4 new


def _pickled_globals(path) -> str:
    with zipfile.ZipFile(path) as zf:
        name = next(n for n in zf.namelist() if n.endswith('/data.pkl'))
        ops = pickletools.genops(zf.read(name))
        return ' '.join(str(arg) for op, arg, _ in ops if op.name == 'GLOBAL')


@pytest.mark.parametrize('kind', list(PAYLOADS))
def test_getattr_chain_and_reduce_payloads_are_refused(tmp_path, kind):
    marker = str(tmp_path / 'pwned')
    model = nn.Linear(3, 2)
    path = malicious_checkpoint(
        str(tmp_path / f'{kind}.pth'), kind, model.state_dict(), marker)
    with pytest.raises(UnsafeCheckpointError) as info:
        safe_torch_load(path)
    msg = str(info.value)
    assert f'"{path}"' in msg and f'refused global: {PAYLOADS[kind]}' in msg
    # plain torch.load is not widened by the allow-list mmris registers
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    assert not os.path.exists(marker)


def test_getattr_stand_in_allows_only_history_buffer_statistics(tmp_path):
    from mmengine.logging import HistoryBuffer
    path = str(tmp_path / 'stats.pth')
    torch.save(
        {
            'mean': GetAttr(HistoryBuffer, 'mean'),
            'current': GetAttr(HistoryBuffer, 'current')
        }, path)
    loaded = safe_torch_load(path)
    assert loaded == {
        'mean': HistoryBuffer.mean,
        'current': HistoryBuffer.current
    }
    for obj, name, shown in ((HistoryBuffer, '__init__', 'HistoryBuffer'),
                             (HistoryBuffer, 'register_statistics',
                              'HistoryBuffer'), (OrderedDict, 'fromkeys',
                                                 'collections.OrderedDict')):
        torch.save({'x': GetAttr(obj, name)}, path)
        with pytest.raises(UnsafeCheckpointError) as info:
            safe_torch_load(path)
        msg = str(info.value)
        assert 'refused global: builtins.getattr' in msg
        assert f"{shown}, '{name}')" in msg


def _flip_byte_in_record(src, dst, record='data/0'):
    raw = bytearray(open(src, 'rb').read())
    with zipfile.ZipFile(src) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith(record))
    # local header: 30 bytes + name + extra, then the stored bytes
    name_len = int.from_bytes(
        raw[info.header_offset + 26:info.header_offset + 28], 'little')
    extra_len = int.from_bytes(
        raw[info.header_offset + 28:info.header_offset + 30], 'little')
    start = info.header_offset + 30 + name_len + extra_len
    raw[start + 5] ^= 0x10
    open(dst, 'wb').write(bytes(raw))
    return info.filename


def test_corrupt_checkpoints_fail_naming_the_file(tmp_path):
    model = nn.Linear(64, 64)
    good = str(tmp_path / 'good.pth')
    save_checkpoint(dict(state_dict=model.state_dict(), meta={}), good)
    flipped = str(tmp_path / 'flipped.pth')
    record = _flip_byte_in_record(good, flipped)
    with pytest.raises(CorruptCheckpointError) as info:
        safe_torch_load(flipped)
    assert f'"{flipped}"' in str(info.value)
    assert f'"{record}" fails its CRC-32 check' in str(info.value)
    # the MMEngine entry points go through the same loader
    with pytest.raises(CorruptCheckpointError, match='flipped.pth'):
        load_checkpoint(nn.Linear(64, 64), flipped)
    with unsafe_checkpoint_loading():  # integrity is checked either way
        with pytest.raises(CorruptCheckpointError, match='CRC-32'):
            safe_torch_load(flipped)

    truncated = str(tmp_path / 'truncated.pth')
    data = open(good, 'rb').read()
    open(truncated, 'wb').write(data[:len(data) // 2])
    with pytest.raises(
            CorruptCheckpointError,
            match='"truncated.pth" is damaged|truncated.pth.*'
            'truncated'):
        safe_torch_load(truncated)
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    with pytest.raises(CorruptCheckpointError, match='empty.pth.*empty'):
        safe_torch_load(str(empty))
    # a healthy checkpoint still loads
    assert torch.equal(
        safe_torch_load(good)['state_dict']['weight'], model.weight)


@pytest.mark.parametrize(
    'content', [b'hello world\n', b'just some notes\n', b'{"a": 1}\n'])
def test_non_checkpoint_says_what_it_is_not(tmp_path, content):
    path = tmp_path / 'notes.txt'
    path.write_bytes(content)
    with pytest.raises(CorruptCheckpointError) as info:
        safe_torch_load(str(path))
    msg = str(info.value)
    assert f'"{path}" is not a PyTorch checkpoint' in msg
    assert 'neither a zip archive written by torch.save' in msg
    assert 'unsafe' not in msg


class _ForgedHistoryBuffer:
    """Pickles as a HistoryBuffer whose statistics_methods maps ``name`` to
    ``method`` (HistoryBuffer.__setstate__ merges that into the class-level
    table every buffer of the process uses)."""

    def __init__(self, name, method):
        self.name = name
        self.method = method

    def __reduce__(self):
        import numpy as np
        from mmengine.logging import HistoryBuffer
        state = dict(
            max_length=10,
            _log_history=np.array([1.0, 3.0]),
            _count_history=np.array([1, 1]),
            statistics_methods={self.name: self.method})
        return (HistoryBuffer, (), state)


def test_history_buffer_state_cannot_rebind_statistics(tmp_path):
    from mmengine.logging import HistoryBuffer
    before = dict(HistoryBuffer._statistics_methods)
    path = str(tmp_path / 'hub.pth')
    # an honest buffer loads (its statistics are the class's own)
    torch.save(
        {'hub': _ForgedHistoryBuffer('mean', GetAttr(HistoryBuffer, 'mean'))},
        path)
    buf = safe_torch_load(path)['hub']
    assert type(buf) is HistoryBuffer and buf.mean() == 2.0
    # 'mean' rebound to another allowed callable: refused, table untouched
    for method in (GetAttr(HistoryBuffer, 'max'), OrderedDict):
        torch.save({'hub': _ForgedHistoryBuffer('mean', method)}, path)
        with pytest.raises(UnsafeCheckpointError) as info:
            safe_torch_load(path)
        assert 'HistoryBuffer statistics_methods' in str(info.value)
        assert f'"{path}"' in str(info.value)
    assert HistoryBuffer._statistics_methods == before or not before
    assert HistoryBuffer._statistics_methods.get(
        'mean', HistoryBuffer.mean) is HistoryBuffer.mean
