# Copyright (c) mmris contributors. All rights reserved.
"""tools/demo.py writes a tinted overlay of the input size per sentence."""
import glob
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'quickstart', 'etris-tiny_synthetic.py')


def test_demo_overlay(synthetic_root, tmp_path):
    from mmris.apis import inference_model, init_model
    from mmris.visualization import PRED_COLOR
    torch.manual_seed(0)
    model = init_model(CONFIG)
    ckpt = str(tmp_path / 'tiny.pth')
    torch.save({'state_dict': model.state_dict()}, ckpt)
    image = sorted(
        glob.glob(osp.join(synthetic_root, 'images', 'train2014',
                           '*.jpg')))[0]
    sentences = ['the red circle', 'the big square']
    # a threshold at the median probability: about half the image is mask
    prob = inference_model(model, image, sentences)[0].seg_logits.data[0]
    thr = float(prob.median())
    mask = (prob > thr).numpy()

    out = str(tmp_path / 'out' / 'overlay.png')
    # the README command, with a test threshold
    proc = subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools', 'demo.py'), image, *sentences, '--config',
        CONFIG, '--checkpoint', ckpt, '--out', out, '--threshold',
        str(thr)
    ],
                          cwd=ROOT,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    files = sorted(glob.glob(str(tmp_path / 'out' / 'overlay_*.png')))
    assert [osp.basename(f) for f in files] == [
        'overlay_0.png', 'overlay_1.png'
    ]
    src = cv2.cvtColor(cv2.imread(image), cv2.COLOR_BGR2RGB).astype(float)
    overlay = cv2.imread(files[0])
    assert overlay is not None and overlay.dtype == np.uint8
    # the input image, then the sentence on a caption strip below it
    h = src.shape[0]
    assert overlay.shape[1:] == src.shape[1:] and overlay.shape[0] > h
    overlay = cv2.cvtColor(overlay[:h], cv2.COLOR_BGR2RGB).astype(float)
    # erode to skip the contour line (which runs along the image border
    # where the mask touches it); no row is covered by text
    body = np.ones_like(mask)
    kernel = np.ones((11, 11))
    inner = cv2.erode(
        mask.astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT,
        borderValue=0) > 0
    outer = cv2.dilate(mask.astype(np.uint8), kernel) == 0
    inner &= body
    outer &= body
    assert inner.sum() > 50 and outer.sum() > 50
    expected = (src[inner] + np.array(PRED_COLOR)) / 2  # alpha 0.5
    tinted = (np.abs(overlay[inner] - expected).max(1) <= 1).mean()
    kept = (np.abs(overlay[outer] - src[outer]).max(1) <= 1).mean()
    assert tinted > 0.99 and kept > 0.99, (tinted, kept)


def test_demo_checks_image_first_and_names_the_weights(tmp_path):
    """A missing image fails before the model is built; the demo says
    which weights run and what the quick-start model knows."""
    demo = osp.join(ROOT, 'tools', 'demo.py')
    proc = subprocess.run([
        sys.executable, demo,
        str(tmp_path / 'missing.jpg'), 'the red circle', '--config', CONFIG,
        '--checkpoint', 'none'
    ], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert 'missing.jpg' in proc.stderr
    assert '[demo] model:' not in proc.stdout  # stopped before the build
    proc = subprocess.run([
        sys.executable, demo,
        osp.join(ROOT, 'demo', 'demo.jpg'), 'the red circle', '--config',
        CONFIG, '--checkpoint', str(tmp_path / 'absent.pth')
    ], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and 'absent.pth' in proc.stderr
    out = str(tmp_path / 'o.png')
    proc = subprocess.run([
        sys.executable, demo,
        osp.join(ROOT, 'demo', 'demo.jpg'), 'the red circle', '--config',
        CONFIG, '--checkpoint', 'none', '--out', out
    ], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'random weights' in proc.stdout
    assert 'synthetic coloured shapes' in proc.stdout
    assert cv2.imread(out) is not None


def test_readme_demo_command_runs_as_written(tmp_path):
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
    from mmris.apis import init_model
    ckpt = str(tmp_path / 'epoch_4.pth')
    torch.save({'state_dict': init_model(CONFIG).state_dict()}, ckpt)
    i = argv.index('--checkpoint')
    argv[i + 1] = ckpt
    j = argv.index('--out')
    argv[j + 1] = str(tmp_path / 'overlay.png')
    proc = subprocess.run([sys.executable, 'tools/demo.py'] + argv, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    sentences = [a for a in argv[1:i - 2] if not a.startswith('--')]
    for k in range(len(sentences)):
        assert osp.isfile(tmp_path / f'overlay_{k}.png')
