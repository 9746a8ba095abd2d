# Copyright (c) mmris contributors. All rights reserved.
"""tools/analysis_tools/benchmark_suite.{sh,py} on CPU with the tiny
quick-start config: the JSON and the markdown table, the official side (a
fake builder standing in for the official code), failures, out-of-memory,
missing clones and the time budget."""
import gc
import importlib.util
import json
import os
import os.path as osp
import subprocess
import types
import weakref

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(ROOT, 'tools', 'analysis_tools')
TINY = 'configs/quickstart/etris-tiny_synthetic.py'
QUICK = ['--device', 'cpu', '--warmup', '0', '--iters', '1']


def _suite():
    spec = importlib.util.spec_from_file_location(
        '_benchmark_suite', osp.join(TOOLS, 'benchmark_suite.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read(out_dir):
    with open(osp.join(out_dir, 'benchmark_suite.json')) as f:
        report = json.load(f)
    with open(osp.join(out_dir, 'benchmark_suite.md')) as f:
        table = [
            line for line in f.read().splitlines()
            if line.startswith('| ') and not line.startswith('| model ')
        ]
    return report, table


def _assert_measured(run, batch):
    assert run['status'] == 'ok' and run['error'] is None, run
    assert run['batch'] == batch and run['iters'] == 1
    for key in ('ms_per_step', 'img_per_s', 'tflop_per_step', 'tflops'):
        assert run[key] > 0, (key, run)
    assert run['img_per_s'] == pytest.approx(batch * 1000 / run['ms_per_step'])
    assert run['tflops'] == pytest.approx(run['tflop_per_step'] /
                                          (run['ms_per_step'] / 1000))
    assert run['peak_gib'] is None  # n/a on CPU


@pytest.mark.slow
def test_cli_tiny_cpu_run_writes_json_and_table(tmp_path):
    clones = tmp_path / 'clones'
    clones.mkdir()
    out = tmp_path / 'out'
    proc = subprocess.run([
        'bash',
        osp.join(TOOLS, 'benchmark_suite.sh'), *QUICK, '--models',
        f'etris-vit-b16={TINY}', '--train-batches', '1', '2',
        '--infer-batches', '1', '--peak-tflops', '0.5', '--official-root',
        str(clones), '--out-dir',
        str(out)
    ],
                          cwd=ROOT,
                          capture_output=True,
                          text=True,
                          timeout=120,
                          env=dict(os.environ, CUDA_VISIBLE_DEVICES=''))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (f'official ETRIS: MISSING (no folder ETRIS or kkakkkka/ETRIS in '
            f'{clones}; clone https://github.com/kkakkkka/ETRIS there)'
            ) in proc.stdout
    report, table = _read(out)
    ours = [r for r in report['runs'] if r['side'] == 'mmris']
    assert [(r['mode'], r['batch']) for r in ours] == [('infer', 1),
                                                       ('train', 1),
                                                       ('train', 2)]
    for run in ours:
        _assert_measured(run, run['batch'])
        assert run['peak_fraction'] == pytest.approx(run['tflops'] / 0.5)
        assert run['precision'].startswith('bf16')
    # Training counts forward + backward: more FLOPs per image than infer.
    assert ours[1]['tflop_per_step'] > 2 * ours[0]['tflop_per_step']
    assert ours[2]['tflop_per_step'] > ours[1]['tflop_per_step']
    theirs = [r for r in report['runs'] if r['side'] == 'official']
    assert [r['status'] for r in theirs] == ['missing'] * 3
    assert all(f'no clone ETRIS in {clones}' in r['error'] for r in theirs)
    assert report['settings']['official_clones'] == {'ETRIS': None}
    env = report['environment']
    assert env['device'] == 'cpu' and env['torch'] == torch.__version__
    assert env['date']
    if osp.isdir(osp.join(ROOT, '.git')):  # not in a copy of the files
        assert env['git_commit']
    assert len(table) == 3  # one row per (model, mode, batch)
    assert table[0].startswith('| etris-tiny_synthetic.py (official: ETRIS '
                               'ViT-B/16 416) | infer b1 | ')
    assert '| missing |' in table[0]
    assert proc.stdout.count('| train b') == 2  # the table is printed
    assert proc.stdout.count('| infer b') == 1


class _FakeOfficialNet(nn.Module):
    """A tiny stand-in with the official call signature (img, word[,
    mask]); records the autocast dtype and cuDNN switch it runs under."""

    def __init__(self, seen):
        super().__init__()
        self.frozen = nn.Conv2d(3, 4, 3, stride=4, padding=1)
        self.frozen.requires_grad_(False)
        self.embed = nn.Embedding(49408, 4)
        self.head = nn.Conv2d(4, 1, 1)
        self.seen = seen

    def forward(self, img, word, mask=None):
        self.seen.append(
            (torch.is_autocast_enabled('cpu'), torch.get_autocast_dtype('cpu'),
             torch.backends.cudnn.enabled, img.shape[0]))
        x = self.frozen(img) + self.embed(word).mean(1)[:, :, None, None]
        pred = self.head(x)
        if mask is None:
            return pred
        mask = F.interpolate(mask, pred.shape[-2:], mode='nearest')
        return pred, mask, F.binary_cross_entropy_with_logits(
            pred.float(), mask)


def _fake_builders(oom_at_batch):
    """Builder modules with the API of ``official/*.py``: ETRIS builds the
    tiny net (its training step runs out of memory at ``oom_at_batch``),
    DETRIS fails to build. Returns the lookup, weak references to the nets
    built and what the nets saw."""
    nets, seen = [], []

    def build(repo, yaml_file):
        assert osp.isdir(repo) and yaml_file == 'config/refcoco/' \
            'bridge_v16.yaml'
        net = _FakeOfficialNet(seen)
        nets.append(weakref.ref(net))
        return net, {'input_size': 96, 'word_len': 17}

    def loss(model, img, word, mask):
        if img.shape[0] == oom_at_batch:
            raise torch.cuda.OutOfMemoryError(
                'CUDA out of memory. Tried to allocate 20.00 GiB')
        return model(img, word, mask)[2]

    def broken(repo, yaml_file):
        raise ImportError(f'{repo}: fake official code cannot be imported')

    modules = dict(
        etris=types.SimpleNamespace(
            DEFAULT_YAML='unused.yaml',
            build=build,
            logits=lambda model, img, word: model(img, word),
            loss=loss),
        detris=types.SimpleNamespace(
            DEFAULT_YAML='unused.yaml', build=broken, logits=None, loss=None))
    return modules.__getitem__, nets, seen


@pytest.mark.slow
def test_official_side_oom_and_failed_build_are_recorded(
        tmp_path, monkeypatch):
    suite = _suite()
    lookup, nets, seen = _fake_builders(oom_at_batch=2)
    monkeypatch.setattr(suite, 'method_module', lookup)
    clones = tmp_path / 'clones'
    (clones / 'etris').mkdir(parents=True)  # the name's case is ignored
    (clones / 'DETRIS').mkdir()
    out = tmp_path / 'out'
    cudnn = torch.backends.cudnn.enabled
    status = suite.main([
        *QUICK, '--models', f'etris-vit-b16={TINY}', f'detris-b={TINY}',
        '--train-batches', '1', '2', '--infer-batches', '1', '--official-root',
        str(clones), '--out-dir',
        str(out)
    ])
    assert status == 1  # a run failed (the DETRIS build)
    assert torch.backends.cudnn.enabled == cudnn  # restored
    report, table = _read(out)
    runs = {
        (r['model'], r['side'], r['mode'], r['batch']): r
        for r in report['runs']
    }
    assert len(runs) == len(report['runs']) == 12
    for model in ('etris-vit-b16', 'detris-b'):  # the suite went on
        for mode, batch in (('train', 1), ('train', 2), ('infer', 1)):
            _assert_measured(runs[model, 'mmris', mode, batch], batch)
    _assert_measured(runs['etris-vit-b16', 'official', 'train', 1], 1)
    _assert_measured(runs['etris-vit-b16', 'official', 'infer', 1], 1)
    oom = runs['etris-vit-b16', 'official', 'train', 2]
    assert oom['status'] == 'oom' and 'ms_per_step' not in oom
    assert 'OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00' \
        in oom['error']
    for mode, batch in (('train', 1), ('train', 2), ('infer', 1)):
        failed = runs['detris-b', 'official', mode, batch]
        assert failed['status'] == 'failed'
        assert failed['error'].startswith(
            'building the model failed: ImportError: '
            f'{clones / "DETRIS"}: fake official code cannot be imported')
    # The official recipe: fp16 autocast + cuDNN off in training, bf16 in
    # inference; the model was built once for its three runs and freed.
    assert len(nets) == 1
    gc.collect()
    assert nets[0]() is None
    seen = set(seen)
    assert (True, torch.float16, False, 1) in seen
    assert (True, torch.bfloat16, False, 1) in seen
    assert all(not enabled for _, _, enabled, _ in seen)
    # Ratios from the measured numbers; rows = (model, mode, batch).
    comps = {
        (c['model'], c['mode'], c['batch']): c
        for c in report['comparisons']
    }
    assert len(comps) == len(table) == 6
    for key, comp in comps.items():
        ours, theirs = runs[key[0], 'mmris',
                            *key[1:]], runs[key[0], 'official', *key[1:]]
        if theirs['status'] == 'ok':
            assert comp['speedup'] == pytest.approx(theirs['ms_per_step'] /
                                                    ours['ms_per_step'])
            assert comp['speedup'] == pytest.approx(ours['img_per_s'] /
                                                    theirs['img_per_s'])
        else:
            assert comp['speedup'] is None
    row = table[1].split(' | ')
    ours = runs['etris-vit-b16', 'mmris', 'train', 1]
    theirs = runs['etris-vit-b16', 'official', 'train', 1]
    assert row[1:7] == [
        'train b1', f'{ours["img_per_s"]:.1f}', f'{theirs["img_per_s"]:.1f}',
        f'{ours["ms_per_step"]:.2f}', f'{theirs["ms_per_step"]:.2f}',
        f'{comps["etris-vit-b16", "train", 1]["speedup"]:.2f}x'
    ]
    assert '| OOM |' in table[2] and '| failed |' in table[3]


class _ClockedSide:
    """A model side whose every step advances the suite's (fake) clock by a
    minute and counts 2 TFLOP per step."""
    cudnn = (True, False)

    def __init__(self, clock):
        self.clock = clock

    def prepare(self, mode, batch):

        def step():
            self.clock[0] += 60.0

        return step, lambda: 2 * 10**12

    def reset(self):
        pass


def test_time_budget_skips_the_remaining_runs(tmp_path, monkeypatch):
    suite = _suite()
    clock, built = [0.0], []

    def build(spec, cfg_options, device):
        built.append(spec.config)
        return _ClockedSide(clock)

    monkeypatch.setattr(suite, 'mmris_side', build)
    from mmris.benchmark.suite import runs
    monkeypatch.setattr(runs, 'time',
                        types.SimpleNamespace(perf_counter=lambda: clock[0]))
    out = tmp_path / 'out'
    assert suite.main([
        *QUICK, '--models', 'detris-l', 'detris-b', '--time-budget', '100',
        '--peak-tflops', '4', '--out-dir',
        str(out)
    ]) == 0
    report, table = _read(out)
    # 0 s: infer (-> 60 s); 60 s: train b16 (-> 120 s); then over budget.
    assert [(r['model'], r['mode'], r['batch'], r['status'])
            for r in report['runs']] == [
                ('detris-l', 'infer', 32, 'ok'),
                ('detris-l', 'train', 16, 'ok'),
                ('detris-l', 'train', 32, 'skipped'),
                ('detris-b', 'infer', 32, 'skipped'),
                ('detris-b', 'train', 16, 'skipped'),
                ('detris-b', 'train', 32, 'skipped'),
            ]
    assert built == ['configs/detris/detris-l_refcoco.py']
    for run in report['runs'][:2]:
        assert run['tflop_per_step'] == 2.0
        assert run['tflops'] == pytest.approx(2.0 /
                                              (run['ms_per_step'] / 1000))
        assert run['peak_fraction'] == pytest.approx(run['tflops'] / 4)
    assert all(r['error'] == 'time budget of 100 s spent before the run'
               for r in report['runs'][2:])
    assert len(table) == 6 and '| skipped |' in table[2]
    assert report['settings']['official_clones'] == {}


def test_arguments(tmp_path, capsys):
    suite = _suite()
    defaults = suite.parse_args([])
    assert [name for name, _ in defaults.models
            ] == ['etris-vit-b16', 'detris-b', 'detris-l']
    assert [spec.config for _, spec in defaults.models] == [
        'configs/etris/etris_vit-b16_refcoco.py',
        'configs/detris/detris-b_refcoco.py',
        'configs/detris/detris-l_refcoco.py'
    ]
    assert all(
        osp.isfile(osp.join(ROOT, s.config))
        for s in suite.MODEL_SPECS.values())
    assert (defaults.train_batches, defaults.infer_batches, defaults.warmup,
            defaults.iters) == ([16, 32], [32], 3, 10)
    with pytest.raises(SystemExit):
        suite.parse_args(['--models', 'detris-xl'])
    assert "unknown model 'detris-xl'; choose from" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        suite.parse_args(['--official-root', str(tmp_path / 'none')])
    assert f"--official-root '{tmp_path / 'none'}' is not a folder" in \
        capsys.readouterr().err
