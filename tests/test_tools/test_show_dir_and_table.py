# Copyright (c) mmris contributors. All rights reserved.
"""tools/test.py --show-dir and tools/analysis_tools/benchmark_table.py on
the synthetic REFER data (CPU, untrained tiny model)."""
import glob
import json
import os.path as osp
import re
import subprocess
import sys

import cv2
import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'quickstart', 'etris-tiny_synthetic.py')


def _run(args):
    proc = subprocess.run(
        [sys.executable] + args,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _options(root):
    return [
        '--cfg-options', f'test_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False'
    ]


@pytest.mark.slow
def test_show_dir(synthetic_root, tmp_path):
    show = str(tmp_path / 'show')
    proc = _run([
        osp.join(ROOT, 'tools', 'test.py'), CONFIG, 'none', '--work-dir',
        str(tmp_path / 'work'), '--show-dir', show, '--out',
        str(tmp_path / 'raw.json')
    ] + _options(synthetic_root))
    out = proc.stdout + proc.stderr
    found = re.search(r'RIS results on refcoco val over (\d+) sentences', out)
    assert found, out[-2000:]
    num = int(found.group(1))
    # --out: one raw record per sentence, consistent with the printed table
    raw = json.load(open(tmp_path / 'raw.json'))
    records = raw['sentences']
    assert len(records) == num
    assert {(r['dataset'], r['split'])
            for r in records} == {('refcoco', 'val')}
    assert len({(r['ref_id'], r['sent_id']) for r in records}) == num
    for r in records:
        assert 0 <= r['inter'] <= r['union']
        assert r['iou'] == pytest.approx(r['inter'] / (r['union'] + 1e-6))
        assert r['text'] and r['img_path'].endswith('.jpg')
    miou = 100 * sum(r['iou'] for r in records) / num
    assert raw['metrics']['mIoU'] == pytest.approx(miou)
    files = sorted(
        glob.glob(osp.join(show, 'vis_data', 'vis_image', 'test_*.png')))
    assert len(files) == num  # one picture per sentence
    name = osp.basename(files[0])
    assert '_ref' in name and '_sent' in name
    stem = name[len('test_'):].split('_ref')[0]
    src = cv2.imread(
        osp.join(synthetic_root, 'images', 'train2014', stem + '.jpg'))
    drawn = cv2.imread(files[0])
    h, w = src.shape[:2]
    # GT | separator | prediction, scaled up to a 320 px short side, the
    # sentence on a caption strip below (not over the image)
    scale = max(1.0, 320 / min(h, w))
    big_h, big_w = int(round(h * scale)), int(round(w * scale))
    assert drawn.shape[1] == 2 * big_w + 2 and drawn.shape[0] > big_h
    strip = drawn[big_h:]
    assert (strip == 32).mean() > 0.5 and (strip > 200).any()


@pytest.mark.slow
def test_benchmark_table(synthetic_root, tmp_path):
    out_json = str(tmp_path / 'table.json')
    proc = _run([
        osp.join(ROOT, 'tools', 'analysis_tools',
                 'benchmark_table.py'), CONFIG, 'none', '--data-root',
        synthetic_root, '--out', out_json, '--batch-size', '16', '--print-json'
    ])
    lines = proc.stdout.splitlines()
    header = [line for line in lines if line.startswith('| split')]
    assert header == [
        '| split | sentences | mIoU | oIoU | Pr@50 | Pr@60 | '
        'Pr@70 | Pr@80 | Pr@90 |'
    ]
    rows = [
        line.split('|')[1].strip() for line in lines
        if line.startswith('| ') and not line.startswith('| split')
    ]
    assert rows == ['val', 'testA', 'testB']
    assert 'elapsed' in proc.stderr  # progress bars
    report = json.load(open(out_json))
    assert report['dataset'] == 'refcoco' and report['split_by'] == 'unc'
    assert report['protocol'] == 'original image size'
    assert '; protocol: original image size)' in proc.stdout
    for split in ('val', 'testA', 'testB'):
        m = report['results'][split]
        assert m['sentences'] > 0
        for key in ('mIoU', 'oIoU', 'Pr@50', 'Pr@90'):
            assert 0 <= m[key] <= 100
    # --print-json: the same JSON after the table
    assert json.loads(proc.stdout[proc.stdout.index('{'):]) == report
