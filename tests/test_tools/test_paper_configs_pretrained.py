# Copyright (c) mmris contributors. All rights reserved.
"""Every paper model trains from the documented pretrained files.

Synthetic pretrained files with the official key names and shapes are
written once per session: OpenAI-CLIP plain state dicts (ViT-B/16, RN50,
RN101; names/shapes from open_clip's CLIP built on the meta device, plus the
scalar entries of the OpenAI archives) and Meta DINOv2 reg4 state dicts
(ViT-B/14, ViT-L/14; names/shapes from the official DETRIS key lists, the
``dinov2.`` tensors without adapters) and the EVA-CLIP release file of
EVA02-CLIP-B/16 (names/shapes from the official BarLeRIa-EVA key list).
Each paper config is then trained for
two iterations through ``tools/train.py`` (in-process, small inputs, no
validation, no checkpoint) with ``model.backbone.{visual,text}.pretrained``
set; right after ``init_weights`` every encoder tensor must equal the
file's (the ViT positional table after the bicubic resize to the 26 x 26
grid) and everything that is not an encoder tensor (adapters, flows,
Bridger, Intertwiner) must keep the value it was built with.
"""
import ast
import math
import os.path as osp
import runpy
import sys

import pytest
import torch
import torch.nn.functional as F

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TRAIN = osp.join(ROOT, 'tools', 'train.py')
KEYS = osp.join(ROOT, 'tests', 'data', 'official_keys')
# the scalar entries of the OpenAI TorchScript archives
OPENAI_SCALARS = dict(
    input_resolution=224, context_length=77, vocab_size=49408)

# (config, visual file, text file, input size)
CASES = [
    ('etris/etris_vit-b16_refcoco.py', 'ViT-B-16', 'ViT-B-16', 64),
    ('etris/etris_rn50_refcoco.py', 'RN50', 'RN50', 64),
    ('etris/etris_rn101_refcoco.py', 'RN101', 'RN101', 64),
    ('barleria/barleria_vit-b16_refcoco.py', 'ViT-B-16', 'ViT-B-16', 64),
    ('detris/detris-b_refcoco.py', 'dinov2_vitb14_reg4', 'ViT-B-16', 56),
    ('detris/detris-l_refcoco.py', 'dinov2_vitl14_reg4', 'ViT-B-16', 56),
    ('barleria/barleria_eva02-b16_refcoco.py', 'EVA02_CLIP_B_psz16_s8B',
     'EVA02_CLIP_B_psz16_s8B', 64),
]


def _value(key: str, shape: tuple, g: torch.Generator) -> torch.Tensor:
    """A plausible random tensor for ``key`` (positive BN variances, unit-ish
    norm scales), stored in fp16 as the OpenAI archives."""
    if key.endswith('num_batches_tracked'):
        return torch.tensor(0)
    if key.endswith('running_var'):
        t = 0.5 + torch.rand(shape, generator=g)
    elif key.endswith('logit_scale'):
        t = torch.tensor(math.log(100.0))
    elif key.endswith('gamma'):  # DINOv2 LayerScale
        t = 0.1 * torch.rand(shape, generator=g)
    elif len(shape) == 1 and key.endswith('weight') and any(
            n in key for n in ('ln', 'bn', 'norm')):
        t = 1 + 0.1 * torch.randn(shape, generator=g)
    else:
        t = 0.02 * torch.randn(shape, generator=g)
    return t.half()


def _openai_state(name: str) -> dict:
    import open_clip
    from open_clip.model import CLIP
    with torch.device('meta'):
        model = CLIP(**open_clip.get_model_config(name), quick_gelu=True)
    g = torch.Generator().manual_seed(0)
    state = {
        k: _value(k, tuple(v.shape), g)
        for k, v in model.state_dict().items()
    }
    state.update({k: torch.tensor(v) for k, v in OPENAI_SCALARS.items()})
    return state


