# Copyright (c) mmris contributors. All rights reserved.
"""Untrusted and wrong checkpoints: refused (malicious pickle) or rejected
with the missing / unexpected / shape-mismatched keys (wrong config), through
``load_ris_checkpoint``, ``RISRunner``, tools/train.py (``load_from`` and
``--resume``) and tools/model_converters/ris2mmris.py."""
import functools
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import mmris  # noqa: F401
from mmris.checkpoint import (CheckpointMismatchError, UnsafeCheckpointError,
                              check_state_dict, load_ris_checkpoint)
from mmris.engine import RISRunner
from ._helpers import (CONVERTER, ROOT, TINY_CONFIG, TRAIN, run_tool_inprocess,
                       small_options, tiny_model_cfg)


class _Payload:
    """Unpickling this writes a file: a stand-in for malicious code."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


def _evil(tmp_path, name='evil.pth'):
    marker = tmp_path / f'pwned_{name}'
    ckpt = tmp_path / name
    torch.save(
        {
            'state_dict': {},
            'meta': _Payload(str(marker)),
            'message_hub': {}
        }, ckpt)
    assert not marker.exists()
    return ckpt, marker


def _build(cfg):
    init_default_scope('mmseg')
    return MODELS.build(cfg)


def _tiny_detris_cfg():
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', 'detris', 'detris-b_refcoco.py'))
    model = cfg.model.to_dict()
    bb = model['backbone']
    bb['visual'].update(arch=dict(embed_dims=64, num_layers=4, num_heads=2))
    bb['text'].update(width=64, heads=2, layers=4, embed_dim=64)
    bb['adapters']['dense_aligner']['module'].update(
        in_channels=64,
        hidden_channels=32,
        text_channels=64,
        embed_dims=16,
        num_heads=2)
    bb['adapters']['dense_aligner']['layers'] = [1, 3]
    bb['adapters']['text_adapter']['module'].update(
        in_channels=64, hidden_channels=32)
    bb['adapters']['text_adapter']['layers'] = [1, 3]
    bb['out_indices'] = (1, 2)
    model['neck'].update(
        in_channels=(64, 64, 64), text_channels=64, out_channels=64, nhead=2)
    model['decode_head'].update(
        d_model=64, nhead=2, dim_ffn=64, text_channels=64)
    return model


@pytest.fixture(scope='module')
def tiny_ckpts(tmp_path_factory):
    """Checkpoints of the tiny ETRIS model at widths 32 and 64."""
    root = tmp_path_factory.mktemp('ckpts')
    paths = {}
    for width in (32, 64):
        torch.manual_seed(width)
        model = _build(tiny_model_cfg(width))
        paths[width] = str(root / f'etris_w{width}.pth')
        torch.save(
            dict(state_dict=model.state_dict(), meta=dict()), paths[width])
    return paths


def test_matching_checkpoint_loads_exactly(tiny_ckpts):
    model = _build(tiny_model_cfg(64))
    ckpt = load_ris_checkpoint(model, tiny_ckpts[64])
    for k, v in model.state_dict().items():
        assert torch.equal(v, ckpt['state_dict'][k]), k
    # DDP-style "module." prefixes are stripped
    prefixed = {'module.' + k: v for k, v in ckpt['state_dict'].items()}
    torch.save(dict(state_dict=prefixed), tiny_ckpts[64] + '.ddp')
    load_ris_checkpoint(_build(tiny_model_cfg(64)), tiny_ckpts[64] + '.ddp')


def test_wrong_width_lists_shape_mismatches(tiny_ckpts):
    model = _build(tiny_model_cfg(64))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointMismatchError) as info:
        load_ris_checkpoint(model, tiny_ckpts[32])
    msg = str(info.value)
    report = info.value.report
    assert report.mismatched and not report.missing
    assert 'etris_w32.pth' in msg
    assert f'{len(report.mismatched)} shape-mismatched' in msg
    assert 'checkpoint (32,) vs model (64,)' in msg
    assert '... (+' in msg  # a short list, with the count of the rest
    assert 'strict_load=False' in msg  # names the opt-out
    # nothing was loaded: no silent partial load
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k

    # explicit opt-out: matching tensors load, mismatched ones are skipped
    report = load_ris_checkpoint(model, tiny_ckpts[32], strict=False)
    src = torch.load(tiny_ckpts[32])['state_dict']
    key = 'backbone.visual.conv1.weight'
    same = [k for k, v in src.items() if v.shape == before[k].shape]
    assert same and key not in same
    for k in same:
        assert torch.equal(model.state_dict()[k], src[k]), k
    assert torch.equal(model.state_dict()[key], before[key])


def test_etris_file_into_detris_model(tiny_ckpts):
    detris = _build(_tiny_detris_cfg())
    with pytest.raises(CheckpointMismatchError) as info:
        load_ris_checkpoint(detris, tiny_ckpts[64])
    report = info.value.report
    msg = str(info.value)
    assert report.missing and report.unexpected
    for kind, items in (('missing', report.missing), ('unexpected',
                                                      report.unexpected)):
        assert f'{kind} in checkpoint ({len(items)}): {items[0]}' in msg
    assert f'{len(report.missing)} missing, {len(report.unexpected)} ' \
        'unexpected' in msg
    assert check_state_dict(detris, detris.state_dict()).ok


def _runner(tmp_path, **cfg_overrides):
    cfg = Config.fromfile(TINY_CONFIG)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.model = tiny_model_cfg(64)  # the architecture of tiny_ckpts[64]
    cfg.merge_from_dict(cfg_overrides)
    assert cfg.runner_type == 'RISRunner'
    from mmris.engine import build_runner
    runner = build_runner(cfg)
    assert isinstance(runner, RISRunner)
    return runner


def test_risrunner_strict_by_default_with_opt_out(tiny_ckpts, tmp_path):
    runner = _runner(tmp_path)
    with pytest.raises(CheckpointMismatchError, match='shape-mismatched'):
        runner.load_checkpoint(tiny_ckpts[32])
    runner.load_checkpoint(tiny_ckpts[64])  # the right file loads
    assert torch.equal(
        runner.model.backbone.visual.conv1.weight,
        torch.load(
            tiny_ckpts[64])['state_dict']['backbone.visual.conv1.weight'])
    lax = _runner(tmp_path, strict_load=False)
    lax.load_checkpoint(tiny_ckpts[32])  # warns, loads what matches


@pytest.mark.slow
def test_train_tool_refuses_malicious_and_wrong_checkpoints(
        synthetic_root, tiny_ckpts, tmp_path, monkeypatch):
    # load_from: malicious pickle refused, nothing executed
    evil, marker = _evil(tmp_path, 'evil_load.pth')
    with pytest.raises(UnsafeCheckpointError, match='evil_load.pth.*open'):
        run_tool_inprocess(
            TRAIN, [TINY_CONFIG, '--work-dir', tmp_path / 'w1'] +
            small_options(synthetic_root, extra=[f'load_from={evil}']),
            monkeypatch)
    assert not marker.exists()

    # --resume: the latest checkpoint of the work dir is malicious
    work = tmp_path / 'w2'
    work.mkdir()
    evil, marker = _evil(work, 'epoch_1.pth')
    (work / 'last_checkpoint').write_text(str(evil))
    with pytest.raises(UnsafeCheckpointError, match='epoch_1.pth.*open'):
        run_tool_inprocess(TRAIN,
                           [TINY_CONFIG, '--work-dir', work, '--resume'] +
                           small_options(synthetic_root), monkeypatch)
    assert not marker.exists()

    # load_from a checkpoint of another width: clear error, no training
    with pytest.raises(CheckpointMismatchError) as info:
        run_tool_inprocess(
            TRAIN,
            [TINY_CONFIG, '--work-dir', tmp_path / 'w3'] + small_options(
                synthetic_root, extra=[f'load_from={tiny_ckpts[32]}']),
            monkeypatch)
    assert 'etris_w32.pth' in str(info.value)
    assert 'shape-mismatched' in str(info.value)
    assert not (tmp_path / 'w3' / 'epoch_1.pth').exists()


def _official_etris_keys():
    keys = []
    with open(
            osp.join(ROOT, 'tests', 'data', 'official_keys',
                     'etris_bridge_v16.txt')) as f:
        for line in f:
            keys.append(line.split('\t')[0])
    return keys


def test_converter_refuses_malicious_and_reports_wrong_config(
        tmp_path, monkeypatch):
    evil, marker = _evil(tmp_path, 'official_evil.pth')
    with pytest.raises(UnsafeCheckpointError, match='official_evil.pth.*open'):
        run_tool_inprocess(CONVERTER, ['etris', evil, tmp_path / 'out.pth'],
                           monkeypatch)
    assert not marker.exists() and not (tmp_path / 'out.pth').exists()

    # An official ETRIS ViT-B/16 key layout (1-element tensors) converted
    # and verified against the tiny quick-start config: every kind of
    # problem is listed, nothing is written.
    src = tmp_path / 'official.pth'
    torch.save(
        {
            'state_dict': {
                'module.' + k: torch.zeros(1)
                for k in _official_etris_keys()[1:]
            }  # drop one: missing
        },
        src)
    with pytest.raises(CheckpointMismatchError) as info:
        run_tool_inprocess(
            CONVERTER,
            ['etris', src, tmp_path / 'out.pth', '--config', TINY_CONFIG],
            monkeypatch)
    report = info.value.report
    assert report.missing and report.unexpected and report.mismatched
    assert 'official.pth converted for etris' in str(info.value)
    assert not (tmp_path / 'out.pth').exists()


# -- atomic checkpoints, resuming from the newest usable one -----------------

# Runs tools/train.py; the KILL_AT_SAVE-th checkpoint write puts half of its
# bytes on disk and SIGKILLs the process (a kill in the middle of saving).
KILL_WHILE_SAVING = r'''
import os, runpy, signal, sys
kill_at = int(os.environ.get('KILL_AT_SAVE', '0'))
if kill_at:
    from mmengine.fileio.backends.local_backend import LocalBackend
    _put, count = LocalBackend.put, [0]

    def put(self, obj, filepath):
        if str(filepath).endswith('.pth') or '.pth.' in str(filepath):
            count[0] += 1
            if count[0] == kill_at:
                with open(filepath, 'wb') as f:
                    f.write(obj[:len(obj) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
        return _put(self, obj, filepath)

    LocalBackend.put = put
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
'''


def _train_subprocess(work_dir, data_root, *extra, kill_at_save=0):
    import os
    import subprocess
    import sys
    args = [
        sys.executable, '-c', KILL_WHILE_SAVING, TRAIN, TINY_CONFIG,
        '--work-dir', work_dir, *extra
    ]
    args += small_options(
        data_root,
        batch_size=8,
        max_epochs=2,
        extra=[
            'default_hooks.checkpoint.save_best=None', 'val_cfg=None',
            'val_dataloader=None', 'val_evaluator=None'
        ])
    env = dict(os.environ, KILL_AT_SAVE=str(kill_at_save), OMP_NUM_THREADS='1')
    return subprocess.run(
        args,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300)


@pytest.mark.slow
def test_kill_while_saving_keeps_the_previous_checkpoint(
        synthetic_root, tmp_path):
    """max_keep_ckpts=1 (the default runtime): SIGKILL half-way through
    writing epoch_2.pth leaves epoch_1.pth complete and named by
    last_checkpoint; --resume then trains epoch 2."""
    import signal
    work = str(tmp_path / 'work')
    proc = _train_subprocess(work, synthetic_root, kill_at_save=2)
    assert proc.returncode == -signal.SIGKILL, proc.stdout[-3000:]
    assert 'Saving checkpoint at 2 epochs' in proc.stdout
    last = open(osp.join(work, 'last_checkpoint')).read().strip()
    assert osp.basename(last) == 'epoch_1.pth'
    ckpt = torch.load(last, weights_only=False)  # complete, opens
    assert ckpt['meta']['epoch'] == 1 and ckpt['optimizer']
    assert not osp.exists(osp.join(work, 'epoch_2.pth'))  # nothing torn

    proc = _train_subprocess(work, synthetic_root, '--resume')
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert 'resumed epoch: 1, iter: 4' in proc.stdout
    assert 'an incomplete checkpoint of an interrupted run' in proc.stdout
    assert 'Epoch(train) [2][4/4]' in proc.stdout
    import os
    assert sorted(f for f in os.listdir(work)
                  if '.pth' in f) == ['epoch_2.pth']  # old one removed after


def test_save_checkpoint_is_atomic(synthetic_root, tmp_path, monkeypatch):
    """A write that dies half-way leaves the previous file intact and no
    temporary file (runner.save_checkpoint with the backend_args that
    RISCheckpointHook passes for a local folder: AtomicLocalBackend)."""
    from mmengine.fileio.backends.local_backend import LocalBackend

    from mmris.engine.hooks import RISCheckpointHook
    runner = _runner(tmp_path,
                     **{'train_dataloader.dataset.data_root': synthetic_root})
    out = str(tmp_path / 'work')
    hook = RISCheckpointHook(interval=1)
    hook.before_train(runner)
    assert hook.backend_args == dict(backend='atomic_local')
    save = functools.partial(
        runner.save_checkpoint,
        save_optimizer=False,
        save_param_scheduler=False,
        backend_args=hook.backend_args)
    save(out, 'iter_1.pth')
    before = open(osp.join(out, 'iter_1.pth'), 'rb').read()
    assert torch.load(
        osp.join(out, 'iter_1.pth'), weights_only=False)['state_dict']

    def dying_put(self, obj, filepath):
        with open(filepath, 'wb') as f:
            f.write(obj[:len(obj) // 2])
        raise KeyboardInterrupt('killed while writing')

    monkeypatch.setattr(LocalBackend, 'put', dying_put)
    with pytest.raises(KeyboardInterrupt):
        save(out, 'iter_1.pth')
    assert open(osp.join(out, 'iter_1.pth'), 'rb').read() == before
    with pytest.raises(KeyboardInterrupt):
        save(out, 'iter_2.pth')
    import os
    assert sorted(f for f in os.listdir(out)
                  if '.pth' in f) == ['iter_1.pth']  # no torn iter_2.pth


def _corrupt_copies(work):
    """epoch_2.pth: truncated; epoch_3.pth: a NaN weight (named by
    last_checkpoint); both newer than the valid epoch_1.pth."""
    import os
    import time
    good = osp.join(work, 'epoch_1.pth')
    data = open(good, 'rb').read()
    with open(osp.join(work, 'epoch_2.pth'), 'wb') as f:
        f.write(data[:len(data) // 2])
    ckpt = torch.load(good, weights_only=False)
    key = next(k for k, v in ckpt['state_dict'].items()
               if v.is_floating_point())
    ckpt['state_dict'][key] = ckpt['state_dict'][key].clone()
    ckpt['state_dict'][key].view(-1)[0] = float('nan')
    ckpt['meta']['epoch'] = 3
    torch.save(ckpt, osp.join(work, 'epoch_3.pth'))
    now = time.time()
    os.utime(osp.join(work, 'epoch_2.pth'), (now + 1, now + 1))
    os.utime(osp.join(work, 'epoch_3.pth'), (now + 2, now + 2))
    with open(osp.join(work, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(work, 'epoch_3.pth'))
    return key


def _run_log(work):
    import glob
    logs = sorted(glob.glob(osp.join(work, '*', '*.log')))
    return open(logs[-1]).read()


@pytest.mark.slow
def test_resume_skips_broken_checkpoints(synthetic_root, tmp_path,
                                         monkeypatch):
    work = str(tmp_path / 'work')
    run_tool_inprocess(TRAIN, [TINY_CONFIG, '--work-dir', work] +
                       small_options(synthetic_root, batch_size=8),
                       monkeypatch)
    key = _corrupt_copies(work)

    # explicitly named: refused, with the reason
    with pytest.raises(RuntimeError) as info:
        run_tool_inprocess(
            TRAIN,
            [TINY_CONFIG, '--work-dir', work, '--resume'] + small_options(
                synthetic_root,
                batch_size=8,
                max_epochs=2,
                extra=[f'load_from={work}/epoch_3.pth']), monkeypatch)
    msg = str(info.value)
    assert 'Cannot resume from' in msg and 'epoch_3.pth' in msg
    assert f'hold NaN/inf (e.g. {key})' in msg

    # auto resume: the NaN one and the truncated one are skipped
    run_tool_inprocess(
        TRAIN, [TINY_CONFIG, '--work-dir', work, '--resume'] +
        small_options(synthetic_root, batch_size=8, max_epochs=2), monkeypatch)
    log = _run_log(work)
    assert (f'Not resuming from {work}/epoch_3.pth: 1 of ') in log
    assert f'hold NaN/inf (e.g. {key})' in log
    assert f'Not resuming from {work}/epoch_2.pth: it does not open' in log
    assert f'Auto resumed from the latest checkpoint {work}/epoch_1.pth' \
        in log
    assert 'resumed epoch: 1, iter: 4' in log
    assert 'Epoch(train) [2][4/4]' in log
    ckpt = torch.load(osp.join(work, 'epoch_2.pth'), weights_only=False)
    assert ckpt['meta']['epoch'] == 2  # the torn file was replaced


def test_resume_with_no_usable_checkpoint_lists_them(synthetic_root, tmp_path,
                                                     monkeypatch):
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'epoch_1.pth').write_bytes(b'PK\x03\x04 truncated')
    (work / 'last_checkpoint').write_text(str(work / 'epoch_9.pth'))
    from mmris.engine.resume import NoResumableCheckpointError
    with pytest.raises(NoResumableCheckpointError) as info:
        run_tool_inprocess(TRAIN,
                           [TINY_CONFIG, '--work-dir', work, '--resume'] +
                           small_options(synthetic_root), monkeypatch)
    msg = str(info.value)
    assert f'no usable checkpoint in {work}' in msg
    assert f'{work}/epoch_9.pth: the file does not exist' in msg
    assert f'{work}/epoch_1.pth: it does not open' in msg


def test_resume_fallback_never_skips_a_malicious_file(synthetic_root, tmp_path,
                                                      monkeypatch):
    """The newest checkpoint is truncated, the next one is a malicious
    pickle: refused with the file and the global named, never executed and
    never silently passed over."""
    import os
    work = tmp_path / 'work'
    work.mkdir()
    evil, marker = _evil(work, 'epoch_1.pth')
    (work / 'epoch_2.pth').write_bytes(b'PK\x03\x04 truncated')
    os.utime(work / 'epoch_2.pth', (os.path.getmtime(evil) + 5, ) * 2)
    (work / 'last_checkpoint').write_text(str(work / 'epoch_2.pth'))
    with pytest.raises(UnsafeCheckpointError, match='epoch_1.pth.*open'):
        run_tool_inprocess(TRAIN,
                           [TINY_CONFIG, '--work-dir', work, '--resume'] +
                           small_options(synthetic_root), monkeypatch)
    assert not marker.exists()
    assert 'Not resuming from ' + str(work / 'epoch_2.pth') in _run_log(
        str(work))
