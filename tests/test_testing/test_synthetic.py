# Copyright (c) mmris contributors. All rights reserved.
import filecmp
import importlib.util
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest

import mmris  # noqa: F401
from mmris.datasets import load_instances, load_refs
from mmris.datasets.transforms import decode_segmentation
from mmris.testing import make_synthetic_refer
from mmris.testing.synthetic import COLOURS, DEFAULT_SPLITS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _same_tree(a, b):
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.diff_files or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(
        a, b, cmp.common_files, shallow=False)
    if mismatch or errors:
        return False
    return all(
        _same_tree(osp.join(a, d), osp.join(b, d)) for d in cmp.common_dirs)


def test_deterministic(tmp_path):
    s1 = make_synthetic_refer(str(tmp_path / 'a'), seed=3, num_images=6)
    s2 = make_synthetic_refer(str(tmp_path / 'b'), seed=3, num_images=6)
    s3 = make_synthetic_refer(str(tmp_path / 'c'), seed=4, num_images=6)
    assert _same_tree(str(tmp_path / 'a'), str(tmp_path / 'b'))
    assert not _same_tree(str(tmp_path / 'a'), str(tmp_path / 'c'))
    assert s1['num_images'] == 6 == sum(v['images']
                                        for v in s1['splits'].values())
    assert s1['splits'] == s2['splits']
    assert s3['num_refs'] > 0


@pytest.mark.parametrize('split_by', ['unc', 'umd', 'google'])
def test_split_names_and_counts(tmp_path, split_by):
    s = make_synthetic_refer(
        str(tmp_path), dataset='refcocog', split_by=split_by, small=True)
    assert set(s['splits']) == set(DEFAULT_SPLITS[split_by])
    assert osp.isfile(
        osp.join(str(tmp_path), 'refcocog', f'refs({split_by}).p'))
    assert s['num_images'] == 16
    s = make_synthetic_refer(
        str(tmp_path),
        dataset='refcocog',
        split_by=split_by,
        num_images={
            'train': 2,
            'val': 1
        })
    assert s['splits']['train']['images'] == 2 and s['num_images'] == 3
    with pytest.raises(ValueError):
        make_synthetic_refer(
            str(tmp_path), split_by=split_by, num_images={'bogus': 1})
    with pytest.raises(ValueError):
        make_synthetic_refer(str(tmp_path), split_by=split_by, num_images=1)


def test_default_size_summary(tmp_path):
    s = make_synthetic_refer(
        str(tmp_path), num_images=None, small=False, image_size=(40, 48))
    assert s['splits']['train']['images'] == 200
    assert s['splits']['val']['images'] == 40
    assert s['splits']['testA']['images'] == 20 == s['splits']['testB'][
        'images']


def test_format_and_learnability(synthetic_root):
    refs = load_refs(osp.join(synthetic_root, 'refcoco', 'refs(unc).p'))
    imgs, anns, cats = load_instances(
        osp.join(synthetic_root, 'refcoco', 'instances.json'))
    with open(osp.join(synthetic_root, 'refcoco', 'instances.json')) as f:
        raw = json.load(f)
    assert {'images', 'annotations', 'categories'} <= set(raw)
    assert {c['name']
            for c in cats.values()} == {'circle', 'square', 'triangle'}
    assert len({r['ref_id'] for r in refs}) == len(refs)
    sent_ids = [s['sent_id'] for r in refs for s in r['sentences']]
    assert len(set(sent_ids)) == len(sent_ids)
    by_image = {}
    hits = total = 0
    for ref in refs:
        assert {
            'ref_id', 'ann_id', 'image_id', 'split', 'sentences',
            'category_id', 'file_name', 'sent_ids'
        } <= set(ref)
        assert 2 <= len(ref['sentences']) <= 3
        ann = anns[ref['ann_id']]
        img = imgs[ref['image_id']]
        assert ann['iscrowd'] == 0 and ann['category_id'] == ref['category_id']
        assert ref['file_name'] != img['file_name']
        assert 96 <= img['height'] <= 160 and 96 <= img['width'] <= 160
        for s in ref['sentences']:
            assert s['tokens'] == s['sent'].split()
            assert s['sent'] == s['sent'].lower().strip()
            assert s['raw'].lower().rstrip('.') == s['sent']
        by_image.setdefault(ref['image_id'], []).append(ref)
        mask = decode_segmentation(ann['segmentation'], img['height'],
                                   img['width'])
        assert mask.sum() == pytest.approx(ann['area'], rel=0.02)
        # the referred colour is the colour of the pixels under the mask
        image = cv2.imread(
            osp.join(synthetic_root, 'images', 'train2014',
                     img['file_name']))[..., ::-1]
        inner = cv2.erode(mask, np.ones((3, 3), np.uint8)) > 0
        mean = image[inner].reshape(-1, 3).mean(0)
        nearest = min(
            COLOURS, key=lambda c: np.abs(np.array(COLOURS[c]) - mean).sum())
        for s in ref['sentences']:
            words = set(s['tokens'])
            if words & set(COLOURS):
                total += 1
                hits += nearest in words
    assert total > 0 and hits == total
    # sentences are unambiguous within their image, positions are right
    n_pos = 0
    for image_refs in by_image.values():
        assert 2 <= len(image_refs) <= 4
        texts = [s['sent'] for r in image_refs for s in r['sentences']]
        assert len(texts) == len(set(texts))
        centre = {}
        for r in image_refs:
            x, y, w, h = anns[r['ann_id']]['bbox']
            centre[r['ref_id']] = (x + w / 2, y + h / 2)
        for r in image_refs:
            for s in r['sentences']:
                for word, axis, pick in (('left', 0, min), ('right', 0, max),
                                         ('top', 1, min), ('bottom', 1, max)):
                    if word not in s['tokens']:
                        continue
                    n_pos += 1
                    group = [
                        o for o in image_refs if s['tokens'][1] == 'object'
                        or o['category_id'] == r['category_id']
                    ]
                    best = pick(group, key=lambda o: centre[o['ref_id']][axis])
                    assert best['ref_id'] == r['ref_id'], s['sent']
    assert n_pos > 0


def test_cli(tmp_path):
    path = osp.join(REPO, 'tools', 'dataset_converters',
                    'make_synthetic_refer.py')
    spec = importlib.util.spec_from_file_location('make_synthetic_refer', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = str(tmp_path / 'out')
    assert module.main([
        out, '--num-images', '5', '--seed', '1', '--datasets', 'refcoco',
        'refcocog_google'
    ]) == 0
    assert len(os.listdir(osp.join(out, 'images', 'train2014'))) == 5
    assert osp.isfile(osp.join(out, 'refcocog', 'refs(google).p'))