def _meta_dinov2_state(name: str) -> dict:
    official = dict(vitb14='detris_DETRIS_base', vitl14='detris_DETRIS_large')
    arch = name.split('_')[1]
    g = torch.Generator().manual_seed(0)
    state = {}
    with open(osp.join(KEYS, official[arch] + '.txt')) as f:
        for line in f:
            key, shape, _ = line.rstrip('\n').split('\t')
            if key.startswith('dinov2.') and '.adapter.' not in key:
                key = key[len('dinov2.'):]
                state[key] = _value(key, tuple(ast.literal_eval(shape)), g)
    return state


def _eva_clip_state(name: str) -> dict:
    """The EVA-CLIP release layout (``visual.*``, ``text.*``,
    ``logit_scale``; names and shapes of the official BarLeRIa-EVA key list,
    without the flows), with the derived rotary tables of its 14 x 14
    pretraining grid (ignored by the loaders)."""
    g = torch.Generator().manual_seed(0)
    state = {}
    with open(osp.join(KEYS, 'barleria_eva.txt')) as f:
        for line in f:
            key, shape, _ = line.rstrip('\n').split('\t')
            if not key.startswith('backbone.') or '.flow' in key:
                continue
            key, shape = key[len('backbone.'):], tuple(ast.literal_eval(shape))
            if 'rope.freqs_' in key:
                shape = (196, shape[1])
            state[key] = _value(key, shape, g)
    return state


@pytest.fixture(scope='session')
def pretrained(tmp_path_factory):
    """``pretrained(name) -> path``: each file is written once."""
    root = tmp_path_factory.mktemp('pretrained')
    paths = {}

    def get(name: str) -> str:
        if name not in paths:
            state = (
                _meta_dinov2_state(name)
                if name.startswith('dinov2') else _eva_clip_state(name)
                if name.startswith('EVA') else _openai_state(name))
            suffix = '_pretrain.pth' if name.startswith('dinov2') else '.pt'
            paths[name] = str(root / (name + suffix))
            torch.save(state, paths[name])
        return paths[name]

    return get


@pytest.fixture(scope='session')
def tiny_refcoco(tmp_path_factory):
    """(data root, batch size): RefCOCO-format data whose training split
    gives exactly two iterations (drop_last)."""
    from mmris.testing.synthetic import make_synthetic_refer
    root = str(tmp_path_factory.mktemp('tiny_refcoco'))
    summary = make_synthetic_refer(
        root, seed=0, num_images=dict(train=2, val=1, testA=1, testB=1))
    refs = summary['splits']['train']['refs']
    assert refs >= 4, summary
    return root, refs // 2


def _options(data: tuple, size: int, visual: str, text: str) -> list:
    data_root, batch_size = data
    opts = [
        f'{k}_dataloader.{v}' for k in ('train', 'test')
        for v in (f'dataset.data_root={data_root}', 'num_workers=0',
                  'persistent_workers=False')
    ]
    return ['--cfg-options'] + opts + [
        f'train_dataloader.batch_size={batch_size}',
        f'train_dataloader.dataset.img_size={size}', 'train_cfg.max_epochs=1',
        'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None',
        'default_hooks.checkpoint=None', 'default_hooks.logger.interval=1',
        'log_processor.window_size=1', 'env_cfg.cudnn_benchmark=False',
        f'model.backbone.visual.pretrained={visual}',
        f'model.backbone.text.pretrained={text}'
    ]


