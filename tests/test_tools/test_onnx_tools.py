# Copyright (c) mmris contributors. All rights reserved.
"""tools/deployment: pytorch2onnx.py exports, and onnx_demo.py, run with
``import torch`` made to fail, writes the same overlays as tools/demo.py
(slow: one export of 15-50 s per config on 2 cores)."""
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
IMAGE = osp.join(ROOT, 'demo', 'demo.jpg')
SENTENCES = ['the red circle', 'the big green square']

#: Runs a script with every `import torch` failing, then checks that
#: neither torch nor any mmris / OpenMMLab / open_clip module was imported.
NO_TORCH = (
    'import runpy, sys\n'
    "sys.modules['torch'] = None\n"
    'script = sys.argv[1]\n'
    'sys.argv = sys.argv[1:]\n'
    "runpy.run_path(script, run_name='__main__')\n"
    "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('mmris',\n"
    "    'mmseg', 'mmengine', 'mmcv', 'open_clip', 'torchvision'))\n"
    "assert not heavy and sys.modules['torch'] is None, heavy\n"
    "print('[no-torch check] passed')\n")


def run(args, **kwargs):
    out = subprocess.run(
        args, capture_output=True, text=True, cwd=ROOT, **kwargs)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def split_threshold(prob: np.ndarray) -> float:
    """A threshold near the median in the widest gap between probability
    values there, so that float noise of ~1e-6 cannot flip a pixel."""
    values = np.unique(prob[(prob > np.quantile(prob, 0.3))
                            & (prob < np.quantile(prob, 0.7))])
    gaps = np.diff(values)
    i = int(gaps.argmax())
    assert gaps[i] > 1e-5, gaps[i]  # the exported model is within ~1e-6
    return float(values[i] + gaps[i] / 2)


@pytest.mark.slow
@pytest.mark.parametrize('name',
                         ['etris-tiny_synthetic', 'etris-tiny_grefcoco'])
def test_onnx_demo_writes_demo_overlays_without_torch(name, tmp_path):
    from mmris.apis import inference_model, init_model
    config = osp.join(ROOT, 'configs', 'quickstart', f'{name}.py')
    torch.manual_seed(0)
    model = init_model(config)
    ckpt = str(tmp_path / 'tiny.pth')
    torch.save({'state_dict': model.state_dict()}, ckpt)
    prob = inference_model(model, IMAGE, SENTENCES[0]).seg_logits.data[0]
    # an all-zero map is a no-target answer: any threshold will do
    thr = split_threshold(prob.numpy()) if prob.max() > 0 else 0.5

    onnx_file = str(tmp_path / 'export' / 'model.onnx')
    log = run([
        sys.executable, 'tools/deployment/pytorch2onnx.py', config, ckpt,
        '--out', onnx_file
    ])
    assert 'model.onnx on a random batch of 2: mask_prob' in log

    common = [
        IMAGE, *SENTENCES, '--threshold',
        repr(thr), '--save-prob', '--alpha', '0.5'
    ]
    demo_help = run([sys.executable, 'tools/demo.py', '--help'])
    # tools/demo.py without --min-size (before the shared overlay renderer)
    # draws the image at its own size: min size 1 is the same picture
    sizes = [] if '--min-size' in demo_help else ['--min-size', '1']
    run([
        sys.executable, 'tools/demo.py', *common, '--config', config,
        '--checkpoint', ckpt, '--out',
        str(tmp_path / 'torch' / 'o.png')
    ])
    log = run([
        sys.executable, '-c', NO_TORCH, 'tools/deployment/onnx_demo.py',
        *common, *sizes, '--model', onnx_file, '--out',
        str(tmp_path / 'onnx' / 'o.png')
    ])
    assert '[no-torch check] passed' in log
    for i in range(len(SENTENCES)):
        want = cv2.imread(str(tmp_path / 'torch' / f'o_{i}.png'))
        got = cv2.imread(str(tmp_path / 'onnx' / f'o_{i}.png'))
        assert want is not None and got is not None
        np.testing.assert_array_equal(got, want)
        p_want = cv2.imread(str(tmp_path / 'torch' / f'o_{i}_prob.png'), 0)
        p_got = cv2.imread(str(tmp_path / 'onnx' / f'o_{i}_prob.png'), 0)
        assert p_got.shape == cv2.imread(IMAGE).shape[:2]
        assert np.abs(p_got.astype(int) - p_want).max() <= 1
    # a real mask (about half the image), or an empty one for "no target"
    area = (cv2.imread(str(tmp_path / 'onnx' / 'o_0_prob.png'), 0) / 255.
            > thr).mean()
    first = next(line for line in log.splitlines()
                 if f'"{SENTENCES[0]}" ->' in line)
    if 'no target' in first:
        assert area == 0
    else:
        assert 0.2 < area < 0.8


def test_onnx_demo_names_a_missing_model(tmp_path):
    out = subprocess.run([
        sys.executable, '-c', NO_TORCH, 'tools/deployment/onnx_demo.py', IMAGE,
        'a cat', '--model',
        str(tmp_path / 'missing.onnx')
    ],
                         capture_output=True,
                         text=True,
                         cwd=ROOT)
    assert out.returncode != 0
    assert 'ONNX model not found' in out.stderr and 'missing.onnx' in \
        out.stderr


def _metrics(line: str) -> dict:
    """``mIoU: 2.99  oIoU: 4.38 ...`` of onnx_eval.py's last line."""
    pairs = line.split('[onnx_eval]')[-1].split()
    return {k.rstrip(':'): float(v) for k, v in zip(pairs[::2], pairs[1::2])}


@pytest.mark.slow
def test_onnx_eval_equals_tools_test_and_int8_runs(synthetic_root, tmp_path):
    """onnx_eval.py of the fp32 export gives tools/test.py's metrics; the
    int8 file of pytorch2onnx.py --int8 is quantized and evaluates."""
    import glob
    import json

    import onnx

    from mmris.apis import init_model
    config = osp.join(ROOT, 'configs', 'quickstart', 'etris-tiny_synthetic.py')
    torch.manual_seed(0)
    ckpt = str(tmp_path / 'tiny.pth')
    torch.save({'state_dict': init_model(config).state_dict()}, ckpt)
    onnx_file = str(tmp_path / 'export' / 'model.onnx')
    log = run([
        sys.executable, 'tools/deployment/pytorch2onnx.py', config, ckpt,
        '--out', onnx_file, '--int8'
    ])
    assert 'model_int8.onnx on a random batch of 2: mask_prob' in log
    int8_file = str(tmp_path / 'export' / 'model_int8.onnx')
    ops = {n.op_type for n in onnx.load(int8_file).graph.node}
    assert {'DynamicQuantizeLinear', 'MatMulInteger'} <= ops, ops
    options = [
        '--cfg-options', f'test_dataloader.dataset.data_root={synthetic_root}',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False'
    ]
    run([
        sys.executable, 'tools/test.py', config, ckpt, '--work-dir',
        str(tmp_path / 'test')
    ] + options)
    want = json.load(
        open(glob.glob(str(tmp_path / 'test' / '*' / '*.json'))[0]))
    got = {}
    for name, path in (('fp32', onnx_file), ('int8', int8_file)):
        out = run(
            [sys.executable, 'tools/deployment/onnx_eval.py', config, path] +
            options)
        got[name] = _metrics(out.strip().splitlines()[-1])
    for key in ('mIoU', 'oIoU', 'Pr@50', 'Pr@90'):
        assert abs(got['fp32'][key] - want[key]) <= 0.011, key
        assert 0 <= got['int8'][key] <= 100
