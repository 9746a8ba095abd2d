# Copyright (c) mmris contributors. All rights reserved.
"""tools/analysis_tools/compare_official.py end to end on a tiny config, with
a fake official builder (the builders themselves:
tests/test_benchmark/test_official_*.py)."""
import importlib.util
import os.path as osp
import re
import sys
import types

import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(ROOT, 'tools', 'analysis_tools', 'compare_official.py')


def _tool():
    spec = importlib.util.spec_from_file_location('_compare_official', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_builder(config):
    """A stand-in official builder: the 'official' model is an mmris model
    of ``config`` built with another seed (its state dict already carries
    mmris names), fed as compare_official feeds the official models."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    def samples(img, word, mask=None):
        out = []
        for i in range(img.shape[0]):
            ds = SegDataSample(
                metainfo=dict(
                    img_shape=tuple(img.shape[-2:]),
                    ori_shape=tuple(img.shape[-2:])))
            ds.text_ids = word[i]
            if mask is not None:
                ds.gt_mask = PixelData(data=mask[i])
            out.append(ds)
        return out

    def build(repo, yaml_file):
        init_default_scope('mmseg')
        torch.manual_seed(123)
        return MODELS.build(Config.fromfile(config).model), {}

    def logits(model, img, word):
        return model._forward(img, samples(img, word))

    def loss(model, img, word, mask):
        losses = model.loss(img, samples(img, word, mask))
        return sum(v for k, v in losses.items() if 'loss' in k)

    return types.SimpleNamespace(
        DEFAULT_YAML='fake.yaml', build=build, logits=logits, loss=loss)


def test_compare_runs_end_to_end_on_a_tiny_config(tmp_path, monkeypatch,
                                                  capsys):
    tool = _tool()
    config = osp.join(ROOT, 'configs', 'quickstart', 'etris-tiny_synthetic.py')
    monkeypatch.setattr(tool, 'method_module',
                        lambda method: _fake_builder(config))
    monkeypatch.setattr(tool, 'convert_official_state_dict',
                        lambda state, method: dict(state))
    monkeypatch.setattr(sys, 'argv', [
        TOOL, 'etris', '--official-repo',
        str(tmp_path), '--config', config, '--batch', '2', '--iters', '1'
    ])
    tool.main()
    out = capsys.readouterr().out
    from mmengine.config import Config
    from mmseg.registry import MODELS
    model = MODELS.build(Config.fromfile(config).model)
    n = len(model.state_dict())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert f'all {n} tensors load strictly' in out
    assert f'official {trainable:,}, mmris {trainable:,}' in out
    # The same weights were loaded: the logits are equal.
    assert 'max |official - mmris| = 0.000e+00' in out
    counted = re.findall(r'activations saved for backward ([\d.]+) MiB', out)
    assert len(counted) == 2 and float(counted[0]) > 0
    assert re.search(
        r'training step \(median of 1, interleaved, 2 images.*'
        r'official / mmris [\d.]+', out)
    assert re.search(r'inference .*official / mmris [\d.]+', out)
