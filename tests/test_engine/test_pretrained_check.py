# Copyright (c) mmris contributors. All rights reserved.
"""Paper configs refuse to train randomly initialised frozen encoders."""
import os.path as osp
import runpy
import sys

import pytest
from mmengine.config import Config

from mmris.engine.pretrained_check import (RandomEncoderError,
                                           check_required_pretrained)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TRAIN = osp.join(ROOT, 'tools', 'train.py')

PAPER_CONFIGS = {
    'configs/etris/etris_vit-b16_refcoco.py': ('ViT-B-16.pt', 'ViT-B-16.pt'),
    'configs/etris/etris_rn50_refcoco.py': ('RN50.pt', 'RN50.pt'),
    'configs/etris/etris_rn101_refcoco.py': ('RN101.pt', 'RN101.pt'),
    'configs/barleria/barleria_vit-b16_refcoco.py':
    ('ViT-B-16.pt', 'ViT-B-16.pt'),
    'configs/detris/detris-b_refcoco.py':
    ('dinov2_vitb14_reg4_pretrain.pth', 'ViT-B-16.pt'),
    'configs/detris/detris-l_refcoco.py':
    ('dinov2_vitl14_reg4_pretrain.pth', 'ViT-B-16.pt'),
}
VIS, TXT = 'model.backbone.visual.pretrained', 'model.backbone.text.pretrained'


@pytest.mark.parametrize('config', sorted(PAPER_CONFIGS))
def test_paper_config_names_its_files(config):
    cfg = Config.fromfile(osp.join(ROOT, config))
    vis_file, txt_file = PAPER_CONFIGS[config]
    with pytest.raises(RandomEncoderError) as err:
        check_required_pretrained(cfg)
    message = str(err.value)
    assert f'{VIS}: not set (expected: ' in message
    assert f'{TXT}: not set' in message
    assert vis_file in message and txt_file in message
    assert 'allow_random_encoders=True' in message


def test_set_missing_and_opt_outs(tmp_path):
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs/etris/etris_vit-b16_refcoco.py'))
    present = tmp_path / 'ViT-B-16.pt'
    present.write_bytes(b'x')
    cfg.merge_from_dict({VIS: str(present), TXT: str(tmp_path / 'gone.pt')})
    with pytest.raises(RandomEncoderError) as err:
        check_required_pretrained(cfg)
    assert 'gone.pt" does not exist' in str(err.value)
    assert VIS not in str(err.value)
    cfg.merge_from_dict({TXT: str(present)})
    check_required_pretrained(cfg)  # both files there
    cfg.merge_from_dict({TXT: None})
    for opt_out in ({
            'allow_random_encoders': True
    }, {
            'load_from': 'a.pth'
    }, {
            'resume': True
    }):
        check_required_pretrained(Config(dict(cfg.to_dict(), **opt_out)))
    # configs without the declaration (quick start) are not concerned
    check_required_pretrained(
        Config.fromfile(
            osp.join(ROOT, 'configs/quickstart/etris-tiny_synthetic.py')))


def test_train_tool_refuses_before_training(synthetic_root, tmp_path,
                                            monkeypatch):
    config = osp.join(ROOT, 'configs/etris/etris_vit-b16_refcoco.py')
    opts = ['--cfg-options'] + [
        f'{k}_dataloader.{v}' for k in ('train', 'val', 'test')
        for v in (f'dataset.data_root={synthetic_root}', 'num_workers=0',
                  'persistent_workers=False')
    ]
    monkeypatch.setattr(sys, 'argv',
                        [TRAIN, config, '--work-dir',
                         str(tmp_path)] + opts)
    with pytest.raises(RandomEncoderError, match=VIS.replace('.', r'\.')):
        runpy.run_path(TRAIN, run_name='__main__')
    assert not list(tmp_path.glob('*.pth'))  # nothing trained


def test_hook_checks_the_runner_config_before_run():
    import types

    from mmris.engine.hooks import PretrainedCheckHook
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs/etris/etris_vit-b16_refcoco.py'))
    assert cfg.default_hooks.pretrained_check == dict(
        type='PretrainedCheckHook')
    hook = PretrainedCheckHook()
    with pytest.raises(RandomEncoderError, match=VIS.replace('.', r'\.')):
        hook.before_run(types.SimpleNamespace(cfg=cfg))
    cfg.merge_from_dict({'allow_random_encoders': True})
    hook.before_run(types.SimpleNamespace(cfg=cfg))
