# Copyright (c) mmris contributors. All rights reserved.
"""Malicious checkpoints and TorchScript archives through every loader.

Each payload of ``_malicious.PAYLOADS`` (the getattr chain to ``eval`` in
``state_dict`` or ``meta``, a classic ``__reduce__``) is refused by
mmengine's ``load_checkpoint``, the Runner (``load_from`` and ``--resume``
through tools/train.py), tools/test.py, ``mmris.apis.init_model``,
tools/demo.py, the converter and the CLIP / DINOv2 ``pretrained`` paths:
the marker file never appears and the error names the file and the refused
global. TorchScript ``pretrained`` archives are read without executing them.
"""
import os.path as osp
import pickle
import warnings
import zipfile

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn

import mmris  # noqa: F401
from mmris.checkpoint import UnsafeCheckpointError
from ._helpers import (CONVERTER, TEST, TINY_CONFIG, TRAIN, run_tool_inprocess,
                       small_options)
from ._malicious import PAYLOADS, SetstateWritesFile, malicious_checkpoint

DEMO = osp.join(osp.dirname(TRAIN), 'demo.py')
TINY_CLIP = dict(img_size=32, width=16, layers=2, heads=2, output_dim=8)
TINY_DINO = dict(
    arch=dict(embed_dims=16, num_layers=2, num_heads=2), img_size=28)


@pytest.fixture(scope='module')
def tiny_state():
    """State dict of the quick-start tiny model (the tools' config)."""
    from mmris.apis import init_model
    torch.manual_seed(0)
    return init_model(TINY_CONFIG).state_dict()


def _clip_vit(pretrained=None):
    from mmris.models.backbones import CLIPVisionTransformer
    return CLIPVisionTransformer(**TINY_CLIP, pretrained=pretrained)


def _dinov2(pretrained=None):
    from mmris.models.backbones import DINOv2
    return DINOv2(**TINY_DINO, pretrained=pretrained)


# --- one function per loader: (state dict the file holds, how it is loaded)
def _via_load_checkpoint(path, ctx):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    model = MODELS.build(Config.fromfile(TINY_CONFIG).model)
    load_checkpoint(model, path)


def _via_init_model(path, ctx):
    from mmris.apis import init_model
    init_model(TINY_CONFIG, path)


def _via_demo(path, ctx):
    image = str(ctx['tmp'] / 'demo.png')
    cv2.imwrite(image, np.full((40, 50, 3), 128, np.uint8))
    out = ctx['tmp'] / 'overlay.png'
    try:
        run_tool_inprocess(DEMO, [
            image, 'the red circle', '--config', TINY_CONFIG, '--checkpoint',
            path, '--out', out
        ], ctx['monkeypatch'])
    finally:
        assert not out.exists()


def _via_converter(path, ctx):
    out = ctx['tmp'] / 'converted.pth'
    try:
        run_tool_inprocess(CONVERTER, ['etris', path, out], ctx['monkeypatch'])
    finally:
        assert not out.exists()


def _via_train_load_from(path, ctx):
    run_tool_inprocess(TRAIN,
                       [TINY_CONFIG, '--work-dir', ctx['tmp'] / 'work'] +
                       small_options(ctx['data'], extra=[f'load_from={path}']),
                       ctx['monkeypatch'])


def _via_train_resume(path, ctx):
    work = osp.dirname(path)
    with open(osp.join(work, 'last_checkpoint'), 'w') as f:
        f.write(path)
    run_tool_inprocess(TRAIN, [TINY_CONFIG, '--work-dir', work, '--resume'] +
                       small_options(ctx['data']), ctx['monkeypatch'])


def _via_test_tool(path, ctx):
    run_tool_inprocess(TEST,
                       [TINY_CONFIG, path, '--work-dir', ctx['tmp'] / 'work'] +
                       small_options(ctx['data']), ctx['monkeypatch'])


def _via_clip_pretrained(path, ctx):
    _clip_vit(path).init_weights()


