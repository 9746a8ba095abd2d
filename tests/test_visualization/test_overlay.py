# Copyright (c) mmris contributors. All rights reserved.
"""mmris/visualization/overlay.py: the one overlay renderer (torch-free)."""
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
OVERLAY = osp.join(ROOT, 'mmris', 'visualization', 'overlay.py')


def _image_and_mask(h=152, w=157):
    img = np.full((h, w, 3), 100, np.uint8)
    img[:, :w // 2] = (200, 30, 30)  # a red left half
    mask = np.zeros((h, w), np.uint8)
    mask[40:110, 20:70] = 1
    return img, mask


def test_render_overlay_uses_the_show_dir_settings():
    from mmris.visualization import (DEFAULT_ALPHA, DEFAULT_MIN_SIZE,
                                     PRED_COLOR, RISLocalVisualizer,
                                     render_overlay)
    assert (DEFAULT_ALPHA, DEFAULT_MIN_SIZE) == (0.3, 320)
    img, mask = _image_and_mask()
    out = render_overlay(img, mask, 'the red circle')
    # scaled up to a 320 px shorter side (152 -> 320, 157 -> 331), the
    # caption strip below it
    assert out.shape[1] == 331 and out.shape[0] > 320 + 15
    assert (out[320:].reshape(-1, 3) == 32).mean() > 0.5  # dark strip
    # light tint: the red object stays red (R well above B)
    inner = out[100:200, 60:130].reshape(-1, 3).astype(float)
    expected = 0.7 * np.array([200., 30, 30]) + 0.3 * np.array(PRED_COLOR)
    assert np.abs(inner.mean(0) - expected).max() < 2
    assert inner[:, 0].mean() > inner[:, 2].mean() + 50
    # the --show-dir renderer draws the same prediction panel
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    ds = SegDataSample(metainfo=dict(text='the red circle'))
    ds.pred_sem_seg = PixelData(data=mask[None])
    panel = RISLocalVisualizer(name='overlay_test').draw_sample(
        img, ds, draw_gt=False)
    np.testing.assert_array_equal(
        panel, render_overlay(img, mask, 'pred: the red '
                              'circle'))
    # a large image keeps its size; no text, no strip
    big = np.zeros((400, 500, 3), np.uint8)
    assert render_overlay(big, np.zeros((400, 500))).shape == (400, 500, 3)
    with pytest.raises(ValueError, match='mask shape'):
        render_overlay(img, mask[:10])
    with pytest.raises(ValueError, match='min_size'):
        render_overlay(img, mask, min_size=0)


def test_overlay_module_runs_without_torch_and_mmris(tmp_path):
    """Loaded by file path with torch and mmris unimportable, as the ONNX
    demo loads it, it draws the same picture as the library."""
    from mmris.visualization import render_overlay
    img, mask = _image_and_mask()
    np.save(tmp_path / 'img.npy', img)
    np.save(tmp_path / 'mask.npy', mask)
    script = f'''
import importlib.util
import sys
import numpy as np
sys.modules['torch'] = None  # any import of torch fails
sys.modules['mmris'] = None
spec = importlib.util.spec_from_file_location('overlay', {OVERLAY!r})
overlay = importlib.util.module_from_spec(spec)
spec.loader.exec_module(overlay)
out = overlay.render_overlay(np.load({str(tmp_path / 'img.npy')!r}),
                             np.load({str(tmp_path / 'mask.npy')!r}),
                             'the red circle')
np.save({str(tmp_path / 'out.npy')!r}, out)
'''
    proc = subprocess.run([sys.executable, '-c', script],
                          capture_output=True,
                          text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    np.testing.assert_array_equal(
        np.load(tmp_path / 'out.npy'),
        render_overlay(img, mask, 'the red circle'))
    # nothing but numpy, cv2 and the standard library at module level
    source = open(OVERLAY).read()
    imports = [
        line for line in source.splitlines()
        if line.startswith(('import ', 'from '))
    ]
    assert imports == [
        'import textwrap', 'from typing import List, Optional, Sequence, '
        'Tuple', 'import cv2', 'import numpy as np'
    ], imports
    assert cv2.imencode('.png', np.load(tmp_path / 'out.npy'))[0]
