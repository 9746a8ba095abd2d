# Copyright (c) mmris contributors. All rights reserved.
"""``PretrainedCheckHook``: refuse to run a paper config whose frozen
encoders would stay random."""
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from ..pretrained_check import check_required_pretrained

__all__ = ['PretrainedCheckHook']


@HOOKS.register_module()
class PretrainedCheckHook(Hook):
    """Run :func:`~mmris.engine.pretrained_check.check_required_pretrained`
    on the runner's config in ``before_run``, i.e. before the model's
    weights are initialised and before anything is trained.

    It raises :class:`~mmris.engine.pretrained_check.RandomEncoderError`
    when a file of the config's ``required_pretrained`` is unset or missing,
    unless the weights come from a checkpoint (``load_from`` / ``resume``,
    which ``tools/test.py`` always sets) or ``allow_random_encoders=True``.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        check_required_pretrained(runner.cfg)
