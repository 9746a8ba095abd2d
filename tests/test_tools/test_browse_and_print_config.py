# Copyright (c) mmris contributors. All rights reserved.
"""tools/analysis_tools/browse_dataset.py and tools/misc/print_config.py."""
import glob
import os.path as osp
import runpy
import sys

import cv2
import numpy as np

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'quickstart', 'etris-tiny_synthetic.py')
BROWSE = osp.join(ROOT, 'tools', 'analysis_tools', 'browse_dataset.py')
PRINT_CONFIG = osp.join(ROOT, 'tools', 'misc', 'print_config.py')


def _run(script, args, monkeypatch):
    monkeypatch.setattr(sys, 'argv', [script] + [str(a) for a in args])
    runpy.run_path(script, run_name='__main__')


def test_browse_dataset_draws_image_mask_and_sentence(synthetic_root, tmp_path,
                                                      monkeypatch, capsys):
    from mmris.datasets import RefCOCODataset
    from mmris.datasets.transforms import LoadRefImage, LoadRefMask
    out = tmp_path / 'browse'
    _run(BROWSE, [
        CONFIG, '--phase', 'val', '--num', 3, '--output-dir', out,
        '--data-root', synthetic_root
    ], monkeypatch)
    assert '3 of' in capsys.readouterr().out
    files = sorted(glob.glob(str(out / '*.png')))
    assert len(files) == 3
    # the first picture against an independent load of sample 0
    ds = RefCOCODataset(
        data_root=synthetic_root,
        split='val',
        mode='test',
        pipeline=[LoadRefImage(), LoadRefMask()])
    sample = ds[0]
    name = osp.basename(files[0])
    assert name.startswith('00000_') and f'_ref{sample["ref_id"]}_' in name
    # independent read of the image file (BGR, as the PNG is read back)
    src = cv2.imread(sample['img_path'], cv2.IMREAD_IGNORE_ORIENTATION
                     | cv2.IMREAD_COLOR)
    assert np.array_equal(src[..., ::-1], sample['img'])
    h, w = src.shape[:2]
    scale = max(1.0, 320 / min(h, w))
    big_h, big_w = int(round(h * scale)), int(round(w * scale))
    drawn = cv2.imread(files[0])
    assert drawn.shape[1] == big_w and drawn.shape[0] > big_h  # caption strip
    mask = cv2.resize(
        sample['gt_seg_map'], (big_w, big_h),
        interpolation=cv2.INTER_NEAREST).astype(bool)
    big = cv2.resize(src, (big_w, big_h), interpolation=cv2.INTER_LINEAR)
    kernel = np.ones((9, 9), np.uint8)
    far = cv2.dilate(mask.astype(np.uint8), kernel) == 0
    near_in = cv2.erode(mask.astype(np.uint8), kernel) > 0
    region = drawn[:big_h]
    # outside the mask the image is untouched, inside it is tinted
    assert np.abs(region[far].astype(int) - big[far]).max() <= 1
    assert near_in.sum() > 0
    assert np.abs(region[near_in].astype(int) - big[near_in]).max() > 5


def test_print_config(tmp_path, monkeypatch, capsys):
    save = tmp_path / 'full.py'
    _run(PRINT_CONFIG, [
        CONFIG, '--cfg-options', 'train_dataloader.batch_size=3',
        '--save-path', save
    ], monkeypatch)
    out = capsys.readouterr().out
    assert out.startswith('Config:')
    assert "type='RISEncoderDecoder'" in out  # inherited and own keys
    assert "type='RefCOCODataset'" in out
    from mmengine.config import Config
    assert Config.fromfile(str(save)).train_dataloader.batch_size == 3
