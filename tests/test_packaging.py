# Copyright (c) mmris contributors. All rights reserved.
"""The wheel: built from the tracked files, installed into a throwaway
folder (``pip install --no-deps --target``, so none of the source tree and
no editable install is used), it imports from that folder and builds a
model from a config shipped inside it (``mmris/.mim/configs``), as
MMSegmentation's wheels ship theirs. Slow: ~20 s."""
import os
import os.path as osp
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

CHECK = r'''
import os, sys
target = os.path.realpath(sys.argv[1])
import mmris
assert os.path.realpath(mmris.__file__).startswith(target + os.sep), \
    mmris.__file__
mim = os.path.join(os.path.dirname(mmris.__file__), '.mim')
config = os.path.join(mim, 'configs', 'quickstart', 'etris-tiny_synthetic.py')
from mmris.apis import inference_model, init_model
model = init_model(config)
import numpy as np
image = np.random.default_rng(0).integers(0, 256, (50, 70, 3), np.uint8)
result = inference_model(model, image, 'the red circle')
assert tuple(result.pred_sem_seg.data.shape) == (1, 50, 70)
assert type(model.backbone).__module__.startswith('mmris.')
src = sys.modules[type(model.backbone).__module__].__file__
assert os.path.realpath(src).startswith(target + os.sep), src
for path in ('tools/train.py', 'tools/test.py', 'model-index.yml',
             'tools/deployment/pytorch2onnx.py',
             'configs/etris/metafile.yaml'):
    assert os.path.isfile(os.path.join(mim, path)), path
print('wheel ok', mmris.__version__, config)
'''


def tracked_files():
    out = subprocess.run(
        ['git', 'ls-files', '--cached', '--others', '--exclude-standard'],
        cwd=ROOT,
        capture_output=True,
        text=True)
    if out.returncode != 0:
        pytest.skip('not a git checkout: ' + out.stderr.strip())
    return [
        f for f in out.stdout.splitlines() if osp.isfile(osp.join(ROOT, f))
    ]


@pytest.mark.slow
def test_wheel_ships_configs_and_tools_and_runs_without_the_source(tmp_path):
    src = tmp_path / 'src'
    for rel in tracked_files():
        os.makedirs(src / osp.dirname(rel), exist_ok=True)
        shutil.copy2(osp.join(ROOT, rel), src / rel)
    subprocess.run([
        sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps',
        '--no-build-isolation', '-w',
        str(tmp_path / 'dist'),
        str(src)
    ],
                   check=True,
                   capture_output=True)
    wheels = os.listdir(tmp_path / 'dist')
    assert len(wheels) == 1 and wheels[0].startswith('mmris-')
    wheel = str(tmp_path / 'dist' / wheels[0])
    names = zipfile.ZipFile(wheel).namelist()
    configs = sorted(n for n in names if n.startswith('mmris/.mim/configs/'))
    want = sorted('mmris/.mim/' + f for f in tracked_files()
                  if f.startswith('configs/'))
    assert configs == want
    assert 'mmris/.mim/tools/train.py' in names
    assert 'mmris/.mim/model-index.yml' in names
    assert any(n.endswith('licenses/LICENSE') for n in names)
    assert not any(
        n.startswith(('tests/', 'configs/', 'tools/')) for n in names)

    target = tmp_path / 'site'
    subprocess.run([
        sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--target',
        str(target), wheel
    ],
                   check=True,
                   capture_output=True)
    env = dict(os.environ, PYTHONPATH=str(target), CUDA_VISIBLE_DEVICES='')
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    out = subprocess.run(
        [sys.executable, '-c', CHECK, str(target)],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True)
    assert out.returncode == 0, out.stderr
    assert 'wheel ok' in out.stdout
