# Copyright (c) mmris contributors. All rights reserved.
"""mmris/benchmark/official/detris.py: the stand-ins for the official
DETRIS model (no official code here: fake repositories written here)."""
import importlib
import importlib.util
import os
import sys
import types

import pytest
import torch
import torch.nn as nn

# The official DINOv2 switch, as model/dinov2/layers/attention.py uses it.
XFORMERS_SWITCH = '''import os
XFORMERS_ENABLED = os.environ.get("XFORMERS_DISABLED") is None
try:
    if XFORMERS_ENABLED:
        from xformers.ops import memory_efficient_attention
        XFORMERS_AVAILABLE = True
    else:
        raise ImportError
except ImportError:
    XFORMERS_AVAILABLE = False
'''


@pytest.fixture(scope='module')
def detris():
    return importlib.import_module('mmris.benchmark.official.detris')


def _write(root, files):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_default_yaml_is_the_refcoco_base_config(detris):
    assert detris.DEFAULT_YAML == 'config/refcoco/DETRIS_base.yaml'


def test_unused_module_raises_a_clear_error_when_called(detris):
    module = detris.unused_module('fvcore.nn.weight_init')
    fill = module.c2_xavier_fill  # importing a name is fine
    with pytest.raises(RuntimeError) as err:
        fill(nn.Linear(2, 2))
    assert 'fvcore.nn.weight_init.c2_xavier_fill was called' in str(err.value)
    assert 'official/detris.py' in str(err.value)
    assert 'install fvcore' in str(err.value)
    # Dunder probes (import machinery, getattr with default) see nothing.
    assert getattr(module, '__file__', None) is None
    with pytest.raises(AttributeError):
        module.__path__


@pytest.mark.skipif(
    importlib.util.find_spec('fvcore') is not None,
    reason='the real fvcore is installed and used')
def test_fvcore_import_is_stood_in_only_inside(detris, tmp_path):
    common = importlib.import_module('mmris.benchmark.official.common')
    _write(
        tmp_path, {
            'model/__init__.py': '',
            'model/layers.py': 'import fvcore.nn.weight_init as weight_init\n',
        })
    with common.official_imports(str(tmp_path), detris.STUBS):
        layers = importlib.import_module('model.layers')
        with pytest.raises(RuntimeError, match='c2_msra_fill was called'):
            layers.weight_init.c2_msra_fill(None)
    assert not any(n == 'fvcore' or n.startswith('fvcore.')
                   for n in sys.modules)
    assert 'model.layers' not in sys.modules


@pytest.mark.parametrize('before', [None, '1'])
def test_xformers_switch_selects_the_plain_path(detris, tmp_path, monkeypatch,
                                                before):
    """Even where xFormers is importable (a fake one here), the official
    switch is set during the import and the environment is restored."""
    common = importlib.import_module('mmris.benchmark.official.common')
    if before is None:
        monkeypatch.delenv('XFORMERS_DISABLED', raising=False)
    else:
        monkeypatch.setenv('XFORMERS_DISABLED', before)
    _write(
        tmp_path, {
            'xformers/__init__.py': '',
            'xformers/ops.py': 'def memory_efficient_attention(*a): pass\n',
            'model/__init__.py': '',
            'model/attention.py': XFORMERS_SWITCH,
        })
    with common.official_imports(str(tmp_path)):
        enabled = importlib.import_module('model.attention')
    if before is None:  # the fake xFormers is found and used
        assert enabled.XFORMERS_AVAILABLE is True
        with pytest.raises(
                RuntimeError, match=r"\['model.attention'\] "
                'use xFormers'):
            detris.check_plain_pytorch([enabled])
    with common.official_imports(str(tmp_path)), detris.xformers_disabled():
        plain = importlib.import_module('model.attention')
    assert plain.XFORMERS_AVAILABLE is False
    detris.check_plain_pytorch([plain])  # no error
    assert os.environ.get('XFORMERS_DISABLED') == before