def _expected_encoder_state(encoder, state: dict) -> dict:
    """The file's tensors as the encoder must hold them after loading."""
    expected = {
        k: v.float() if v.is_floating_point() else v
        for k, v in state.items()
    }
    pos = expected.get('positional_embedding')
    own = encoder.state_dict().get('positional_embedding')
    if pos is not None and own is not None and pos.shape != own.shape:
        # ViT table: 14 x 14 patch rows -> the model's grid, bicubic,
        # align_corners=False, class row kept
        side, grid = (
            int(round(math.sqrt(n - 1))) for n in (pos.shape[0], own.shape[0]))
        table = pos[1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
        table = F.interpolate(
            table, size=(grid, grid), mode='bicubic', align_corners=False)
        expected['positional_embedding'] = torch.cat(
            [pos[:1],
             table.permute(0, 2, 3, 1).reshape(grid * grid, -1)])
    return expected


@pytest.mark.slow
@pytest.mark.parametrize(
    'config,visual,text,size', CASES, ids=[c[0] for c in CASES])
def test_train_two_iterations_from_pretrained_files(config, visual, text, size,
                                                    pretrained, tiny_refcoco,
                                                    tmp_path, monkeypatch,
                                                    capsys):
    import mmris.engine
    from mmris.checkpoint import sub_state_dict

    vis_path, txt_path = pretrained(visual), pretrained(text)
    if visual.startswith('EVA'):
        eva = torch.load(vis_path)
        files = {
            'visual': {
                k: v
                for k, v in sub_state_dict(eva, 'visual.').items()
                if 'rope.freqs_' not in k
            },
            'text':
            dict(sub_state_dict(eva, 'text.'), logit_scale=eva['logit_scale'])
        }
    else:
        files = {
            'visual': (torch.load(vis_path) if visual.startswith('dinov2') else
                       sub_state_dict(torch.load(vis_path), 'visual.')),
            'text': {
                k: v
                for k, v in torch.load(txt_path).items()
                if not k.startswith('visual.') and k not in OPENAI_SCALARS
            }
        }
    record = {}
    build_runner = mmris.engine.build_runner

    def check_loaded(backbone) -> None:
        """Compare the encoders with the files right after init_weights."""
        own_keys = set()
        for name, state in files.items():
            encoder = getattr(backbone, name)
            own = set(encoder.own_state_keys())
            own_keys |= {f'{name}.{k}' for k in own}
            optional = tuple(encoder.not_in_pretrained)
            record[name + '_absent'] = {
                k
                for k in own if optional and k.startswith(optional)
            }
            expected = _expected_encoder_state(encoder, state)
            # every file tensor is used, every own key comes from the file
            record[name + '_keys'] = (set(expected),
                                      own - record[name + '_absent'])
            current = encoder.state_dict()
            record[name + '_differ'] = [
                k for k, v in expected.items()
                if not torch.allclose(current[k], v, rtol=0, atol=1e-6)
            ]
        return own_keys

    def recording_build_runner(cfg):
        runner = build_runner(cfg)
        model = runner.model
        init_weights = model.init_weights

        def recorded_init_weights():
            encoder_keys = {
                f'{n}.{k}'
                for n in ('visual', 'text')
                for k in getattr(model.backbone, n).own_state_keys()
            }
            built = {
                k: v.clone()
                for k, v in model.backbone.state_dict().items()
                if k not in encoder_keys
            }
            init_weights()
            assert check_loaded(model.backbone) == encoder_keys
            # the rest of the backbone (adapters, flows, Bridger,
            # Intertwiner) keeps the values it was built with
            loaded = model.backbone.state_dict()
            record['rest'] = sorted(built)
            record['rest_changed'] = [
                k for k, v in built.items() if not torch.equal(loaded[k], v)
            ]

        model.init_weights = recorded_init_weights
        return runner

    monkeypatch.setattr(mmris.engine, 'build_runner', recording_build_runner)
    monkeypatch.setattr(sys, 'argv', [
        TRAIN,
        osp.join(ROOT, 'configs', config), '--work-dir',
        str(tmp_path / 'work')
    ] + _options(tiny_refcoco, size, vis_path, txt_path))
    runpy.run_path(TRAIN, run_name='__main__')
    out = capsys.readouterr()
    log = out.out + out.err
    assert 'Epoch(train) [1][2/2]' in log, log[-3000:]

    for name in files:
        file_keys, own_keys = record[name + '_keys']
        assert file_keys == own_keys, (name, file_keys ^ own_keys)
        assert record[name + '_differ'] == [], name
    # only the CRIS branch of the ResNet is not in the OpenAI weights
    assert record['text_absent'] == set()
    if visual.startswith('RN'):
        absent = record['visual_absent']
        assert absent and all(
            k.startswith('attnpool.connect.') for k in absent)
    else:
        assert record['visual_absent'] == set()
    assert record['rest_changed'] == []
    if 'detris' in config or 'barleria' in config:
        assert any('.adapter.' in k or '.flow' in k for k in record['rest'])
    if config.startswith('etris/'):
        assert any(k.startswith('bridge.') for k in record['rest'])
