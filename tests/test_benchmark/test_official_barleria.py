# Copyright (c) mmris contributors. All rights reserved.
"""mmris/benchmark/official/barleria.py: the stand-ins for detectron2,
fvcore and turtle, the timm 0.6 compatibility and the import isolation
(no official code: fake repositories written here)."""
import importlib
import logging
import math
import sys

import pytest
import torch
import torch.nn as nn


@pytest.fixture(scope='module')
def barleria():
    return importlib.import_module('mmris.benchmark.official.barleria')


def test_registered_as_method(barleria):
    official = sys.modules['mmris.benchmark.official']
    assert official.method_module('barleria') is barleria
    assert barleria.DEFAULT_YAML == 'config/refcoco/barleria_v16.yaml'


def test_c2_xavier_fill_is_caffe2_xavier(barleria):
    torch.manual_seed(0)
    conv = nn.Conv2d(768, 144, 1)
    barleria.c2_xavier_fill(conv)
    bound = math.sqrt(3.0 / 768)  # U(-sqrt(3/fan_in), sqrt(3/fan_in))
    w = conv.weight.detach()
    assert w.abs().max().item() <= bound
    assert w.abs().max().item() > 0.99 * bound
    assert w.var().item() == pytest.approx(1.0 / 768, rel=0.05)
    assert torch.count_nonzero(conv.bias).item() == 0
    # the same draws as the hand-written stand-in it replaced (fvcore's
    # c2_xavier_fill: kaiming_uniform_(a=1), bias 0)
    torch.manual_seed(0)
    ref = nn.Conv2d(768, 144, 1)
    nn.init.kaiming_uniform_(ref.weight, a=1)
    nn.init.constant_(ref.bias, 0)
    assert torch.equal(ref.weight, conv.weight)
    assert torch.equal(ref.bias, conv.bias)


def test_conv2d_is_torch_conv_then_norm_then_activation(barleria):
    torch.manual_seed(0)
    x = torch.randn(2, 6, 5, 5)
    plain = barleria.Conv2d(6, 4, kernel_size=3, padding=1)
    ref = nn.Conv2d(6, 4, kernel_size=3, padding=1)
    ref.load_state_dict(plain.state_dict())
    assert set(plain.state_dict()) == {'weight', 'bias'}
    torch.testing.assert_close(plain(x), ref(x), rtol=0, atol=0)
    norm = nn.GroupNorm(2, 4)
    full = barleria.Conv2d(
        6, 4, 3, padding=1, norm=norm, activation=torch.relu)
    full.weight.data.copy_(ref.weight)
    full.bias.data.copy_(ref.bias)
    torch.testing.assert_close(full(x), torch.relu(norm(ref(x))))
    assert 'norm.weight' in full.state_dict()


def test_configurable_routes_configs_through_from_config(barleria):

    class Net:

        @barleria.configurable
        def __init__(self, a, b=2):
            self.args = (a, b)

        @classmethod
        def from_config(cls, cfg, shape):
            return {'a': cfg['A'] * shape, 'b': cfg['B']}

    assert Net({'A': 3, 'B': 5}, 10).args == (30, 5)
    assert Net(7).args == (7, 2)
    assert Net(a=1, b=4).args == (1, 4)

    class NoFromConfig:

        @barleria.configurable
        def __init__(self, a):
            pass

    with pytest.raises(AttributeError, match='has no from_config'):
        NoFromConfig({'A': 1})

    def build(cfg):
        return cfg

    with pytest.raises(TypeError, match="__init__ only, not 'build'"):
        barleria.configurable(build)


def test_registry(barleria):
    reg = barleria.Registry('SIDE_ADAPTER')

    @reg.register()
    class Side:
        pass

    def other():
        pass

    assert reg.register(other) is other
    assert reg.get('Side') is Side and 'other' in reg
    with pytest.raises(
            KeyError, match="'Side' was already registered in "
            "'SIDE_ADAPTER'"):
        reg.register(Side)
    with pytest.raises(
            KeyError,
            match="No object named 'Nope' found in "
            "'SIDE_ADAPTER' registry"):
        reg.get('Nope')


def test_log_first_n_counts_per_calling_line(barleria, caplog):
    caplog.set_level(logging.INFO)
    for i in range(5):
        barleria.log_first_n(logging.INFO, f'fuse {i}', 3, name='t.fuse')
    for i in range(2):
        barleria.log_first_n(logging.INFO, f'other {i}', 1, name='t.fuse')
    assert [r.getMessage() for r in caplog.records
            ] == ['fuse 0', 'fuse 1', 'fuse 2', 'other 0']
    with pytest.raises(NotImplementedError, match="key='caller' only"):
        barleria.log_first_n(logging.INFO, 'x', key='message')


def test_shape_spec_and_cnn_block_base(barleria):
    spec = barleria.ShapeSpec(channels=768)
    assert (spec.channels, spec.height, spec.width,
            spec.stride) == (768, None, None, None)
    with pytest.raises(AttributeError):
        spec.channels = 1
    block = barleria.CNNBlockBase(768, 144, 1)
    assert (block.in_channels, block.out_channels, block.stride) == (768, 144,
                                                                     1)
    with pytest.raises(
            NotImplementedError,
            match=r'official/barleria\.py: detectron2 '
            r'CNNBlockBase\.freeze is not stood in for'):
        block.freeze()


