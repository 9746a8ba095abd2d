# Copyright (c) mmris contributors. All rights reserved.
"""tools/dataset_converters/check_refer_root.py on damaged REFER roots."""
import importlib.util
import json
import os.path as osp
import pickle
import shutil

import cv2
import numpy as np
import pytest

import mmris  # noqa: F401
from mmris.datasets import load_refs

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PASSED = 'All checks passed'


def _tool():
    path = osp.join(REPO, 'tools', 'dataset_converters', 'check_refer_root.py')
    spec = importlib.util.spec_from_file_location('check_refer_root', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def root(synthetic_root, tmp_path):
    dst = tmp_path / 'root'
    shutil.copytree(synthetic_root, dst)
    return dst


def _run(root, capsys, *extra):
    code = _tool().main([str(root), '--datasets', 'refcoco', *extra])
    return code, capsys.readouterr().out


def test_intact_root_passes(root, capsys):
    code, out = _run(root, capsys)
    assert code == 0 and PASSED in out
    assert 'degenerate' not in out and 'differs' not in out
    # synthetic data: the counts are not the official ones, and it says so
    assert 'note: refcoco: the object counts of 4 split(s) (train, val, ' \
        'testA, testB) differ from the official release' in out
    assert out.rstrip().endswith(
        'All checks passed, but the object counts are not the official '
        'ones (see the notes above): not the official annotation files.')
    code, out = _run(root, capsys, '--strict')
    assert code == 1 and PASSED not in out


def test_images_over_the_pixel_limit_are_listed(root, capsys):
    """Read from the header: a bomb PNG is listed, never decoded."""
    from mmris.testing.images import bomb_png
    data, _ = _images(root)
    img = data['images'][0]
    path = root / 'images' / 'train2014' / img['file_name']
    pixels = img['height'] * img['width']
    code, out = _run(root, capsys, '--max-pixels', str(pixels - 1))
    assert code == 1 and PASSED not in out
    assert f'{path} is {img["width"]}x{img["height"]} pixels' in out
    path.write_bytes(bomb_png(40000, 26000))
    code, out = _run(root, capsys)
    assert code == 1 and f'{path} is 40000x26000 pixels' in out
    assert 'over the limit of 67,108,864 pixels' in out


@pytest.mark.parametrize('which,damage,expected', [
    ('refs(unc).p', lambda raw: raw[:len(raw) // 2], 'truncated'),
    ('refs(unc).p', lambda raw: b'', 'is empty'),
    ('refs(unc).p', lambda raw: b'<html><body>403</body></html>', 'HTML'),
    ('instances.json', lambda raw: raw[:len(raw) // 2], 'not valid JSON'),
])
def test_corrupt_files_are_reported(root, capsys, which, damage, expected):
    path = root / 'refcoco' / which
    path.write_bytes(damage(path.read_bytes()))
    code, out = _run(root, capsys)
    assert code == 1 and PASSED not in out
    assert f'ERROR: {path}' in out and expected in out


def test_absent_split_fails_without_strict(root, capsys):
    path = root / 'refcoco' / 'refs(unc).p'
    refs = [r for r in load_refs(str(path)) if r['split'] != 'testB']
    path.write_bytes(pickle.dumps(refs, protocol=2))
    code, out = _run(root, capsys)
    assert code == 1 and PASSED not in out
    assert 'testB' in out and 'split absent' in out


def _images(root):
    with open(root / 'refcoco' / 'instances.json') as f:
        data = json.load(f)
    return data, [i for i in data['images'] if i['height'] != i['width']]


def test_image_sizes_are_checked(root, capsys):
    from PIL import Image
    _, images = _images(root)
    resized, rotated = images[0], images[1]
    img_dir = root / 'images' / 'train2014'
    path = img_dir / resized['file_name']
    h, w = resized['height'], resized['width']
    cv2.imwrite(str(path), cv2.resize(cv2.imread(str(path)), (w, h + 6)))
    # EXIF Orientation=6 on the stored pixels: the annotation size still
    # holds (stored pixel order), it is not reported
    rot = img_dir / rotated['file_name']
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.asarray(Image.open(rot))).save(rot, exif=exif.tobytes())
    assert cv2.imread(str(rot)).shape[:2] == (rotated['width'],
                                              rotated['height'])
    code, out = _run(root, capsys)
    assert code == 1 and PASSED not in out
    assert '1 image(s) whose size differs from instances.json' in out
    assert f'{path}: {h + 6}x{w} (height x width)' in out
    assert f'says {h}x{w}' in out and str(rot) not in out


def test_degenerate_annotations_are_listed(root, capsys):
    data, _ = _images(root)
    refs = load_refs(str(root / 'refcoco' / 'refs(unc).p'))
    ann_of = {a['id']: a for a in data['annotations']}
    victims = refs[:3]
    for ref, seg in zip(victims,
                        ([], [[1, 2, 3, 4]], [[2, 2, 9, 2, 9, 9, 2]])):
        ann_of[ref['ann_id']]['segmentation'] = seg
    with open(root / 'refcoco' / 'instances.json', 'w') as f:
        json.dump(data, f)
    code, out = _run(root, capsys)
    assert code == 0 and PASSED in out  # listed, not fatal
    assert ('3 target annotation(s) that are degenerate (2 with an empty '
            'mask') in out
    problems = ('empty segmentation list', 'polygon 0 has 4 coordinates',
                'polygon 0 has an odd number of coordinates (7)')
    for ref, problem in zip(victims, problems):
        assert (f"{ref['split']}: ref_id {ref['ref_id']} ann_id "
                f"{ref['ann_id']}: {problem}") in out
    code, out = _run(root, capsys, '--strict')
    assert code == 1


def test_partial_root_checks_what_is_there(root, capsys):
    """Without --datasets the datasets present are checked, the others
    named as not present; a root with none fails."""
    shutil.rmtree(root / 'refcoco+')
    shutil.rmtree(root / 'refcocog')
    code = _tool().main([str(root)])
    out = capsys.readouterr().out
    assert code == 0 and PASSED in out, out
    assert 'Datasets found in' in out and ': refcoco (not present: ' \
        'refcoco+, refcocog_umd, refcocog_google, grefcoco)' in out
    shutil.rmtree(root / 'refcoco')
    code = _tool().main([str(root)])
    out = capsys.readouterr().out
    assert code == 1 and 'no REFER or gRefCOCO annotation file' in out


def test_inconsistent_rle_is_listed(root, capsys):
    data, _ = _images(root)
    refs = load_refs(str(root / 'refcoco' / 'refs(unc).p'))
    ann_of = {a['id']: a for a in data['annotations']}
    img_of = {i['id']: i for i in data['images']}
    ref = refs[0]
    img = img_of[ann_of[ref['ann_id']]['image_id']]
    pixels = img['height'] * img['width']
    ann_of[ref['ann_id']]['segmentation'] = dict(
        size=[img['height'], img['width']], counts=[3, pixels - 10])
    with open(root / 'refcoco' / 'instances.json', 'w') as f:
        json.dump(data, f)
    code, out = _run(root, capsys)
    assert code == 1 and PASSED not in out
    assert 'malformed annotation(s)' in out
    assert (f"{ref['split']}: ref_id {ref['ref_id']} ann_id "
            f"{ref['ann_id']}: RLE counts sum to {pixels - 7}, not height x "
            f"width = {pixels}") in out


def test_long_sentences_are_counted(root, capsys):
    """Sentences of k times "the" are k CLIP tokens + SOT + EOT: with
    word_len 17, k = 16, 20, 40 are longer (by 1, 5 and 25 ids)."""
    path = root / 'refcoco' / 'refs(unc).p'
    refs = load_refs(str(path))
    lengths = iter([10, 15, 16, 20, 40])
    n_val = 0
    for ref in refs:
        if ref['split'] != 'val':
            continue
        for sent in ref['sentences']:
            words = ' '.join(['the'] * next(lengths, 3))
            sent['sent'], sent['raw'] = words, words.upper()
            n_val += 1
    with open(path, 'wb') as f:
        pickle.dump(refs, f, protocol=2)
    code, out = _run(root, capsys, '--word-len', '17')
    assert code == 0 and PASSED in out
    assert "sentences longer than word_len 17" in out
    row = next(line.split() for line in out.splitlines()
               if line.strip().startswith('val ') and '%' in line)
    share = f'{100 * 3 / n_val:.1f}%'
    assert row == ['val', str(n_val), '3', share, '42', '10.3']
    config = osp.join(REPO, 'configs', 'detris', 'detris-b_refcocog_umd.py')
    code, out = _run(root, capsys, '--config', config)
    assert f'word_len 22 (from {config})' in out
    row = next(line.split() for line in out.splitlines()
               if line.strip().startswith('val ') and '%' in line)
    assert row[:3] == ['val', str(n_val), '1'] and row[4:] == ['42', '20.0']
