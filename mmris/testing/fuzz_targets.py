# Copyright (c) mmris contributors. All rights reserved.
"""The fuzz targets of :mod:`mmris.testing.fuzz`: one per loader of a file
a user hands over, each with valid seed files of the kinds met in practice.
"""
import io
import os.path as osp
import random
import warnings
from collections import OrderedDict
from typing import List

from .fuzz import FuzzTarget, register_target

__all__ = ['checkpoint_seeds', 'torchscript_seeds']


def _mmengine_checkpoint() -> dict:
    """What an MMEngine ``Runner`` checkpoint holds (state dict, Adam
    state, scheduler with a ``Counter``, message hub with
    ``HistoryBuffer`` and numpy values, RNG states)."""
    import numpy as np
    import torch
    import torch.nn as nn
    from mmengine.logging import HistoryBuffer
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[1, 3])
    return dict(
        meta=dict(
            epoch=1,
            iter=2,
            seed=0,
            cfg='model = dict(type="X")',
            mmengine_version='0.10.7',
            rng_state=dict(
                numpy=np.random.RandomState(0).get_state(),
                torch=torch.Generator().manual_seed(0).get_state(),
                python=random.Random(0).getstate())),
        state_dict=model.state_dict(),
        optimizer=opt.state_dict(),
        param_schedulers=[sched.state_dict()],
        message_hub=dict(
            log_scalars=OrderedDict(loss=HistoryBuffer([1.0, 2.5], [1, 1])),
            runtime_info=OrderedDict(
                epoch=1, eta=np.float64(2.0), keep=np.arange(3)),
            resumed_keys=OrderedDict(epoch=True)))


def _official_checkpoint() -> dict:
    """What the official RIS ``train.py`` saves (``module.`` keys, fp16 and
    bf16 tensors, a transposed view, two keys sharing a storage, a 0-d
    and an empty tensor, Adam and MultiStepLR states)."""
    import torch
    weight = torch.randn(6, 5)
    state = OrderedDict([
        ('module.proj.weight', weight),
        ('module.proj.weight_t', weight.t()),
        ('module.tied.weight', weight),
        ('module.half', torch.randn(3, 2).half()),
        ('module.bf16', torch.randn(4).bfloat16()),
        ('module.bn.num_batches_tracked', torch.tensor(7)),
        ('module.mask', torch.tensor([True, False])),
        ('module.empty', torch.zeros(0, 3)),
    ])
    param = torch.nn.Parameter(torch.randn(3))
    opt = torch.optim.Adam([param], lr=1e-4)
    param.sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[35])
    return dict(
        epoch=3,
        cur_iou=0.51,
        best_iou=0.6,
        prec={
            'Pr@50': 0.5,
            'Pr@90': 0.1
        },
        state_dict=state,
        optimizer=opt.state_dict(),
        scheduler=sched.state_dict())


def checkpoint_seeds(folder: str) -> List[bytes]:
    """Seeds of the ``checkpoint`` target: MMEngine and official-style
    checkpoints (zip) and a legacy (pre-zip) file."""
    import torch
    seeds = []
    for obj, legacy in ((_mmengine_checkpoint(),
                         False), (_official_checkpoint(), False),
                        (_official_checkpoint(), True)):
        buf = io.BytesIO()
        torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
        seeds.append(buf.getvalue())
    return seeds


def torchscript_seeds(folder: str) -> List[bytes]:
    """Seeds of the ``torchscript`` target: a small module tree shaped like
    OpenAI's CLIP archives (fp16, nested blocks), saved by
    ``torch.jit.save``, and the same weights as a plain state dict."""
    import torch
    import torch.nn as nn

    class Block(nn.Module):

        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(8)
            self.attn = nn.Linear(8, 8)

        def forward(self, x):
            return x + self.attn(self.ln_1(x))

    class Tower(nn.Module):

        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 4, 4, bias=False)
            self.resblocks = nn.Sequential(Block(), Block())
            self.proj = nn.Parameter(torch.randn(8, 4))

        def forward(self, x):
            x = self.conv1(x).flatten(2).transpose(1, 2)
            return self.resblocks(x) @ self.proj

    class Holder(nn.Module):

        def __init__(self):
            super().__init__()
            self.visual = Tower()
            self.token_embedding = nn.Embedding(10, 8)
            self.register_buffer('input_resolution', torch.tensor(8))

        def forward(self, x):
            return self.visual(x)

    torch.manual_seed(0)
    holder = Holder().half().float()
    path = osp.join(folder, 'seed_ts.pt')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.jit.save(torch.jit.trace(holder, torch.zeros(1, 3, 8, 8)), path)
    with open(path, 'rb') as f:
        archive = f.read()
    buf = io.BytesIO()
    torch.save(holder.state_dict(), buf)
    return [archive, buf.getvalue()]


_ERRORS = ('mmris.checkpoint.errors.CheckpointError', )
_ZIP_MUTATORS = ('mmris.testing.fuzz:mutate_zip_member',
                 'mmris.testing.fuzz:mutate_zip_headers')

register_target(
    FuzzTarget(
        name='checkpoint',
        load='mmris.checkpoint:safe_torch_load',
        seeds='mmris.testing.fuzz_targets:checkpoint_seeds',
        errors=_ERRORS,
        suffix='.pth',
        mutators=_ZIP_MUTATORS))

register_target(
    FuzzTarget(
        name='torchscript',
        load='mmris.checkpoint:load_clip_state_dict',
        seeds='mmris.testing.fuzz_targets:torchscript_seeds',
        errors=_ERRORS,
        suffix='.pt',
        mutators=_ZIP_MUTATORS))

register_target(
    FuzzTarget(
        name='image',
        load='mmris.testing.fuzz_images:load_image_file',
        seeds='mmris.testing.fuzz_images:image_seeds',
        errors=('mmris.datasets.transforms.image_size.ImageTooLargeError',
                'builtins.OSError'),
        suffix='.png',
        mutators=('mmris.testing.fuzz_images:mutate_image', )))

# The annotation loaders' targets (REFER pickle, gRefCOCO JSON,
# instances.json) live in their own module.
from . import fuzz_annotation_targets  # noqa: E402,F401