def test_check_plain_pytorch_refuses_a_module_without_the_flag(detris):
    with pytest.raises(RuntimeError, match=r"\['renamed'\] use xFormers"):
        detris.check_plain_pytorch([types.ModuleType('renamed')])


def test_pretrained_files_answers_only_the_configured_paths(detris):
    real = (torch.load, torch.jit.load)
    archive, state = object(), {'w': torch.ones(1)}
    answers = {
        'pretrain/ViT-B-16.pt': ('torch.jit.load', archive),
        'pretrain/dinov2.pth': ('torch.load', state),
    }
    with detris.pretrained_files(answers):  # the files do not exist
        assert torch.jit.load(
            'pretrain/ViT-B-16.pt', map_location='cpu') is archive
        assert torch.load('pretrain/dinov2.pth') is state
        with pytest.raises(RuntimeError) as err:
            torch.load('pretrain/ViT-B-16.pt')
        assert ("unexpected torch.load('pretrain/ViT-B-16.pt')"
                in str(err.value))
        assert "only ['pretrain/dinov2.pth'] are answered" in str(err.value)
        with pytest.raises(RuntimeError, match=r"torch.jit.load\('other.pt'"):
            torch.jit.load('other.pt')
    assert (torch.load, torch.jit.load) == real
    with pytest.raises(KeyError):
        with detris.pretrained_files(answers):
            raise KeyError('inside')
    assert (torch.load, torch.jit.load) == real


def test_jitter_perturbs_floating_tensors_only(detris):
    state = {
        'gamma': torch.ones(200, 200),
        'count': torch.tensor(7),
        'half': torch.zeros(3, dtype=torch.half)
    }
    torch.manual_seed(3)
    out = detris.jitter(state, std=0.02)
    torch.manual_seed(3)
    again = detris.jitter(state, std=0.02)
    assert out['count'] is state['count']
    assert out['half'].dtype == torch.half and out['half'].shape == (3, )
    noise = out['gamma'] - 1
    assert abs(noise.std().item() - 0.02) < 1e-3
    assert abs(noise.mean().item()) < 1e-3
    assert torch.equal(out['gamma'], again['gamma'])
    assert torch.equal(state['gamma'], torch.ones(200, 200))  # not in place


def test_random_dinov2_state_builds_the_checkpoint_shape(detris):
    calls = []

    def arch(name):

        def make(**kwargs):
            calls.append((name, kwargs))
            return nn.Linear(2, 3)

        return make

    vits = types.SimpleNamespace(
        vit_base=arch('vit_base'), vit_large=arch('vit_large'))
    state = detris.random_dinov2_state(vits, 'dino-base')
    assert set(state) == {'weight', 'bias'}
    detris.random_dinov2_state(vits, 'dinov2-large')
    checkpoint = dict(
        patch_size=14,
        num_register_tokens=4,
        img_size=518,
        init_values=1.0,
        block_chunks=0)
    assert calls == [('vit_base', checkpoint), ('vit_large', checkpoint)]
    with pytest.raises(KeyError, match="unknown dino_name 'dino-giant'"):
        detris.random_dinov2_state(vits, 'dino-giant')


class _Official(nn.Module):
    """Answers like the official DETRIS forward: logits in test mode,
    (pred, mask, loss) in training."""

    def forward(self, img, word, mask=None):
        pred = img.mean() + word.float().mean() * torch.ones(1, 1, 2, 2)
        if mask is None:
            return pred
        return pred, mask, (pred - mask).abs().mean()


def test_logits_and_loss_follow_the_official_forward(detris):
    img, word, mask = torch.ones(1, 3, 4,
                                 4), torch.ones(1, 5), torch.zeros(1, 1, 2, 2)
    assert torch.equal(
        detris.logits(_Official(), img, word), torch.full((1, 1, 2, 2), 2.))
    assert detris.loss(_Official(), img, word, mask).item() == 2.