def test_uncalled_stand_ins_raise(barleria):
    with pytest.raises(RuntimeError, match='turtle.forward is a stand-in'):
        barleria.turtle_forward(10)
    layers = barleria.STUBS['detectron2.layers']()
    assert layers.Conv2d is barleria.Conv2d
    with pytest.raises(
            AttributeError,
            match=r"detectron2\.layers\.get_norm is not stood in "
            r"for by mmris/benchmark/official/barleria\.py "
            r"\(it provides only \['CNNBlockBase', 'Conv2d', "
            r"'ShapeSpec'\]\)"):
        layers.get_norm  # noqa: B018


def _fake_repo(tmp_path):
    """A fake official repository importing what BarLeRIa imports."""
    pkg = tmp_path / 'repo' / 'model'
    pkg.mkdir(parents=True)
    (pkg / '__init__.py').write_text(
        'import fvcore.nn.weight_init as weight_init\n'
        'from detectron2.config import configurable\n'
        'from detectron2.layers import CNNBlockBase, Conv2d, ShapeSpec\n'
        'from detectron2.utils.logger import log_first_n\n'
        'from detectron2.utils.registry import Registry\n'
        'from turtle import forward\n'
        'from timm.models.layers.helpers import to_2tuple\n')
    return str(tmp_path / 'repo')


def test_stand_ins_are_isolated(barleria, tmp_path):
    repo = _fake_repo(tmp_path)
    common = sys.modules['mmris.benchmark.official.common']
    before = set(sys.modules)
    with common.official_imports(repo, stubs=barleria.STUBS), \
            barleria.timm_old_names():
        model = importlib.import_module('model')
        assert model.Conv2d is barleria.Conv2d
        assert model.weight_init.c2_xavier_fill is barleria.c2_xavier_fill
        assert model.Registry is barleria.Registry
        assert model.to_2tuple(3) == (3, 3)
    leaked = {
        name
        for name in set(sys.modules) - before
        if name.split('.')[0] in ('model', 'detectron2', 'fvcore')
        or name == 'timm.models.layers.helpers'
    }
    assert not leaked


def test_stand_ins_do_not_shadow_installed_packages(barleria, tmp_path,
                                                    monkeypatch):
    # An installed fvcore (written here) is used, not the stand-in.
    site = tmp_path / 'site'
    (site / 'fvcore' / 'nn').mkdir(parents=True)
    (site / 'fvcore' / '__init__.py').write_text('')
    (site / 'fvcore' / 'nn' / '__init__.py').write_text('')
    (site / 'fvcore' / 'nn' / 'weight_init.py'
     ).write_text('def c2_xavier_fill(module):\n    return "real"\n')
    monkeypatch.syspath_prepend(str(site))
    repo = _fake_repo(tmp_path)
    common = sys.modules['mmris.benchmark.official.common']
    with common.official_imports(repo, stubs=barleria.STUBS), \
            barleria.timm_old_names():
        model = importlib.import_module('model')
        assert model.weight_init.c2_xavier_fill(None) == 'real'
        assert model.weight_init.__file__.startswith(str(site))
        assert model.Conv2d is barleria.Conv2d  # detectron2 is missing
        try:
            import _tkinter  # noqa: F401
        except ImportError:
            assert model.forward is barleria.turtle_forward
        else:  # the standard library's turtle is there
            assert model.forward.__module__ == 'turtle'
    for name in [n for n in sys.modules if n.startswith('fvcore')]:
        del sys.modules[name]


def test_timm_old_names_use_the_installed_timm(barleria):
    timm_layers = importlib.import_module('timm.layers')
    had = 'timm.models.layers.helpers' in sys.modules
    with barleria.timm_old_names():
        helpers = importlib.import_module('timm.models.layers.helpers')
        assert helpers.to_2tuple is timm_layers.to_2tuple
    assert ('timm.models.layers.helpers' in sys.modules) == had


def test_timm06_create_model_calls_the_entry_point_as_timm_06(
        barleria, monkeypatch):
    import timm.models
    calls = []

    def absvit_like(pretrained=False, pretrained_cfg=None, **kwargs):
        calls.append((pretrained, pretrained_cfg, kwargs))
        return nn.Identity()

    monkeypatch.setattr(timm.models, 'is_model', lambda n: n == 'absvit')
    monkeypatch.setattr(timm.models, 'model_entrypoint', lambda n: absvit_like)
    model = barleria.timm06_create_model(
        'absvit',
        False,
        img_size=416,
        num_classes=0,
        drop_rate=0,
        drop_path_rate=0.0,
        global_pool=None)
    assert isinstance(model, nn.Identity)
    assert calls == [
        (False, None,
         dict(img_size=416, num_classes=0, drop_rate=0, drop_path_rate=0.0))
    ]
    with pytest.raises(ValueError, match='PRETRAINED False'):
        barleria.timm06_create_model('absvit', True)
    with pytest.raises(RuntimeError, match="Unknown timm model 'nope'"):
        barleria.timm06_create_model('nope')


def test_jitter_parameters_keeps_ties_and_buffers(barleria):

    class Tied(nn.Module):

        def __init__(self):
            super().__init__()
            self.flow = nn.Linear(4, 4)
            self.flow.bias.data.zero_()
            self.helper = nn.Module()
            self.helper.bias = self.flow.bias  # shared, as log_jacobians
            self.bn = nn.BatchNorm1d(4)

    torch.manual_seed(0)
    net = Tied()
    weight = net.flow.weight.detach().clone()
    assert barleria.jitter_parameters(net, std=0.02) is net
    assert net.helper.bias is net.flow.bias
    assert torch.count_nonzero(net.flow.bias).item() == 4
    assert 0 < (net.flow.weight - weight).abs().max().item() < 0.2
    assert torch.equal(net.bn.running_var, torch.ones(4))
    assert torch.equal(net.bn.running_mean, torch.zeros(4))
