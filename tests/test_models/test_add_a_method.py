# Copyright (c) mmris contributors. All rights reserved.
"""Adding a PEFT method needs no file of mmris: a module defined outside
the package, registered and plugged in by config, trains through the
tools."""
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import mmris  # noqa: F401

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = osp.join(ROOT, 'configs', 'quickstart', 'etris-tiny_synthetic.py')


@MODELS.register_module(force=True)
class GatedPrefix(nn.Module):
    """A method invented for this test: two learned tokens, gated by the
    sentence's mean input embedding, inserted before every image block (a
    ``tokens`` hook), plus a scaled linear map next to the FFN of the text
    blocks (an ``ffn_parallel`` hook served by the same module through
    another method)."""

    def __init__(self, vis: int, txt: int, num_layers: int):
        super().__init__()
        self.tokens = nn.Parameter(torch.zeros(num_layers, 2, vis))
        self.gate = nn.Linear(txt, vis)
        self.text_map = nn.Linear(txt, txt)

    def forward(self, x, ctx):
        gate = torch.sigmoid(self.gate(ctx.text_embed.mean(1)))[:, None]
        return self.tokens[ctx.stage] * gate

    def text_delta(self, h, ctx):
        return self.text_map(h)


def _adapters(vis=96, txt=64, layers=4):
    return dict(
        _delete_=True,
        prefix=dict(
            point='tokens',
            tower='visual',
            replace=True,
            name='gated_prefix',
            module=dict(
                type='GatedPrefix', vis=vis, txt=txt, num_layers=layers)),
        text=dict(
            point='ffn_parallel',
            tower='text',
            name='gated_prefix',
            method='text_delta'),
    )


def test_method_defined_here_plugs_in_by_config(synthetic_root):
    init_default_scope('mmseg')
    cfg = Config.fromfile(TINY)
    cfg.merge_from_dict(
        dict(model=dict(backbone=dict(adapters=_adapters(), trainable=()))))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    # the module is held once by the pair (tokens hook) and called by the
    # text blocks through the pair's reference
    method = model.backbone.gated_prefix
    own = sum(p.numel() for p in method.parameters())
    assert own == 4 * 2 * 96 + 64 * 96 + 96 + 64 * 64 + 64
    head = sum(p.numel() for n, p in model.named_parameters()
               if not n.startswith('backbone.'))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == own + head
    # the text hook finds the pair's module: no copy, no second key
    assert not any('gated_prefix' in k
                   for k in model.backbone.text.state_dict())

    from mmengine.dataset import pseudo_collate

    from mmris.datasets import RefCOCODataset
    from mmris.testing.synthetic import make_synthetic_refer  # noqa: F401
    data_cfg = cfg.train_dataloader.dataset.copy()
    data_cfg.pop('type')
    data_cfg.update(data_root=synthetic_root, indices=4)
    dataset = RefCOCODataset(**data_cfg)
    batch = pseudo_collate([dataset[i] for i in range(4)])
    optim = torch.optim.Adam(
        [p for p in model.parameters() if p.requires_grad], lr=1e-3)
    before = method.tokens.detach().clone()
    for _ in range(2):
        data = model.data_preprocessor(batch, training=True)
        loss = sum(v for k, v in model(**data, mode='loss').items()
                   if 'loss' in k)
        optim.zero_grad()
        loss.backward()
        assert method.tokens.grad is not None
        assert method.text_map.weight.grad.abs().sum() > 0
        optim.step()
    assert not torch.equal(before, method.tokens)
    frozen = dict(model.backbone.visual.named_parameters())
    assert not any(p.requires_grad for p in frozen.values())


@pytest.mark.slow
def test_method_outside_mmris_trains_through_the_tools(synthetic_root,
                                                       tmp_path):
    plugin = tmp_path / 'my_method.py'
    plugin.write_text(
        textwrap.dedent('''
        import torch
        import torch.nn as nn
        from mmseg.registry import MODELS

        @MODELS.register_module()
        class ScaledDelta(nn.Module):
            """Parallel to the FFN: s * W x."""

            def __init__(self, dim):
                super().__init__()
                self.w = nn.Linear(dim, dim)

            def forward(self, h, ctx):
                return self.w(h)
    '''))
    config = tmp_path / 'scaled_delta-tiny_synthetic.py'
    config.write_text(
        textwrap.dedent(f'''
        _base_ = [{TINY!r}]
        custom_imports = dict(imports=['mmris', 'my_method'],
                              allow_failed_imports=False)
        model = dict(backbone=dict(trainable=(), adapters=dict(
            _delete_=True,
            delta=dict(point='ffn_parallel', tower='visual', scale=0.5,
                       module=dict(type='ScaledDelta', dim=96)))))
    '''))
    opts = [
        f'{k}_dataloader.{v}' for k in ('train', 'val', 'test')
        for v in (f'dataset.data_root={synthetic_root}', 'num_workers=0',
                  'persistent_workers=False')
    ]
    # one epoch of the 36 training objects, batch 16, drop_last: 2 steps
    opts += [
        'train_dataloader.batch_size=16', 'train_cfg.max_epochs=1',
        'train_cfg.val_interval=10', 'default_hooks.checkpoint.interval=1',
        'default_hooks.logger.interval=1'
    ]
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([ROOT, str(tmp_path)]),
        CUDA_VISIBLE_DEVICES='',
        OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [
            sys.executable,
            osp.join(ROOT, 'tools', 'train.py'),
            str(config), '--work-dir',
            str(tmp_path / 'work'), '--cfg-options'
        ] + opts,
        capture_output=True,
        text=True,
        env=env,
        timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'Epoch(train) [1][2/2]' in proc.stdout + proc.stderr
    ckpt = torch.load(tmp_path / 'work' / 'epoch_1.pth', weights_only=False)
    keys = [k for k in ckpt['state_dict'] if '.adapter.w.' in k]
    assert len(keys) == 2 * 4  # weight + bias in each of the 4 image blocks
