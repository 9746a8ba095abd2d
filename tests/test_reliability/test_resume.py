# Copyright (c) mmris contributors. All rights reserved.
"""A training run killed with SIGKILL in the middle of an epoch resumes with
``tools/train.py --resume`` from its last checkpoint, and on CPU with a fixed
seed the iterations after the resume give the losses of an uninterrupted
run (within 1e-6), across the following epoch boundary too, with 0, 1 or 2
persistent dataloader workers and dropout on (random sentence draw and
dropout masks both reproduced)."""
import glob
import json
import os
import os.path as osp
import signal
import subprocess
import sys

import pytest

from ._helpers import ROOT, TINY_CONFIG, TRAIN, small_options

# 36 training objects, batch 8, drop_last: 4 iterations per epoch; 2 epochs.
# Checkpoints every 3 iterations (iter_3: the middle of epoch 1); the run is
# killed right before iteration 5 (in epoch 2), resumes from iter_3 and
# trains iterations 4 (end of epoch 1) to 8 (epoch 2).
MAX_EPOCHS, ITERS_PER_EPOCH, CKPT_EVERY, KILL_AT = 2, 4, 3, 5

# Runs tools/train.py, SIGKILLing the process right before iteration
# KILL_AT_ITER (1-based) when that variable is set.
LAUNCHER = r'''
import os, runpy, signal, sys
kill_at = int(os.environ.get('KILL_AT_ITER', '0'))
if kill_at:
    from mmengine.hooks import Hook
    from mmris.engine import RISRunner

    class _Kill(Hook):
        def before_train_iter(self, runner, batch_idx, data_batch=None):
            if runner.iter + 1 == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    _train = RISRunner.train

    def train(self):
        self.register_hook(_Kill())
        return _train(self)

    RISRunner.train = train
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
'''


def _loader_options(workers):
    """The shipped loader settings: persistent workers when there are any."""
    return [
        f'train_dataloader.num_workers={workers}',
        f'train_dataloader.persistent_workers={workers > 0}'
    ]


def _train(work_dir, data_root, resume=False, kill_at=0, wait=True, workers=0):
    args = [
        sys.executable, '-c', LAUNCHER, TRAIN, TINY_CONFIG, '--work-dir',
        work_dir
    ]
    if resume:
        args.append('--resume')
    args += small_options(
        data_root,
        batch_size=8,
        max_epochs=MAX_EPOCHS,
        extra=[
            'default_hooks.checkpoint.by_epoch=False',
            f'default_hooks.checkpoint.interval={CKPT_EVERY}',
            'default_hooks.checkpoint.save_best=None',
            'val_cfg=None',
            'val_dataloader=None',
            'val_evaluator=None',
            'model.decode_head.dropout=0.1'  # the torch RNG matters too
        ] + _loader_options(workers))
    env = dict(os.environ, KILL_AT_ITER=str(kill_at), OMP_NUM_THREADS='1')
    log = open(f'{work_dir}_{int(resume)}{kill_at}.out', 'w')
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True)
    proc.log = log
    return _wait(proc) if wait else proc


def _wait(proc):
    proc.wait(timeout=300)
    proc.log.close()
    with open(proc.log.name) as f:
        proc.stdout_text = f.read()
    return proc


