# Copyright (c) mmris contributors. All rights reserved.
"""tools/analysis_tools/dataset_overlap.py on a root with planted
overlaps (mmris.testing.synthetic.PLANTED_OVERLAP), counted by hand."""
import importlib.util
import json
import os.path as osp

import pytest

import mmris  # noqa: F401
from mmris.testing.synthetic import make_planted_overlap_root

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

#: Worked out by hand from PLANTED_OVERLAP: (train, eval) -> (shared
#: images, shared objects, train sentences on shared objects, eval
#: sentences on shared objects, eval sentences on shared images).
#: refcoco train: images 1, 2, 3; objects 11, 12, 21, 31 (2+1+3+1 sentences)
#:   refcoco+ val = image 1 (objects 11: 1 sentence, 13: 2): 11 shared
#:   umd test = image 2, object 21 (1 sentence; 3 training sentences)
#: refcoco+ train: image 4 (41: 3 sentences, 43: 1), image 7
#:   refcoco val = image 4 (41: 2 sentences, 42: 1): object 41 shared
#:   grefcoco val = image 4 (41: 1 sentence, no-target: 1)
#: umd train: image 5 (object 52: 2 sentences), image 10
#:   refcoco testA = image 5, object 51 (2 sentences): image only
#:   grefcoco testA = image 5, objects {51, 52} (2 sentences): 52 shared
#: google train: image 6 (61: 2 sentences), image 11 (111: 1)
#:   refcoco testB = image 6, object 61 (1 sentence)
#:   umd val = image 11, object 111 (2 sentences)
#: grefcoco train: image 1 ({11, 12}: 1 sentence), image 13 (no target)
#:   refcoco+ val = image 1 (3 sentences, 1 on object 11)
EXPECTED = {
    ('refcoco/train', 'refcoco+/val'): (1, 1, 2, 1, 3),
    ('refcoco/train', 'refcocog_umd/test'): (1, 1, 3, 1, 1),
    ('refcoco+/train', 'refcoco/val'): (1, 1, 3, 2, 3),
    ('refcoco+/train', 'grefcoco/val'): (1, 1, 3, 1, 2),
    ('refcocog_umd/train', 'refcoco/testA'): (1, 0, 0, 0, 2),
    ('refcocog_umd/train', 'grefcoco/testA'): (1, 1, 2, 2, 2),
    ('refcocog_google/train', 'refcoco/testB'): (1, 1, 2, 1, 1),
    ('refcocog_google/train', 'refcocog_umd/val'): (1, 1, 1, 2, 2),
    ('grefcoco/train', 'refcoco+/val'): (1, 1, 1, 1, 3),
}
#: Evaluation splits: (images, sentences).
EVAL_SIZES = {
    'refcoco/val': (1, 3),
    'refcoco/testA': (1, 2),
    'refcoco/testB': (1, 1),
    'refcoco+/val': (1, 3),
    'refcoco+/testA': (1, 1),
    'refcoco+/testB': (1, 2),
    'refcocog_umd/val': (1, 2),
    'refcocog_umd/test': (1, 1),
    'refcocog_google/val': (1, 1),
    'grefcoco/val': (1, 2),
    'grefcoco/testA': (1, 2),
    'grefcoco/testB': (1, 1),
}
KEYS = ('shared_images', 'shared_objects', 'train_sentences_on_shared_objects',
        'eval_sentences_on_shared_objects', 'eval_sentences_on_shared_images')


def _tool():
    path = osp.join(REPO, 'tools', 'analysis_tools', 'dataset_overlap.py')
    spec = importlib.util.spec_from_file_location('dataset_overlap', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def planted(tmp_path):
    root = tmp_path / 'data'
    make_planted_overlap_root(str(root))
    return root


def test_counts_are_exact(planted, tmp_path, capsys):
    out_json, out_md = tmp_path / 'o.json', tmp_path / 'o.md'
    code = _tool().main(
        [str(planted), '--json',
         str(out_json), '--markdown',
         str(out_md)])
    out = capsys.readouterr().out
    assert code == 0
    report = json.load(open(out_json))
    assert report['datasets'] == [
        'refcoco', 'refcoco+', 'refcocog_umd', 'refcocog_google', 'grefcoco'
    ]
    assert len(report['pairs']) == 5 * 12  # every (train, eval) pair
    for row in report['pairs']:
        pair = (row['train'], row['eval'])
        got = tuple(row[k] for k in KEYS)
        assert got == EXPECTED.get(pair, (0, 0, 0, 0, 0)), pair
        assert (row['eval_images'],
                row['eval_sentences']) == EVAL_SIZES[row['eval']]
    # the table lists the 9 overlapping pairs, the rest is summed up
    table = open(out_md).read()
    rows = [
        line for line in table.splitlines()
        if line.startswith('| ') and '/' in line.split('|')[1]
    ]
    assert len(rows) == len(EXPECTED)
    assert ('| refcoco+/train | refcoco/val | 1 | 1 | 1 | 3 | 2 | 3 '
            '(100.0%) |') in table
    assert '51 other pairs share nothing' in table
    assert table.strip() in out


def test_subset_and_broken_file(planted, capsys):
    code = _tool().main(
        [str(planted), '--datasets', 'refcoco', 'refcoco+', '--all-pairs'])
    out = capsys.readouterr().out
    assert code == 0
    rows = [line for line in out.splitlines() if line.startswith('| ref')]
    assert len(rows) == 2 * 6
    (planted / 'refcocog' / 'refs(umd).p').write_bytes(b'<html>404</html>')
    code = _tool().main([str(planted)])
    out = capsys.readouterr().out
    assert code == 1 and 'ERROR refcocog_umd' in out and 'HTML' in out
    # the readable datasets are still counted
    assert '| refcoco+/train | refcoco/val |' in out
