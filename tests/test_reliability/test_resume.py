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


def _train(work_dir, data_root, resume=False, kill_at=0, wait=True,
           workers=0):
    args = [sys.executable, '-c', LAUNCHER, TRAIN, TINY_CONFIG,
            '--work-dir', work_dir]
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
            'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None',
            'model.decode_head.dropout=0.1'  # the torch RNG matters too
        ] + _loader_options(workers))
    env = dict(os.environ, KILL_AT_ITER=str(kill_at), OMP_NUM_THREADS='1')
    log = open(f'{work_dir}_{int(resume)}{kill_at}.out', 'w')
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, text=True)
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
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                          'scalars.json'))):
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                if 'loss' in rec:
                    out.setdefault(path, {})[rec['step']] = rec['loss']
    return list(out.values())


WORKERS = (0, 1, 2)


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
        resumed[w] = _train(run_dirs[w], synthetic_root, resume=True,
                            wait=False, workers=w)
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
        for name, losses in (('before the kill', before),
                             ('after the resume', after)):
            diffs = {it: abs(loss - ref[it]) for it, loss in losses.items()}
            print(f'workers={w}: max |loss diff| {name}:',
                  max(diffs.values()), diffs)
            assert max(diffs.values()) <= 1e-6, (w, name, diffs)
        # and the losses do change from iteration to iteration
        assert len({round(v, 6) for v in after.values()}) == len(after), w
