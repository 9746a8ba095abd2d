# Copyright (c) mmris contributors. All rights reserved.
"""tools/demo.py: one overlay per sentence, drawn as --show-dir draws it."""
import glob
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from test_reliability._helpers import run_tool_inprocess

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'quickstart', 'etris-tiny_synthetic.py')
DEMO = osp.join(ROOT, 'tools', 'demo.py')
DEMO_JPG = osp.join(ROOT, 'demo', 'demo.jpg')


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """A seeded tiny model and its checkpoint file."""
    from mmris.apis import init_model
    torch.manual_seed(0)
    model = init_model(CONFIG)
    ckpt = str(tmp_path_factory.mktemp('demo') / 'tiny.pth')
    torch.save({'state_dict': model.state_dict()}, ckpt)
    return model, ckpt


def test_demo_overlay(synthetic_root, tiny, tmp_path, monkeypatch, capsys):
    from mmris.apis import inference_model
    from mmris.visualization import render_overlay
    model, ckpt = tiny
    image = sorted(
        glob.glob(osp.join(synthetic_root, 'images', 'train2014', '*.jpg')))[0]
    sentences = ['the red circle', 'the big square']
    # a threshold at the median probability: about half the image is mask
    prob = inference_model(model, image, sentences)[0].seg_logits.data[0]
    thr = float(prob.median())
    mask = (prob > thr).numpy()

    out = str(tmp_path / 'out' / 'overlay.png')
    run_tool_inprocess(DEMO, [
        image, *sentences, '--config', CONFIG, '--checkpoint', ckpt, '--out',
        out, '--threshold', thr
    ], monkeypatch)
    printed = capsys.readouterr().out
    assert f'{out[:-4]}_0.png: "the red circle" -> mask ' \
        f'{100 * mask.mean():.1f}% of the image' in printed
    files = sorted(glob.glob(str(tmp_path / 'out' / 'overlay_*.png')))
    assert [osp.basename(f)
            for f in files] == ['overlay_0.png', 'overlay_1.png']
    src = cv2.cvtColor(cv2.imread(image), cv2.COLOR_BGR2RGB)
    overlay = cv2.cvtColor(cv2.imread(files[0]), cv2.COLOR_BGR2RGB)
    # the --show-dir settings: scaled up to a 320 px shorter side, light
    # tint and outline, the sentence on a caption strip below
    expected = render_overlay(src, mask, 'the red circle')
    assert overlay.shape == expected.shape
    assert min(overlay.shape[:2]) >= 320 > min(src.shape[:2])
    same = (np.abs(overlay.astype(int) - expected).max(2) <= 1).mean()
    assert same > 0.99, same


def test_demo_checks_arguments_first_and_names_the_weights(
        tiny, tmp_path, monkeypatch, capsys):
    """A missing image, config or checkpoint fails before anything heavy
    is imported (subprocess: one line, in about a second); a checkpoint
    directory is named as one with the checkpoint it offers; the demo says
    which weights run and what the quick-start model knows."""
    _, ckpt = tiny
    work = tmp_path / 'work_dirs' / 'quickstart'
    work.mkdir(parents=True)
    for name in ('epoch_2.pth', 'epoch_10.pth', 'epoch_9.pth'):
        (work / name).write_bytes(b'')
    cases = [
        ([
            str(tmp_path / 'missing.jpg'), 'a', '--config', CONFIG,
            '--checkpoint', 'none'
        ], 'image file not found: '),
        ([
            DEMO_JPG, 'a', '--config',
            str(tmp_path / 'nope.py'), '--checkpoint', 'none'
        ], 'config file not found: '),
        ([
            DEMO_JPG, 'a', '--config', CONFIG, '--checkpoint',
            str(tmp_path / 'absent.pth')
        ], 'checkpoint file not found: '),
        ([DEMO_JPG, 'a', '--config', CONFIG, '--checkpoint',
          str(work)],
         f'checkpoint {work} is a directory, not a checkpoint file: did '
         f'you mean {work / "epoch_10.pth"}?'),
    ]
    for argv, message in cases:
        proc = subprocess.run(
            [sys.executable, DEMO] + argv,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120)
        assert proc.returncode != 0
        assert message in proc.stderr, proc.stderr[-2000:]
        assert 'Traceback' not in proc.stderr
        assert 'torch' not in proc.stderr  # stopped before the imports
    # last_checkpoint, when present, is what a work dir offers
    (work / 'last_checkpoint').write_text(str(work / 'epoch_9.pth'))
    with pytest.raises(SystemExit, match='did you mean .*epoch_9.pth'):
        run_tool_inprocess(DEMO, cases[3][0], monkeypatch)

    out = str(tmp_path / 'o.png')
    run_tool_inprocess(DEMO, [
        DEMO_JPG, 'the red circle', '--config', CONFIG, '--checkpoint', 'none',
        '--out', out
    ], monkeypatch)
    printed = capsys.readouterr().out
    assert 'random weights' in printed
    assert 'synthetic coloured shapes' in printed
    assert cv2.imread(out) is not None


def test_demo_warns_when_the_model_outputs_nan(tiny, tmp_path, monkeypatch,
                                               capsys):
    model, _ = tiny
    state = {
        k: torch.full_like(v, float('nan')) if v.is_floating_point() else v
        for k, v in model.state_dict().items()
    }
    ckpt = str(tmp_path / 'nan.pth')
    torch.save({'state_dict': state}, ckpt)
    out = str(tmp_path / 'nan.png')
    run_tool_inprocess(DEMO, [
        DEMO_JPG, 'the red circle', '--config', CONFIG, '--checkpoint', ckpt,
        '--out', out
    ], monkeypatch)
    captured = capsys.readouterr()
    assert ('[demo] WARNING: the model output NaN/inf for 100.0% of the '
            'pixels of "the red circle"') in captured.err
    assert 'max prob nan' in captured.out
    assert cv2.imread(out) is not None


def test_readme_demo_command_runs_as_written(tiny, tmp_path, monkeypatch):
    """The README's demo command, with a stand-in for the quick-start
    checkpoint (same config, random weights) and the output in tmp."""
    import re
    import shlex
    readme = open(osp.join(ROOT, 'README.md')).read()
    found = re.search(r'^python tools/demo\.py (.*?)\n(?!\s)', readme,
                      re.M | re.S)
    assert found, 'no demo command in the README'
    argv = shlex.split(found.group(1).replace('\\\n', ' '))
    assert osp.isfile(osp.join(ROOT, argv[0]))  # the shipped image
    i = argv.index('--checkpoint')
    argv[i + 1] = tiny[1]
    j = argv.index('--out')
    argv[j + 1] = str(tmp_path / 'overlay.png')
    monkeypatch.chdir(ROOT)
    run_tool_inprocess(DEMO, argv, monkeypatch)
    sentences = [a for a in argv[1:i - 2] if not a.startswith('--')]
    for k in range(len(sentences)):
        assert osp.isfile(tmp_path / f'overlay_{k}.png')