def _via_dinov2_pretrained(path, ctx):
    _dinov2(path).init_weights()


LOADERS = dict(
    load_checkpoint=_via_load_checkpoint,
    init_model=_via_init_model,
    demo=_via_demo,
    converter=_via_converter,
    train_load_from=_via_train_load_from,
    train_resume=_via_train_resume,
    test_tool=_via_test_tool,
    clip_pretrained=_via_clip_pretrained,
    dinov2_pretrained=_via_dinov2_pretrained)


@pytest.mark.parametrize('kind', list(PAYLOADS))
@pytest.mark.parametrize('loader', list(LOADERS))
def test_loader_refuses_malicious_checkpoint(loader, kind, tiny_state,
                                             synthetic_root, tmp_path,
                                             monkeypatch):
    if loader == 'clip_pretrained':
        state = {'visual.' + k: v for k, v in _clip_vit().state_dict().items()}
    elif loader == 'dinov2_pretrained':
        state = _dinov2().state_dict()
    else:
        state = tiny_state
    marker = str(tmp_path / 'pwned')
    name = 'epoch_1.pth' if loader == 'train_resume' else f'{kind}.pth'
    path = malicious_checkpoint(str(tmp_path / name), kind, state, marker)
    ctx = dict(tmp=tmp_path, monkeypatch=monkeypatch, data=synthetic_root)
    with pytest.raises(UnsafeCheckpointError) as info:
        LOADERS[loader](path, ctx)
    msg = str(info.value)
    assert path in msg, msg
    assert f'refused global: {PAYLOADS[kind]}' in msg, msg
    assert not osp.exists(marker)


# --- TorchScript pretrained archives ----------------------------------------
def _jit_save(module, path, example=None):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        if example is None:
            torch.jit.save(torch.jit.script(module), path)
        else:
            torch.jit.save(torch.jit.trace(module, example), path)


class _OpenAIShaped(nn.Module):
    """``visual.*`` plus a text tower under OpenAI's names (fp16, as the
    OpenAI archives)."""

    def __init__(self):
        super().__init__()
        from mmris.models.backbones import CLIPTextTransformer
        self.visual = _clip_vit()
        text = CLIPTextTransformer(width=16, heads=2, layers=2, embed_dim=8)
        for name, child in text.named_children():
            self.add_module(name, child)
        for name, p in text.named_parameters(recurse=False):
            self.register_parameter(name, p)
        self.register_buffer('input_resolution', torch.tensor(32))
        self.half()

    def forward(self, x):
        return x + 1


def test_torchscript_archive_read_as_weights_without_jit_load(
        tmp_path, monkeypatch):
    from mmris.checkpoint import is_torchscript_archive, load_clip_state_dict
    torch.manual_seed(0)
    holder = _OpenAIShaped()
    path = str(tmp_path / 'ViT-tiny.pt')
    _jit_save(holder, path, example=torch.zeros(1))
    assert is_torchscript_archive(path)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        expected = torch.jit.load(path).state_dict()

    def no_jit(*args, **kwargs):
        raise AssertionError('torch.jit.load must not be called')

    monkeypatch.setattr(torch.jit, 'load', no_jit)
    state = load_clip_state_dict(path)
    assert set(state) == set(expected) - {'input_resolution'}
    for key, value in state.items():
        want = torch.float32 if expected[key].is_floating_point() else \
            expected[key].dtype
        assert value.dtype == want, key
        assert torch.equal(value, expected[key].to(value.dtype)), key
    vit = _clip_vit(path)
    vit.init_weights()
    assert torch.equal(vit.conv1.weight, holder.visual.conv1.weight.float())