def _losses(work_dir):
    """{iteration: loss} from every run logged in ``work_dir``."""
    out = {}
    for path in sorted(
            glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                if 'loss' in rec:
                    out.setdefault(path, {})[rec['step']] = rec['loss']
    return list(out.values())


WORKERS = (0, 1, 2)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches(synthetic_root, tmp_path):
    """kill -9 + --resume with 0, 1 and 2 persistent workers: the losses of
    an uninterrupted main-process run, before the kill and after the resume
    (incl. the next epoch). The runs go in parallel to save time."""
    total = MAX_EPOCHS * ITERS_PER_EPOCH
    resume_iter = (KILL_AT - 1) // CKPT_EVERY * CKPT_EVERY
    assert resume_iter % ITERS_PER_EPOCH != 0  # in the middle of an epoch
    epoch, skip = divmod(resume_iter, ITERS_PER_EPOCH)
    ref_dir = str(tmp_path / 'ref')
    run_dirs = {w: str(tmp_path / f'run_w{w}') for w in WORKERS}

    ref_proc = _train(ref_dir, synthetic_root, wait=False)
    killed = {
        w: _train(d, synthetic_root, kill_at=KILL_AT, wait=False, workers=w)
        for w, d in run_dirs.items()
    }
    resumed = {}
    for w, proc in killed.items():
        proc = _wait(proc)
        assert proc.returncode == -signal.SIGKILL, proc.stdout_text[-3000:]
        last = open(osp.join(run_dirs[w], 'last_checkpoint')).read().strip()
        assert last.endswith(f'iter_{resume_iter}.pth'), (w, last)
        resumed[w] = _train(
            run_dirs[w], synthetic_root, resume=True, wait=False, workers=w)
    ref_proc = _wait(ref_proc)
    assert ref_proc.returncode == 0, ref_proc.stdout_text[-3000:]
    (ref, ) = _losses(ref_dir)
    assert sorted(ref) == list(range(1, total + 1))

    for w, proc in resumed.items():
        proc = _wait(proc)
        assert proc.returncode == 0, (w, proc.stdout_text[-3000:])
        out = proc.stdout_text
        assert f'resumed epoch: {epoch}, iter: {resume_iter}' in out, w
        assert (f'Resuming in the middle of epoch {epoch + 1}: skipping its '
                f'first {skip} batches ({skip * 8} samples') in out, w
        before, after = _losses(run_dirs[w])
        assert sorted(before) == list(range(1, KILL_AT)), w
        assert sorted(after) == list(range(resume_iter + 1, total + 1)), w
        for name, losses in (('before the kill', before), ('after the resume',
                                                           after)):
            diffs = {it: abs(loss - ref[it]) for it, loss in losses.items()}
            print(f'workers={w}: max |loss diff| {name}:', max(diffs.values()),
                  diffs)
            assert max(diffs.values()) <= 1e-6, (w, name, diffs)
        # and the losses do change from iteration to iteration
        assert len({round(v, 6) for v in after.values()}) == len(after), w


# -- resuming with another batch size / number of processes -----------------


class _Stop(Exception):
    """Ends an in-process run at an iteration (what is on disk is what a
    kill leaves: complete checkpoints)."""


def _record_batches(monkeypatch, stop_at=0):
    """[(epoch, iteration, ref_ids)] of every training iteration run by the
    next RISRunner.train calls; raise _Stop before iteration ``stop_at``."""
    from mmengine.hooks import Hook

    from mmris.engine import RISRunner
    from mmris.engine.hooks.nonfinite_loss_hook import batch_sample_ids
    seen = []

    class _Recorder(Hook):

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            if stop_at and runner.iter + 1 == stop_at:
                raise _Stop
            seen.append((runner.epoch, runner.iter + 1,
                         [s['ref_id'] for s in batch_sample_ids(data_batch)]))

    train = getattr(RISRunner.train, 'unpatched', RISRunner.train)

    def recorded_train(self):
        self.register_hook(_Recorder())
        return train(self)

    recorded_train.unpatched = train
    monkeypatch.setattr(RISRunner, 'train', recorded_train)
    return seen


def _inprocess(work_dir,
               data_root,
               monkeypatch,
               batch_size,
               max_epochs,
               *extra,
               resume=False):
    from ._helpers import run_tool_inprocess
    args = [TINY_CONFIG, '--work-dir', work_dir
            ] + (['--resume'] if resume else [])
    args += small_options(
        data_root,
        batch_size=batch_size,
        max_epochs=max_epochs,
        extra=[
            'default_hooks.checkpoint.save_best=None', 'val_cfg=None',
            'val_dataloader=None', 'val_evaluator=None', *extra
        ])
    run_tool_inprocess(TRAIN, args, monkeypatch)


def _log_text(work_dir):
    logs = sorted(glob.glob(osp.join(work_dir, '*', '*.log')))
    return open(logs[-1]).read()


@pytest.mark.slow
def test_resume_after_batch_size_change_at_epoch_end(synthetic_root, tmp_path,
                                                     monkeypatch):
    """Epoch 1 at batch 4 (9 iterations), resumed at batch 8: epoch 2 trains
    its 4 iterations (it used to skip all of them and exit 0)."""
    work = str(tmp_path / 'work')
    first = _record_batches(monkeypatch)
    _inprocess(work, synthetic_root, monkeypatch, 4, 1)
    assert [it for _, it, _ in first] == list(range(1, 10))

    resumed = _record_batches(monkeypatch)
    _inprocess(work, synthetic_root, monkeypatch, 8, 2, resume=True)
    assert [(e, it) for e, it, _ in resumed] == [(1, 5), (1, 6), (1, 7),
                                                 (1, 8)]
    assert all(len(ids) == 8 for _, _, ids in resumed)
    log = _log_text(work)
    assert ('The global batch size changed from 4 (4 x 1 processes) to 8 '
            '(8 x 1): resuming epoch 2 after the 0 samples already '
            'trained; the iteration counter goes from 9 to 4') in log


@pytest.mark.slow
def test_resume_mid_epoch_after_batch_size_change_skips_samples_seen(
        synthetic_root, tmp_path, monkeypatch):
    """Stopped after iteration 3 of batch 4 (12 samples, checkpoint
    iter_3.pth), resumed at batch 8: the 24 samples not yet seen in that
    epoch are trained, each once, in 3 iterations."""
    work = str(tmp_path / 'work')
    by_iter = [
        'default_hooks.checkpoint.by_epoch=False',
        'default_hooks.checkpoint.interval=3'
    ]
    first = _record_batches(monkeypatch, stop_at=4)
    with pytest.raises(_Stop):
        _inprocess(work, synthetic_root, monkeypatch, 4, 1, *by_iter)
    assert [it for _, it, _ in first] == [1, 2, 3]
    assert open(osp.join(work,
                         'last_checkpoint')).read().endswith('iter_3.pth')

    resumed = _record_batches(monkeypatch)
    _inprocess(work, synthetic_root, monkeypatch, 8, 1, *by_iter, resume=True)
    assert [(e, it) for e, it, _ in resumed] == [(0, 2), (0, 3), (0, 4)]
    seen_before = [i for _, _, ids in first for i in ids]
    seen_after = [i for _, _, ids in resumed for i in ids]
    assert len(seen_before) == 12 and len(seen_after) == 24
    # every object of the epoch exactly once over the two runs
    assert len(set(seen_before + seen_after)) == 36
    log = _log_text(work)
    assert ('Resuming in the middle of epoch 1: skipping its first 12 '
            'samples (batch size changed, already trained)') in log


@pytest.mark.slow
def test_resume_refuses_unknown_epoch_position(synthetic_root, tmp_path,
                                               monkeypatch):
    """A checkpoint without meta['train_progress'] (MMEngine's own) whose
    iteration does not fit the new batch size: a clear refusal."""
    work = str(tmp_path / 'work')
    _inprocess(work, synthetic_root, monkeypatch, 4, 1)
    import torch
    ckpt_file = osp.join(work, 'epoch_1.pth')
    ckpt = torch.load(ckpt_file, weights_only=False)
    del ckpt['meta']['train_progress']
    torch.save(ckpt, ckpt_file)
    with pytest.raises(RuntimeError) as info:
        _inprocess(work, synthetic_root, monkeypatch, 8, 2, resume=True)
    msg = str(info.value)
    assert f'Cannot resume from {ckpt_file}: it was saved at iteration 9' \
        in msg
    assert 'records no batch size' in msg
    assert 'The batch size or the number of GPUs has changed' in msg
