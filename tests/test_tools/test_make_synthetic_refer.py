# Copyright (c) mmris contributors. All rights reserved.
import importlib.util
import os.path as osp
import pickle

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
_spec = importlib.util.spec_from_file_location(
    'make_synthetic_refer',
    osp.join(ROOT, 'tools', 'dataset_converters', 'make_synthetic_refer.py'))
tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tool)


def test_explicit_splits(tmp_path):
    assert tool.main([
        str(tmp_path), '--splits', 'train=3', 'val=2', 'testA=1',
        '--image-size', '40', '48'
    ]) == 0
    with open(osp.join(str(tmp_path), 'refcoco', 'refs(unc).p'), 'rb') as f:
        refs = pickle.load(f)
    images = {}
    for ref in refs:
        images.setdefault(ref['split'], set()).add(ref['image_id'])
    assert {
        k: len(v)
        for k, v in images.items()
    } == dict(
        train=3, val=2, testA=1)


@pytest.mark.parametrize('argv, message', [
    (['--splits', 'train'], 'SPLIT=N'),
    (['--splits', 'train=0'], 'SPLIT=N'),
    (['--splits', 'train=2', 'train=3'], 'twice'),
    (['--splits', 'train=2', '--num-images', '4'], 'not both'),
])
def test_bad_splits_are_named(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit):
        tool.parse_args([str(tmp_path)] + argv)
    assert message in capsys.readouterr().err


def test_unknown_split_name(tmp_path):
    with pytest.raises(ValueError, match='bogus'):
        tool.main([str(tmp_path), '--splits', 'bogus=2'])
