# Copyright (c) mmris contributors. All rights reserved.
"""The gRefCOCO configs train and evaluate through the tools (CPU).

Each paper-size gRefCOCO config trains two iterations and evaluates the
val split with GRISMetric through ``tools/train.py`` (in-process, small
inputs, randomly initialised encoders) on a tiny synthetic gRefCOCO root;
its trainable parameters are exactly those of the RefCOCO config plus the
no-target head. DETRIS-L is built and takes one training step only. The
quick-start config also goes through ``tools/test.py`` and
``benchmark_table.py``.
"""
import json
import os
import os.path as osp
import runpy
import sys

import pytest
import torch
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(ROOT, 'tools')
TRAIN = osp.join(TOOLS, 'train.py')
TEST = osp.join(TOOLS, 'test.py')
TABLE = osp.join(TOOLS, 'analysis_tools', 'benchmark_table.py')
#: NoTargetHead(512, 512, hidden 256): text_proj 512*512+512, MLP
#: (3*512+2)*256+256 and 256+1
HEAD_PARAMS = 512 * 512 + 512 + (3 * 512 + 2) * 256 + 256 + 256 + 1
# (config, trainable parameters of its RefCOCO counterpart, input size)
PAPER = [
    ('etris/etris_vit-b16_grefcoco.py', 23_829_313, 64),
    ('barleria/barleria_vit-b16_grefcoco.py', 26_706_721, 64),
    ('detris/detris-b_grefcoco.py', 25_518_129, 56),
]
GRIS_KEYS = ('gIoU', 'cIoU', 'N-acc', 'T-acc', 'Pr@0.7', 'Pr@0.8', 'Pr@0.9')


@pytest.fixture(scope='module')
def tiny_grefcoco(tmp_path_factory):
    """(data root, batch size, summary): training gives two iterations."""
    import mmris  # noqa: F401
    from mmris.testing.synthetic import make_synthetic_grefcoco
    root = str(tmp_path_factory.mktemp('tiny_grefcoco'))
    summary = make_synthetic_grefcoco(
        root, seed=0, num_images=dict(train=1, val=1, testA=1, testB=1))
    refs = summary['splits']['train']['refs']
    assert refs >= 4, summary
    return root, refs // 2, summary


def _options(data, size, save=True):
    root, batch_size, _ = data
    opts = [
        f'{k}_dataloader.{v}' for k in ('train', 'val', 'test')
        for v in (f'dataset.data_root={root}', 'num_workers=0',
                  'persistent_workers=False', f'dataset.img_size={size}')
    ]
    return ['--cfg-options'] + opts + [
        f'train_dataloader.batch_size={batch_size}',
        'val_dataloader.batch_size=16',
        'train_cfg.max_epochs=1',
        'train_cfg.val_interval=1',
        ('default_hooks.checkpoint.interval=1'
         if save else 'default_hooks.checkpoint=None'),
        'default_hooks.logger.interval=1',
        'log_processor.window_size=1',
        'env_cfg.cudnn_benchmark=False',
        # random encoders on purpose: no pretrained file in a smoke test
        'allow_random_encoders=True'
    ]


def _run_tool(path, argv, monkeypatch, capsys):
    monkeypatch.setattr(sys, 'argv', [path] + argv)
    runpy.run_path(path, run_name='__main__')
    out = capsys.readouterr()
    return out.out + out.err


def _trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _record_model(monkeypatch):
    import mmris.engine
    record = {}
    build_runner = mmris.engine.build_runner

    def recording(cfg):
        runner = build_runner(cfg)
        record['model'] = runner.model
        return runner

    monkeypatch.setattr(mmris.engine, 'build_runner', recording)
    return record


@pytest.mark.slow
@pytest.mark.parametrize(
    'config,classic,size', PAPER, ids=[c[0] for c in PAPER])
def test_paper_config_trains_and_evaluates(config, classic, size,
                                           tiny_grefcoco, tmp_path,
                                           monkeypatch, capsys):
    record = _record_model(monkeypatch)
    work = str(tmp_path / 'work')
    # no checkpoint: writing the full-size models would dominate the time
    log = _run_tool(TRAIN,
                    [osp.join(ROOT, 'configs', config), '--work-dir', work] +
                    _options(tiny_grefcoco, size, False), monkeypatch, capsys)
    assert 'Epoch(train) [1][2/2]' in log, log[-3000:]
    assert 'loss_no_target' in log and 'loss_bce' in log
    val = tiny_grefcoco[2]['splits']['val']['sentences']
    assert f'RIS results on grefcoco val over {val} sentences' in log
    for key in GRIS_KEYS:
        assert f'{key}: ' in log, key
    model = record['model']
    assert _trainable(model) == classic + HEAD_PARAMS
    assert _trainable(model.no_target_head) == HEAD_PARAMS
    cfg = Config.fromfile(osp.join(ROOT, 'configs', config))
    assert cfg.default_hooks.checkpoint.save_best == 'gIoU'


@pytest.mark.slow
def test_detris_l_builds_and_steps():
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import mmris  # noqa: F401
    from mmris.datasets.transforms.tokenizer import tokenize
    from test_models.utils import make_samples
    init_default_scope('mmseg')
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', 'detris', 'detris-l_grefcoco.py'))
    assert cfg.test_evaluator.type == 'GRISMetric'
    assert cfg.train_dataloader.dataset.type == 'GRefCOCODataset'
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    assert _trainable(model) == 26_306_097 + HEAD_PARAMS
    ids = tokenize(['the two dogs', 'the purple cat'], 20)
    samples = make_samples(ids, 56)
    samples[1].set_metainfo(dict(no_target=True))
    losses = model.loss(torch.randn(2, 3, 56, 56), samples)
    assert set(losses) == {'loss_bce', 'loss_no_target'}
    sum(losses.values()).backward()
    assert model.no_target_head.mlp[0].weight.grad is not None


