# Copyright (c) mmris contributors. All rights reserved.
"""``compile=True``: the runner compiles ``model.train_step`` with
``torch.compile``; the compiled step must give the same losses and the same
updated parameters as eager mode, for the three methods (tiny quick-start
configs, CPU).

To keep the suite fast on two cores, ETRIS uses the ``aot_eager`` backend
(Dynamo graph capture + AOTAutograd forward/backward graphs, eager kernels:
everything but inductor's code generation) and BarLeRIa / DETRIS the
``eager`` backend (Dynamo graph capture, where model code breaks if it is
not traceable). Inductor compiles the same graphs; the paper configs were
checked with it by hand.
"""
import copy
import importlib.util
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import mmris  # noqa: F401

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _benchmark_tool():
    path = osp.join(ROOT, 'tools', 'analysis_tools', 'benchmark.py')
    spec = importlib.util.spec_from_file_location('_mmris_benchmark', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize('name,backend', [
    ('etris-tiny_synthetic', 'aot_eager'),
    ('barleria-tiny_synthetic', 'eager'),
    ('detris-tiny_synthetic', 'eager'),
])
def test_compiled_train_step_equals_eager(name, backend):
    bench = _benchmark_tool()
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', 'quickstart', f'{name}.py'))
    init_default_scope('mmseg')
    torch.manual_seed(0)
    eager = MODELS.build(cfg.model).train()
    compiled = copy.deepcopy(eager)
    size, length = bench.input_spec(cfg)
    data = bench.make_batch(2, size, length, train=True)
    logs = []
    for model, comp in ((eager, False), (compiled, True)):
        optim = build_optim_wrapper(
            model,
            dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1)))
        step = model.train_step
        if comp:  # what Runner._maybe_compile('train_step') does
            torch._dynamo.reset()
            step = torch.compile(step, backend=backend)
        torch.manual_seed(1)
        logs.append({
            k: v.detach()
            for k, v in step(copy.deepcopy(data), optim).items()
        })
    assert set(logs[0]) == set(logs[1]) and 'loss' in logs[0]
    for k in logs[0]:
        torch.testing.assert_close(
            logs[1][k], logs[0][k], atol=1e-5, rtol=1e-5, msg=k)
    moved = 0
    for (k, p), q in zip(eager.named_parameters(), compiled.parameters()):
        torch.testing.assert_close(q, p, atol=1e-5, rtol=1e-5, msg=k)
        moved += int(p.requires_grad)
    assert moved > 10
