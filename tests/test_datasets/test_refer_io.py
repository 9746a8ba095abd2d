# Copyright (c) mmris contributors. All rights reserved.
"""Safe REFER pickle / COCO json readers (mmris.datasets.refer_io)."""
import json
import os.path as osp
import pickle
import warnings

import pytest

import mmris  # noqa: F401
from mmris.datasets import load_instances, load_refs
from mmris.datasets.refer_io import (AnnotationFileError, RefusedGlobalError,
                                     decode_byte_strings, load_json,
                                     load_refer_pickle)
from mmris.testing.synthetic import python2_pickle_dumps
from test_reliability._malicious_refer import REFUSED, malicious_refs

TEXTS = ['caf\xe9 on the left', '\u5de6\u8fb9\u7684\u7537\u4eba',
         'plain ascii man']


def _py2_refs(unicode_sentences=False):
    """REFER-like refs as Python 2 held them: str = UTF-8 byte strings,
    optionally one sentence as a ``unicode`` object."""
    refs = []
    for k, text in enumerate(TEXTS):
        sent = text if unicode_sentences and k == 0 else text.encode('utf-8')
        refs.append({
            b'ref_id': k,
            b'ann_id': 10 + k,
            b'image_id': 100,
            b'split': b'val',
            b'category_id': 1,
            b'sent_ids': [20 + k],
            b'sentences': [{
                b'tokens': [w.encode('utf-8') for w in text.split()],
                b'raw': text.encode('utf-8'),
                b'sent': sent,
                b'sent_id': 20 + k
            }],
        })
    return refs


@pytest.mark.parametrize('protocol', [0, 2])
@pytest.mark.parametrize('unicode_sentences', [False, True])
def test_python2_pickles_decode_utf8(tmp_path, protocol, unicode_sentences):
    raw = python2_pickle_dumps(_py2_refs(unicode_sentences), protocol)
    # genuine Python 2 opcodes: STRING (protocol 0) / SHORT_BINSTRING (2)
    assert (b"S'sent'" if protocol == 0 else b'U\x04sent') in raw
    path = tmp_path / 'refs(unc).p'
    path.write_bytes(raw)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # valid UTF-8: no warning
        refs = load_refs(str(path))
    assert [r['sentences'][0]['sent'] for r in refs] == TEXTS
    assert refs[0]['sentences'][0]['tokens'] == TEXTS[0].split()
    assert refs[1]['split'] == 'val' and refs[1]['ref_id'] == 1
    assert refs[2]['sent_ids'] == [22]


@pytest.mark.parametrize('protocol', [0, 2])
def test_invalid_utf8_falls_back_to_latin1_with_warning(tmp_path, protocol):
    refs = _py2_refs()
    refs[2][b'sentences'][0][b'sent'] = b'the gar\xe7on'  # latin-1 bytes
    path = tmp_path / 'refs(unc).p'
    path.write_bytes(python2_pickle_dumps(refs, protocol))
    with pytest.warns(UserWarning) as record:
        loaded = load_refs(str(path))
    msg = '\n'.join(str(w.message) for w in record)
    assert 'ref_id=2' in msg and 'sent_id=22' in msg and "'sent'" in msg
    assert str(path) in msg and '1 byte string' in msg
    assert loaded[2]['sentences'][0]['sent'] == 'the gar\xe7on'
    # the other (valid UTF-8) strings are still decoded as UTF-8
    assert loaded[0]['sentences'][0]['sent'] == TEXTS[0]
    assert loaded[1]['sentences'][0]['raw'] == TEXTS[1]


def test_decode_byte_strings_keys_and_containers():
    seen = []
    out = decode_byte_strings(
        {b'id': 3, b'a': (b'x', [b'\xff']), b'b': {b'\xc3\xa9'}},
        lambda where, raw: seen.append((where, raw)))
    assert out == {'id': 3, 'a': ('x', ['\xff']), 'b': {'\xe9'}}
    assert seen == [(('id=3', "key 'a'"), b'\xff')]


@pytest.mark.parametrize('kind', list(REFUSED))
def test_malicious_refs_are_refused(tmp_path, kind):
    marker = str(tmp_path / 'pwned')
    path = tmp_path / 'refs(unc).p'
    raw = malicious_refs(kind, marker)
    path.write_bytes(raw)
    for load in (load_refer_pickle, load_refs):
        with pytest.raises(RefusedGlobalError) as info:
            load(str(path))
        assert str(path) in str(info.value)
        assert f'"{REFUSED[kind]}"' in str(info.value)
        assert not osp.exists(marker)
    # the payload is genuine: plain pickle would have run it
    pickle.loads(raw)
    assert osp.exists(marker)


CORRUPT = {
    'empty': (b'', 'is empty'),
    'truncated': (None, 'truncated'),
    'html': (b'<!DOCTYPE html>\n<html><body>404 Not Found</body></html>',
             'HTML'),
    'garbage': (b'\x00\x01\x02 not a pickle', 'not a readable pickle'),
}


@pytest.mark.parametrize('kind', list(CORRUPT))
def test_corrupt_refs_name_the_file(tmp_path, kind):
    raw, expected = CORRUPT[kind]
    if raw is None:
        raw = python2_pickle_dumps(_py2_refs(), 2)[:-40]
    path = tmp_path / 'refs(unc).p'
    path.write_bytes(raw)
    with pytest.raises(AnnotationFileError) as info:
        load_refs(str(path))
    assert str(path) in str(info.value) and expected in str(info.value)


@pytest.mark.parametrize('obj,expected', [
    ({'a': 1}, 'should hold a list of refs, got dict'),
    ([dict(ref_id=1, ann_id=2, split='val'), 'x'], 'ref 1 is a str'),
    ([dict(ref_id=1, split='val')], "ref 0 has no 'ann_id'"),
])
def test_refs_structure_is_checked(tmp_path, obj, expected):
    path = tmp_path / 'refs(unc).p'
    path.write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(AnnotationFileError, match=expected) as info:
        load_refs(str(path))
    assert str(path) in str(info.value)


def _instances():
    return dict(
        images=[dict(id=1, file_name='a.jpg', height=4, width=5)],
        annotations=[dict(id=7, image_id=1, segmentation=[[0, 0, 4, 0, 4,
                                                           3]])],
        categories=[dict(id=1, name='x')])


@pytest.mark.parametrize('kind,expected', [
    ('truncated', 'not valid JSON'),
    ('empty', 'is empty'),
    ('html', 'HTML'),
    ('no_annotations', 'has no "annotations" list'),
    ('image_without_height', r"images\[0\] lacks 'height'"),
])
def test_corrupt_instances_name_the_file(tmp_path, kind, expected):
    path = tmp_path / 'instances.json'
    text = json.dumps(_instances())
    if kind == 'truncated':
        text = text[:len(text) // 2]
    elif kind == 'empty':
        text = ''
    elif kind == 'html':
        text = '<html><body>Service unavailable</body></html>'
    elif kind == 'no_annotations':
        text = json.dumps(dict(images=[]))
    else:
        data = _instances()
        del data['images'][0]['height']
        text = json.dumps(data)
    path.write_text(text)
    with pytest.raises(AnnotationFileError, match=expected) as info:
        load_instances(str(path))
    assert str(path) in str(info.value)


def test_instances_indexed_by_id(tmp_path):
    path = tmp_path / 'instances.json'
    path.write_text(json.dumps(_instances()))
    imgs, anns, cats = load_instances(str(path))
    assert imgs[1]['file_name'] == 'a.jpg' and anns[7]['image_id'] == 1
    assert cats[1]['name'] == 'x'
    assert load_json(str(path)) == _instances()