def test_torchscript_setstate_archive_is_refused_and_not_run(tmp_path):
    from mmris.checkpoint import load_clip_state_dict
    marker = tmp_path / 'pwned_ts'
    path = str(tmp_path / 'evil_ts.pt')
    _jit_save(SetstateWritesFile(str(marker)), path)
    assert not marker.exists()
    with pytest.raises(UnsafeCheckpointError) as info:
        load_clip_state_dict(path)
    msg = str(info.value)
    assert f'"{path}"' in msg and '__torch__' in msg and 'SetstateWritesFile' \
        in msg and '__setstate__' in msg
    with pytest.raises(UnsafeCheckpointError):
        _clip_vit(path).init_weights()
    assert not marker.exists()
    # the crafted archive is real: torch.jit.load would have run it
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.jit.load(path)
    assert marker.exists()


def _patch_data_pkl(src, dst, payload):
    """Copy a zip archive, appending ``payload`` to the root dict of its
    data.pkl under the key 'evil'."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, 'w') as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith('/data.pkl'):
                assert data.endswith(pickle.STOP)
                data = data[:-1] + payload + b'.'
            zout.writestr(info, data)


def test_torchscript_archive_with_edited_pickle_is_refused(tmp_path):
    from mmris.checkpoint import load_clip_state_dict
    src = str(tmp_path / 'clip.pt')
    _jit_save(_OpenAIShaped(), src, example=torch.zeros(1))
    marker = str(tmp_path / 'pwned_pkl')
    # POP the module, then call os.system / builtins.open from the pickle
    reduce = (b'0cposix\nsystem\n(X' +
              len(f'touch {marker}').to_bytes(4, 'little') +
              f'touch {marker}'.encode() + b'tR')
    dst = str(tmp_path / 'clip_edited.pt')
    _patch_data_pkl(src, dst, reduce)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_clip_state_dict(dst)
    assert f'"{dst}"' in str(info.value)
    assert 'refused global: posix.system' in str(info.value)
    assert not osp.exists(marker)
    with zipfile.ZipFile(dst) as zf:
        raw = zf.read(
            next(n for n in zf.namelist() if n.endswith('/data.pkl')))
    assert b'posix\nsystem' in raw and pickle.STOP[0] == raw[-1]


# --- damaged files ---------------------------------------------------------
def _flip_one_bit(path: str) -> str:
    """Flip one bit inside the largest tensor record of a zip checkpoint;
    returns the record's name."""
    raw = bytearray(open(path, 'rb').read())
    with zipfile.ZipFile(path) as zf:
        info = max((i for i in zf.infolist() if '/data/' in i.filename),
                   key=lambda i: i.file_size)
    head = info.header_offset
    start = head + 30 + int.from_bytes(raw[head + 26:head + 28], 'little') \
        + int.from_bytes(raw[head + 28:head + 30], 'little')
    raw[start + info.file_size // 2] ^= 0x04
    open(path, 'wb').write(bytes(raw))
    return info.filename


@pytest.mark.parametrize('loader', [
    'load_checkpoint', 'init_model', 'demo', 'converter', 'train_load_from',
    'test_tool', 'clip_pretrained', 'clip_torchscript', 'dinov2_pretrained'
])
def test_loader_rejects_bit_flipped_checkpoint(loader, tiny_state,
                                               synthetic_root, tmp_path,
                                               monkeypatch):
    from mmris.checkpoint import CorruptCheckpointError
    path = str(tmp_path / 'flipped.pth')
    if loader == 'clip_torchscript':
        _jit_save(_OpenAIShaped(), path, example=torch.zeros(1))
        call = _via_clip_pretrained
    else:
        if loader == 'clip_pretrained':
            state = {
                'visual.' + k: v
                for k, v in _clip_vit().state_dict().items()
            }
        elif loader == 'dinov2_pretrained':
            state = _dinov2().state_dict()
        else:
            state = tiny_state
        torch.save(dict(state_dict=state, meta={}), path)
        call = LOADERS[loader]
    record = _flip_one_bit(path)
    ctx = dict(tmp=tmp_path, monkeypatch=monkeypatch, data=synthetic_root)
    with pytest.raises(CorruptCheckpointError) as info:
        call(path, ctx)
    assert f'"{path}" is damaged: record "{record}" fails its CRC-32' in \
        str(info.value)