@pytest.mark.slow
def test_quickstart_train_test_and_table(tiny_grefcoco, tmp_path, monkeypatch,
                                         capsys):
    config = osp.join(ROOT, 'configs', 'quickstart', 'etris-tiny_grefcoco.py')
    work = str(tmp_path / 'work')
    log = _run_tool(TRAIN,
                    [config, '--work-dir', work] + _options(tiny_grefcoco, 96),
                    monkeypatch, capsys)
    assert 'Epoch(train) [1][2/2]' in log, log[-3000:]
    ckpt = osp.join(work, 'epoch_1.pth')
    assert any(name.startswith('best_gIoU') for name in os.listdir(work))
    out_file = str(tmp_path / 'raw.json')
    log = _run_tool(
        TEST,
        [config, ckpt, '--work-dir',
         str(tmp_path / 't'), '--out', out_file] + _options(tiny_grefcoco, 96),
        monkeypatch, capsys)
    summary = tiny_grefcoco[2]
    val = summary['splits']['val']
    assert f'RIS results on grefcoco val over {val["sentences"]}' in log
    raw = json.load(open(out_file))
    assert list(raw['metrics']) == list(GRIS_KEYS)
    assert sum(r['no_target'] for r in raw['sentences']) > 0
    assert all(isinstance(r['pred_no_target'], bool) for r in raw['sentences'])
    # --out writes each sentence's gIoU contribution and the protocol
    assert raw['protocol'] == ('original image size; no-target union: '
                               'prediction (ReLA)')
    assert '[protocol: original image size; no-target union' in log
    assert sum(r['giou'] for r in raw['sentences']) / len(
        raw['sentences']) * 100 == pytest.approx(raw['metrics']['gIoU'])
    table_json = str(tmp_path / 'table.json')
    log = _run_tool(TABLE, [
        config, ckpt, '--data-root', tiny_grefcoco[0], '--no-progress',
        '--out', table_json
    ], monkeypatch, capsys)
    assert '| split | sentences | ' + ' | '.join(GRIS_KEYS) + ' |' in log
    report = json.load(open(table_json))
    assert 'protocol: original image size; no-target union' in log
    assert report['protocol'] == raw['protocol']
    assert report['dataset'] == 'grefcoco'
    assert list(report['results']) == ['val', 'testA', 'testB']
    for split, res in report['results'].items():
        assert res['sentences'] == summary['splits'][split]['sentences']
    # the val row equals tools/test.py's numbers
    for key in GRIS_KEYS:
        assert report['results']['val'][key] == pytest.approx(
            raw['metrics'][key])


def _image(tiny_grefcoco):
    folder = osp.join(tiny_grefcoco[0], 'images', 'train2014')
    return osp.join(folder, sorted(os.listdir(folder))[0])


def test_api_and_demo_say_no_target(tiny_grefcoco, tmp_path, monkeypatch,
                                    capsys):
    from mmris.apis import inference_model, init_model
    config = osp.join(ROOT, 'configs', 'quickstart', 'etris-tiny_grefcoco.py')
    image = _image(tiny_grefcoco)
    # threshold ~0: the no-target head says "no target" for everything
    always = 'model.no_target_head.threshold=1e-9'
    cfg = Config.fromfile(config)
    cfg.merge_from_dict({'model.no_target_head.threshold': 1e-9})
    model = init_model(cfg, None, device='cpu')
    results = inference_model(model, image, ['the purple star', 'all'])
    for res in results:
        assert res.metainfo['pred_no_target'] is True
        assert res.metainfo['no_target_score'] > 1e-9
        assert int(res.pred_sem_seg.data.sum()) == 0
    out = str(tmp_path / 'overlay.png')
    log = _run_tool(
        osp.join(TOOLS, 'demo.py'), [
            image, 'the purple star', '--config', config, '--checkpoint',
            'none', '--out', out, '--cfg-options', always
        ], monkeypatch, capsys)
    assert '"the purple star" -> no target (no-target probability' in log
    assert osp.isfile(out)


def test_show_dir_captions_say_no_target(monkeypatch):
    import numpy as np
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    import mmris.visualization.ris_visualizer as vis
    captions = []
    draw = vis.render_overlay  # the renderer the visualizer draws with

    def recording(image, mask, text=None, *args, **kwargs):
        captions.append(text)
        return draw(image, mask, text, *args, **kwargs)

    monkeypatch.setattr(vis, 'render_overlay', recording)
    visualizer = vis.RISLocalVisualizer(name='gris_captions')
    sample = SegDataSample()
    empty = torch.zeros(1, 8, 8, dtype=torch.uint8)
    sample.gt_sem_seg = PixelData(data=empty)
    sample.pred_sem_seg = PixelData(data=empty.clone())
    sample.set_metainfo(
        dict(text='the purple star', no_target=True, pred_no_target=True))
    visualizer.draw_sample(np.zeros((8, 8, 3), np.uint8), sample)
    assert captions == [
        'GT (no target): the purple star', 'pred (no target): the purple star'
    ]
    captions.clear()
    sample.set_metainfo(dict(no_target=False, pred_no_target=False))
    sample.gt_sem_seg = PixelData(data=torch.ones(1, 8, 8, dtype=torch.uint8))
    visualizer.draw_sample(np.zeros((8, 8, 3), np.uint8), sample)
    assert captions == [
        'GT: the purple star', 'pred (IoU 0.0): the purple star'
    ]
