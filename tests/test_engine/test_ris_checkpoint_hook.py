# Copyright (c) mmris contributors. All rights reserved.
"""RISCheckpointHook: a save that dies never costs the previous checkpoint,
the previous best checkpoint or a valid ``last_checkpoint``."""
import os
import os.path as osp

import pytest
from mmengine.logging import MessageHub, MMLogger

import mmris  # noqa: F401
from mmris.checkpoint import temporary_name
from mmris.engine.hooks import RISCheckpointHook


class _Killed(Exception):
    pass


class _FakeRunner:
    """What CheckpointHook uses of a runner; ``save_checkpoint`` writes a
    small file, or dies (after recording the folder) for ``die_on``."""

    def __init__(self, work_dir):
        self.work_dir = str(work_dir)
        self.epoch = 0
        self.iter = 0
        self.message_hub = MessageHub.get_instance('test_ris_ckpt_hook')
        self.message_hub.runtime_info.clear()
        self.logger = MMLogger.get_instance('test_ris_ckpt_hook')
        self.die_on = None
        self.seen_at_death = None

    def save_checkpoint(self, out_dir, filename, *args, **kwargs):
        if filename == self.die_on:
            self.seen_at_death = sorted(os.listdir(out_dir))
            raise _Killed(filename)
        with open(osp.join(out_dir, filename), 'w') as f:
            f.write(f'{filename} complete')


def _pth(folder):
    return sorted(f for f in os.listdir(folder) if f.endswith('.pth'))


def _last(folder):
    return osp.basename(open(osp.join(folder, 'last_checkpoint')).read())


def test_outdated_and_best_removed_only_after_the_new_file(tmp_path):
    runner = _FakeRunner(tmp_path)
    hook = RISCheckpointHook(
        interval=1,
        by_epoch=True,
        max_keep_ckpts=1,
        save_best='mIoU',
        rule='greater')
    hook.before_train(runner)

    # epoch 1 trained and validated
    hook._save_checkpoint(runner)
    runner.epoch = 1
    hook._save_best_checkpoint(runner, dict(mIoU=10.0))
    assert _pth(tmp_path) == ['best_mIoU_epoch_1.pth', 'epoch_1.pth']
    assert _last(tmp_path) == 'epoch_1.pth'

    # killed while writing epoch_2.pth: epoch_1.pth and its pointer stay
    runner.die_on = 'epoch_2.pth'
    with pytest.raises(_Killed):
        hook._save_checkpoint(runner)
    assert 'epoch_1.pth' in runner.seen_at_death
    assert _pth(tmp_path) == ['best_mIoU_epoch_1.pth', 'epoch_1.pth']
    assert _last(tmp_path) == 'epoch_1.pth'

    # killed while writing the new best: the previous best stays
    hook = RISCheckpointHook(
        interval=1,
        by_epoch=True,
        max_keep_ckpts=1,
        save_best='mIoU',
        rule='greater')
    hook.before_train(runner)  # the restarted run
    runner.die_on = None
    hook._save_checkpoint(runner)
    runner.epoch = 2
    assert _pth(tmp_path) == ['best_mIoU_epoch_1.pth', 'epoch_2.pth']
    runner.die_on = 'best_mIoU_epoch_2.pth'
    with pytest.raises(_Killed):
        hook._save_best_checkpoint(runner, dict(mIoU=20.0))
    assert 'best_mIoU_epoch_1.pth' in runner.seen_at_death
    assert _pth(tmp_path) == ['best_mIoU_epoch_1.pth', 'epoch_2.pth']

    # a save that completes replaces the previous best afterwards
    runner.die_on = None
    hook.best_ckpt_path = osp.join(str(tmp_path), 'best_mIoU_epoch_1.pth')
    runner.message_hub.update_info('best_score', 10.0)
    hook._save_best_checkpoint(runner, dict(mIoU=20.0))
    assert _pth(tmp_path) == ['best_mIoU_epoch_2.pth', 'epoch_2.pth']
    assert _last(tmp_path) == 'epoch_2.pth'
    # a worse score keeps the best one
    runner.epoch = 3
    hook._save_best_checkpoint(runner, dict(mIoU=5.0))
    assert 'best_mIoU_epoch_2.pth' in _pth(tmp_path)


def test_keeps_max_keep_ckpts_and_cleans_temporaries(tmp_path):
    runner = _FakeRunner(tmp_path)
    stale = temporary_name(str(tmp_path / 'epoch_7.pth'))
    with open(stale, 'w') as f:
        f.write('half a checkpoint')
    hook = RISCheckpointHook(interval=1, by_epoch=True, max_keep_ckpts=2)
    hook.before_train(runner)
    assert not osp.exists(stale)  # left by a killed run: removed
    for epoch in range(4):
        runner.epoch = epoch
        hook._save_checkpoint(runner)
        assert _last(tmp_path) == f'epoch_{epoch + 1}.pth'
    assert _pth(tmp_path) == ['epoch_3.pth', 'epoch_4.pth']
    assert runner.message_hub.get_info('keep_ckpt_ids') == [3, 4]
