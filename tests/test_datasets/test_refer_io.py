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

TEXTS = [
    'caf\xe9 on the left', '\u5de6\u8fb9\u7684\u7537\u4eba', 'plain ascii man'
]


def _py2_refs(unicode_sentences=False):
    """REFER-like refs as Python 2 held them: str = UTF-8 byte strings,
    optionally one sentence as a ``unicode`` object."""
    refs = []
    for k, text in enumerate(TEXTS):
        sent = text if unicode_sentences and k == 0 else text.encode('utf-8')
        refs.append({
            b'ref_id':
            k,
            b'ann_id':
            10 + k,
            b'image_id':
            100,
            b'split':
            b'val',
            b'category_id':
            1,
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
        {
            b'id': 3,
            b'a': (b'x', [b'\xff']),
            b'b': {b'\xc3\xa9'}
        }, lambda where, raw: seen.append((where, raw)))
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
    'html':
    (b'<!DOCTYPE html>\n<html><body>404 Not Found</body></html>', 'HTML'),
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
    ({
        'a': 1
    }, 'should hold a list of refs, got dict'),
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
        annotations=[
            dict(id=7, image_id=1, segmentation=[[0, 0, 4, 0, 4, 3]])
        ],
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


def _laughs(fanout, depth, leaf=b'caf\xe9'):
    """A protocol-2 refs pickle (Python 2 opcodes, memo references) whose
    sentence list expands to ``fanout ** depth`` copies of one non-UTF-8
    string: level ``i`` is a list of ``fanout`` references to level
    ``i - 1``."""
    out = [b'\x80\x02', b'U' + bytes([len(leaf)]) + leaf, b'q\x00', b'0']
    for level in range(1, depth + 1):
        out += [
            b']', b'q' + bytes([level]), b'(',
            (b'h' + bytes([level - 1])) * fanout, b'e', b'0'
        ]
    out += [
        b']', b'(', b'}', b'(', b'U\x06ref_idK\x00', b'U\x06ann_idK\x00',
        b'U\x05splitU\x03val', b'U\tsentences', b'h' + bytes([depth]), b'u',
        b'e', b'.'
    ]
    return b''.join(out)


def test_billion_laughs_pickle_is_refused_quickly(tmp_path):
    """16 ** 8 (4.3e9) string references in a 400-byte file: the loader
    must neither copy every reference (hours) nor accept the expansion."""
    import subprocess
    import sys
    raw = _laughs(16, 8)
    assert len(raw) < 400
    path = tmp_path / 'refs(unc).p'
    path.write_bytes(raw)
    code = ('import sys, warnings; warnings.simplefilter("ignore")\n'
            'from mmris.datasets import load_refs\n'
            'from mmris.datasets.refer_io import AnnotationFileError\n'
            'try:\n    load_refs(sys.argv[1])\n'
            'except AnnotationFileError as err:\n    print("REFUSED", err)\n')
    proc = subprocess.run(
        [sys.executable, '-c', code, str(path)],
        capture_output=True,
        text=True,
        timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'REFUSED' in proc.stdout and str(path) in proc.stdout
    assert 'shared' in proc.stdout and str(len(raw)) in proc.stdout


def test_shared_objects_are_decoded_once(tmp_path):
    """Moderate sharing (within the file's size) loads; each shared object
    is decoded once: the sharing survives and the fallback warning counts
    the one string, not its 8 references."""
    raw = _laughs(8, 1)
    path = tmp_path / 'refs(unc).p'
    path.write_bytes(raw)
    with pytest.warns(UserWarning, match='1 byte string') as record:
        refs = load_refer_pickle(str(path))
    assert len(record) == 1
    sents = refs[0]['sentences']
    assert sents == ['caf\xe9'] * 8
    assert all(s is sents[0] for s in sents)


def _colliding_dict(n):
    """A protocol-2 pickle of a dict whose ``n`` integer keys all have the
    same hash (k * (2**61 - 1)): inserting them is quadratic."""
    out = [b'\x80\x02]q\x00}q\x01(']
    for k in range(1, n + 1):
        v = k * (2**61 - 1)
        b = v.to_bytes((v.bit_length() + 8) // 8, 'little', signed=True)
        out.append(b'\x8a' + bytes([len(b)]) + b + b'N')
    out.append(b'ua.')
    return b''.join(out)


def test_integers_beyond_64_bits_are_refused_before_unpickling(tmp_path):
    """Integer keys colliding in the hash table would make the load
    quadratic in the file size (a 4 MB file: minutes); REFER files hold
    ids and counts, never integers beyond 64 bits."""
    path = tmp_path / 'refs(unc).p'
    path.write_bytes(_colliding_dict(300))
    with pytest.raises(AnnotationFileError, match='64 bits') as info:
        load_refer_pickle(str(path))
    assert str(path) in str(info.value)
    # a genuine file with big byte values inside strings still loads
    refs = [
        dict(
            ref_id=1,
            ann_id=2,
            split='val',
            sentences=[
                dict(sent='\u0100\u0111 I12345678901234567890', sent_id=1)
            ])
    ]
    path.write_bytes(pickle.dumps(refs, protocol=2))
    assert load_refs(str(path)) == refs


def test_deep_nesting_and_cycles_are_named(tmp_path):
    path = tmp_path / 'refs(unc).p'
    # a list that contains itself (memo reference to an unfinished list)
    path.write_bytes(b'\x80\x02]q\x00h\x00a.')
    with pytest.raises(AnnotationFileError, match='nested') as info:
        load_refer_pickle(str(path))
    assert str(path) in str(info.value)
    path.write_bytes(b'\x80\x02' + b']' * 5000 + b'a' * 4999 + b'.')
    with pytest.raises(AnnotationFileError, match='nested'):
        load_refer_pickle(str(path))


@pytest.mark.parametrize('text,expected', [
    ('[' * 100000 + ']' * 100000, 'nested'),
    ('{"a": 1' + '0' * 5000 + '}', 'not valid JSON'),
])
def test_json_depth_and_huge_numbers_name_the_file(tmp_path, text, expected):
    path = tmp_path / 'grefs(unc).json'
    path.write_text(text)
    with pytest.raises(AnnotationFileError, match=expected) as info:
        load_json(str(path))
    assert str(path) in str(info.value)
