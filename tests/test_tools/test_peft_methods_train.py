# Copyright (c) mmris contributors. All rights reserved.
"""The methods added on the hook API (LoRA, AdaptFormer, VPT-deep, DETRIS
adapters on CLIP) train two iterations and evaluate through the tools, and
their paper-size configs have the exact trainable counts."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import mmris  # noqa: F401
from .test_train_test import ROOT, _run, _small_options

#: config stem -> (adapter parameters of the paper-size config, total)
#: adapters by hand: LoRA 12 x 2 x 2 x (768 x 8) + 12 x 2 x 2 x (512 x 8);
#: AdaptFormer 12 x (2 x 768 x 64 + 64 + 768) + 12 x (2 x 512 x 64 + 64 +
#: 512); VPT-deep 12 x 10 x 768; DETRIS adapters as DETRIS-B (6 x 382,896 +
#: 6 x 69,720). The ETRIS head is 22,671,361 (neck + decoder + projector).
PAPER = dict(
    lora=(491_520, 23_162_881),
    adaptformer=(1_982_976, 24_654_337),
    **{'vpt-deep': (92_160, 22_763_521)},
    **{'detris-adapters': (2_715_696, 25_387_057)})


@pytest.mark.parametrize('stem', sorted(PAPER))
def test_paper_size_counts(stem):
    init_default_scope('mmseg')
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', 'peft', f'{stem}_vit-b16_refcoco.py'))
    model = MODELS.build(cfg.model)
    adapters = sum(p.numel() for n, p in model.named_parameters()
                   if p.requires_grad and n.startswith('backbone.'))
    total = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert (adapters, total) == PAPER[stem]
    head = sum(p.numel() for n, p in model.named_parameters()
               if not n.startswith('backbone.'))
    assert head == 22_671_361
    # the towers' own tensors are all frozen
    for tower in (model.backbone.visual, model.backbone.text):
        hooked = {id(p) for m in tower.hook_modules() for p in m.parameters()}
        assert not any(p.requires_grad
                       for p in tower.parameters() if id(p) not in hooked)


@pytest.mark.slow
@pytest.mark.parametrize(
    'stem', ['lora', 'adaptformer', 'vpt-deep', 'detris-adapters'])
def test_two_iterations_through_the_tools(stem, synthetic_root, tmp_path):
    config = osp.join(ROOT, 'configs', 'quickstart',
                      f'{stem}-tiny_synthetic.py')
    work = str(tmp_path / 'work')
    out = _run(
        [osp.join(ROOT, 'tools', 'train.py'), config, '--work-dir', work] +
        _small_options(synthetic_root) + ['model.backbone.trainable=()'], ROOT)
    assert 'Epoch(train) [1][2/2]' in out and 'mIoU' in out
    ckpt = torch.load(osp.join(work, 'epoch_1.pth'), weights_only=False)
    name = dict(
        lora='lora',
        adaptformer='adaptmlp',
        **{
            'vpt-deep': 'prompts',
            'detris-adapters': 'adapter'
        })[stem]
    assert any(f'.{name}.' in k for k in ckpt['state_dict'])
    out = _run([
        osp.join(ROOT, 'tools', 'test.py'), config,
        osp.join(work, 'epoch_1.pth'), '--work-dir', work
    ] + _small_options(synthetic_root), ROOT)
    assert 'mIoU' in out


def _comparison_methods():
    """The default METHODS of compare_methods_quickstart.sh."""
    script = osp.join(ROOT, 'tools', 'analysis_tools',
                      'compare_methods_quickstart.sh')
    line = next(ln for ln in open(script) if ln.startswith('METHODS='))
    return line.split(':-"')[1].split('"')[0].split()


@pytest.mark.parametrize('stem', _comparison_methods())
def test_comparison_configs_start_from_the_shared_towers(stem):
    """Every method of the quick-start comparison loads the whole pretrained
    head-only model (towers, neck, head) with matching shapes: only its own
    modules start from their initialisation, so the rows compare methods,
    not towers."""
    init_default_scope('mmseg')

    def state(name):
        cfg = Config.fromfile(
            osp.join(ROOT, 'configs', 'quickstart',
                     f'{name}-tiny_synthetic.py'))
        return MODELS.build(cfg.model).state_dict(), cfg

    pretrained, pre_cfg = state('head-only')
    own, cfg = state(stem)
    assert set(pretrained) <= set(own), sorted(set(pretrained) - set(own))[:5]
    mismatched = [k for k in pretrained if own[k].shape != pretrained[k].shape]
    assert not mismatched
    assert (cfg.train_dataloader.dataset.img_size ==
            pre_cfg.train_dataloader.dataset.img_size)
    assert cfg.model.decode_head.get('dice_weight') == 1.0
