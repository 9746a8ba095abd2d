# Copyright (c) mmris contributors. All rights reserved.
import importlib.util
import json
import os.path as osp
import pickle
import shutil
import struct

import numpy as np
import pytest
from mmengine.registry import init_default_scope

import mmris  # noqa: F401
from mmris.datasets import OFFICIAL_SPLIT_SIZES, RefCOCODataset, load_refs
from mmris.evaluation import RISMetric
from mmris.testing.synthetic import DEFAULT_SPLITS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _refs(root, dataset='refcoco', split_by='unc'):
    return load_refs(osp.join(root, dataset, f'refs({split_by}).p'))


def test_modes_and_fields(synthetic_root):
    refs = [r for r in _refs(synthetic_root) if r['split'] == 'val']
    n_sents = sum(len(r['sentences']) for r in refs)
    train = RefCOCODataset(synthetic_root, split='val', mode='train')
    test = RefCOCODataset(synthetic_root, split='val', mode='test')
    first = RefCOCODataset(synthetic_root, split='val', mode='val_first')
    assert len(train) == len(first) == len(refs)
    assert len(test) == n_sents > len(refs)
    assert first.test_mode and test.test_mode and not train.test_mode

    by_ref = {r['ref_id']: r for r in refs}
    for i in range(len(first)):
        info = first.get_data_info(i)
        ref = by_ref[info['ref_id']]
        assert info['text'] == ref['sentences'][0]['sent']
        assert info['sent_id'] == ref['sentences'][0]['sent_id']
    # test mode enumerates every sentence exactly once
    seen = {(test.get_data_info(i)['ref_id'], test.get_data_info(i)['sent_id'])
            for i in range(len(test))}
    assert seen == {(r['ref_id'], s['sent_id'])
                    for r in refs
                    for s in r['sentences']}

    info = test.get_data_info(0)
    for key in ('img_path', 'ref_id', 'ann_id', 'image_id', 'text', 'sent_id',
                'segmentation', 'height', 'width', 'category_id', 'bbox',
                'sample_idx'):
        assert key in info, key
    # the COCO image file name is used, not REFER's per-ref "file_name"
    assert osp.isfile(info['img_path'])
    assert info['img_path'].endswith('COCO_train2014_%012d.jpg' %
                                     info['image_id'])
    assert 'val' in repr(test) and 'test' in repr(test)


def test_train_mode_draws_sentences(synthetic_root):
    ds = RefCOCODataset(synthetic_root, split='train', mode='train')
    idx = next(
        i for i in range(len(ds))
        if len(ds.get_data_info(i)['sentences']) >= 3)
    sents = {s['sent'] for s in ds.get_data_info(idx)['sentences']}
    np.random.seed(0)
    drawn = [ds.get_data_info(idx)['text'] for _ in range(40)]
    assert set(drawn) <= sents and len(set(drawn)) >= 2
    info = ds.get_data_info(idx)
    sent_of_id = {s['sent_id']: s['sent'] for s in info['sentences']}
    assert sent_of_id[info['sent_id']] == info['text']


@pytest.mark.parametrize('dataset,split_by', list(OFFICIAL_SPLIT_SIZES))
def test_all_split_names(synthetic_root, dataset, split_by):
    assert set(DEFAULT_SPLITS[split_by]) == set(
        OFFICIAL_SPLIT_SIZES[(dataset, split_by)])
    for split in DEFAULT_SPLITS[split_by]:
        ds = RefCOCODataset(
            synthetic_root,
            dataset=dataset,
            split_by=split_by,
            split=split,
            mode='val_first')
        assert len(ds) > 0


def test_bad_arguments_and_paths(synthetic_root, tmp_path):
    with pytest.raises(FileNotFoundError, match=r'refs\(unc\)\.p'):
        RefCOCODataset(str(tmp_path / 'nowhere'), split='val')
    # refs present, instances.json missing
    (tmp_path / 'refcoco').mkdir()
    shutil.copy(
        osp.join(synthetic_root, 'refcoco', 'refs(unc).p'),
        tmp_path / 'refcoco')
    with pytest.raises(FileNotFoundError, match='instances.json'):
        RefCOCODataset(str(tmp_path), split='val')
    with pytest.raises(ValueError, match='testC'):
        RefCOCODataset(synthetic_root, split='testC')
    with pytest.raises(ValueError, match='mode'):
        RefCOCODataset(synthetic_root, split='val', mode='eval')
    with pytest.raises(ValueError, match='split_by'):
        RefCOCODataset(synthetic_root, split='val', split_by='unk')


def _copy_root_with_refs(src_root, dst, refs=None, raw=None):
    ann_dir = dst / 'refcoco'
    ann_dir.mkdir(parents=True)
    shutil.copy(osp.join(src_root, 'refcoco', 'instances.json'), ann_dir)
    if raw is None:
        raw = pickle.dumps(refs, protocol=2)
    (ann_dir / 'refs(unc).p').write_bytes(raw)
    return str(dst)


def test_missing_ann_id(synthetic_root, tmp_path):
    refs = _refs(synthetic_root)
    bad = next(r for r in refs if r['split'] == 'val')
    bad['ann_id'] = 987654321
    root = _copy_root_with_refs(synthetic_root, tmp_path, refs)
    with pytest.raises(KeyError, match=f"ref_id {bad['ref_id']}.*987654321"):
        RefCOCODataset(
            root,
            split='val',
            img_prefix=osp.join(synthetic_root, 'images/train2014'))
    with pytest.warns(UserWarning, match='absent'):
        ds = RefCOCODataset(
            root, split='val', mode='val_first', skip_missing_ann=True)
    n_val = sum(r['split'] == 'val' for r in refs)
    assert len(ds) == n_val - 1


def test_python2_pickle_latin1(synthetic_root, tmp_path):
    refs = _refs(synthetic_root)
    raw = pickle.dumps(refs, protocol=2)

    def encoded(text):
        return b'X' + struct.pack('<I', len(text)) + text.encode()

    # a first sentence of a val object whose text occurs once in the pickle
    sent = next(r['sentences'][0]['sent'] for r in refs if r['split'] == 'val'
                and raw.count(encoded(r['sentences'][0]['sent'])) == 1)
    # Re-encode that sentence as a Python 2 byte string with a latin-1 byte,
    # which Python 3 cannot decode as ASCII (the default).
    old = encoded(sent)
    new_text = (sent + ' caf\xe9').encode('latin1')
    raw = raw.replace(old, b'U' + bytes([len(new_text)]) + new_text, 1)
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(raw)
    root = _copy_root_with_refs(synthetic_root, tmp_path, raw=raw)
    ref = next(r for r in refs
               if r['split'] == 'val' and r['sentences'][0]['sent'] == sent)
    # not valid UTF-8: decoded as latin-1, with a warning naming the ref
    with pytest.warns(
            UserWarning,
            match=f"ref_id={ref['ref_id']}.*sent_id="
            f"{ref['sentences'][0]['sent_id']} key 'sent'"):
        ds = RefCOCODataset(root, split='val', mode='val_first')
    texts = [ds.get_data_info(i)['text'] for i in range(len(ds))]
    assert sent + ' café' in texts


def _copy_root_with_instances(src_root, dst, edit):
    """Copy the refcoco annotations of ``src_root``, ``edit`` the COCO dict
    of instances.json in place."""
    ann_dir = dst / 'refcoco'
    ann_dir.mkdir(parents=True)
    shutil.copy(osp.join(src_root, 'refcoco', 'refs(unc).p'), ann_dir)
    with open(osp.join(src_root, 'refcoco', 'instances.json')) as f:
        data = json.load(f)
    edit(data)
    with open(ann_dir / 'instances.json', 'w') as f:
        json.dump(data, f)
    return str(dst)


def test_degenerate_annotations_warn_and_skip_empty(synthetic_root, tmp_path):
    refs = [r for r in _refs(synthetic_root) if r['split'] == 'val']
    square = [2.0, 2.0, 20.0, 2.0, 20.0, 20.0, 2.0, 20.0]
    bad = {
        # empty masks
        'empty segmentation list': [],
        'has 4 coordinates (fewer than 3 points)': [[1, 2, 3, 4]],
        'covers no pixel': [[2, 2, 10, 10, 18, 18]],  # collinear: no area
        # truncated / partly dropped, mask still non-empty
        'odd number of coordinates (9)': [square + [5.0]],
        'polygon 1 has 2 coordinates': [square, [3, 4]],
    }
    victims = dict(zip(bad, refs))

    def edit(data):
        anns = {a['id']: a for a in data['annotations']}
        for problem, ref in victims.items():
            anns[ref['ann_id']]['segmentation'] = bad[problem]

    root = _copy_root_with_instances(synthetic_root, tmp_path, edit)
    for mode, n_expected in (('train', len(refs) - 3), ('test', None),
                             ('val_first', len(refs))):
        with pytest.warns(UserWarning) as record:
            ds = RefCOCODataset(root, split='val', mode=mode)
        msg = '\n'.join(str(w.message) for w in record)
        assert '5 refs of split' in msg and 'instances.json' in msg
        for problem, ref in victims.items():
            assert f"ref_id {ref['ref_id']} ann_id {ref['ann_id']}: " in msg
            assert problem in msg
        ids = {ds.get_data_info(i)['ref_id'] for i in range(len(ds))}
        empty = {victims[p]['ref_id'] for p in list(bad)[:3]}
        if mode == 'train':  # never train on an empty target
            assert len(ds) == n_expected and not ids & empty
            assert '3 of them have an empty mask and were skipped' in msg
        else:  # evaluation keeps them (IoU 0), official sentence count
            assert empty <= ids
            assert '3 of them have an empty mask and are kept' in msg
        if n_expected is not None:
            assert len(ds) == n_expected
    ds = RefCOCODataset(root, split='val', mode='test', skip_empty_masks=True)
    assert len(ds) == sum(
        len(r['sentences']) for r in refs
        if r['ref_id'] not in {victims[p]['ref_id']
                               for p in list(bad)[:3]})


def test_malformed_segmentation_names_ann(synthetic_root, tmp_path):
    ref = next(r for r in _refs(synthetic_root) if r['split'] == 'val')

    def edit(data):
        ann = next(a for a in data['annotations'] if a['id'] == ref['ann_id'])
        ann['segmentation'] = dict(size=[3, 3], counts='abc')  # wrong size

    root = _copy_root_with_instances(synthetic_root, tmp_path, edit)
    with pytest.raises(
            ValueError,
            match=f"ann_id {ref['ann_id']} .ref_id "
            f"{ref['ref_id']}.*RLE size \\[3, 3\\] differs"):
        RefCOCODataset(root, split='val')


def test_concat_dataset_with_metric(synthetic_root):
    init_default_scope('mmseg')
    from mmseg.registry import DATASETS
    pipeline = [
        dict(type='LoadRefImage'),
        dict(type='LoadRefMask'),
        dict(type='LetterboxAffine', size=32, warp_mask=False),
        dict(type='CLIPTokenize'),
        dict(type='PackRISInputs')
    ]
    parts = [
        dict(
            type='RefCOCODataset',
            data_root=synthetic_root,
            dataset='refcoco',
            split_by='unc',
            split='val',
            mode='test',
            pipeline=pipeline),
        dict(
            type='RefCOCODataset',
            data_root=synthetic_root,
            dataset='refcocog',
            split_by='umd',
            split='val',
            mode='test',
            pipeline=pipeline),
    ]
    concat = DATASETS.build(dict(type='ConcatDataset', datasets=parts))
    a, b = (DATASETS.build(p) for p in parts)
    assert len(concat) == len(a) + len(b)
    assert concat.metainfo['classes'] == ('background', 'object')
    metric = RISMetric()
    for i in (0, len(a) - 1, len(a), len(concat) - 1):
        sample = concat[i]['data_samples']
        sample.pred_sem_seg = sample.gt_sem_seg.clone()
        metric.process({}, [sample.to_dict()])
    res = metric.evaluate(4)
    assert res['mIoU'] == pytest.approx(100, abs=1e-3)
    assert res['oIoU'] == pytest.approx(100)
    assert concat[len(a)]['data_samples'].text == b.get_data_info(0)['text']


def _load_tool(name):
    path = osp.join(REPO, 'tools', 'dataset_converters', f'{name}.py')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_check_refer_root(synthetic_root, tmp_path, capsys):
    check = _load_tool('check_refer_root')
    assert check.main([synthetic_root]) == 0
    out = capsys.readouterr().out
    assert 'refcocog_google' in out and '✗' in out and 'testB' in out
    assert check.main([synthetic_root, '--strict']) == 1
    capsys.readouterr()
    # missing files are named, with the expected layout
    (tmp_path / 'images' / 'train2014').mkdir(parents=True)
    assert check.main([str(tmp_path), '--datasets', 'refcoco+']) == 1
    out = capsys.readouterr().out
    assert osp.join(str(tmp_path), 'refcoco+', 'refs(unc).p') in out
    assert 'Expected layout' in out
    # a missing image is reported
    root = tmp_path / 'copy'
    shutil.copytree(synthetic_root, root)
    victim = sorted((root / 'images' / 'train2014').iterdir())[0]
    victim.unlink()
    assert check.main([str(root), '--datasets', 'refcoco']) == 1


def test_dataset_indices_subset(synthetic_root):
    from mmris.datasets import RefCOCODataset
    full = RefCOCODataset(data_root=synthetic_root, split='val', mode='test')
    part = RefCOCODataset(
        data_root=synthetic_root, split='val', mode='test', indices=3)
    assert len(full) > 3 and len(part) == 3
    assert [part.get_data_info(i)['sent_id'] for i in range(3)
            ] == [full.get_data_info(i)['sent_id'] for i in range(3)]
    picked = RefCOCODataset(
        data_root=synthetic_root, split='val', mode='test', indices=[4, 1])
    assert [picked.get_data_info(i)['sent_id'] for i in range(2)
            ] == [full.get_data_info(i)['sent_id'] for i in (4, 1)]


def _rle_of_rows(rows, w):
    """pycocotools' compressed RLE of a ``rows`` x ``w`` all-ones mask."""
    import warnings

    from pycocotools import mask as mask_utils
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        rle = mask_utils.encode(np.ones((rows, w), np.uint8, order='F'))
    return rle['counts'].decode('ascii')


#: RLE segmentations whose counts do not cover the image exactly: ``h x w``
#: -> (segmentation, sum of its counts). pycocotools decodes the short ones
#: into uninitialised memory and refuses the long ones only at decode time.
BAD_RLE = {
    'short list':
    lambda h, w: (dict(size=[h, w], counts=[5, h * w - 10]), h * w - 5),
    'long list':
    lambda h, w: (dict(size=[h, w], counts=[5, h * w]), h * w + 5),
    'short string':
    lambda h, w: (dict(size=[h, w], counts=_rle_of_rows(h - 1, w)),
                  (h - 1) * w),
    'long string':
    lambda h, w: (dict(size=[h, w], counts=_rle_of_rows(h + 1, w)),
                  (h + 1) * w),
}


@pytest.mark.parametrize('kind', list(BAD_RLE))
def test_rle_counts_must_cover_the_image(synthetic_root, tmp_path, kind):
    ref = next(r for r in _refs(synthetic_root) if r['split'] == 'val')
    seen = {}

    def edit(data):
        ann = next(a for a in data['annotations'] if a['id'] == ref['ann_id'])
        img = next(i for i in data['images'] if i['id'] == ann['image_id'])
        seg, total = BAD_RLE[kind](img['height'], img['width'])
        ann['segmentation'] = seg
        seen.update(total=total, pixels=img['height'] * img['width'])

    root = _copy_root_with_instances(synthetic_root, tmp_path, edit)
    with pytest.raises(ValueError) as info:
        RefCOCODataset(root, split='val', mode='test')
    msg = str(info.value)
    assert osp.join(root, 'refcoco', 'instances.json') in msg
    assert f"ann_id {ref['ann_id']} (ref_id {ref['ref_id']})" in msg
    assert (f"RLE counts sum to {seen['total']}, not height x width = "
            f"{seen['pixels']}") in msg


def test_polygon_coordinates_far_outside_are_refused(synthetic_root, tmp_path):
    """pycocotools rasterises NaN / infinite / huge coordinates with
    undefined behaviour (a segfault; 1e7 already takes 1.2 GB): refused at
    load, in a subprocess so that the old behaviour cannot kill the suite
    (one subprocess reads the four roots in turn)."""
    import subprocess
    import sys
    ref = next(r for r in _refs(synthetic_root) if r['split'] == 'val')

    def edit(data):
        ann = next(a for a in data['annotations'] if a['id'] == ref['ann_id'])
        ann['segmentation'] = [[0, 0, 'X', 0, 10, 10]]

    values = ('NaN', 'Infinity', '1e300', '1e8')
    roots = []
    for value in values:
        root = _copy_root_with_instances(synthetic_root, tmp_path / value,
                                         edit)
        path = osp.join(root, 'refcoco', 'instances.json')
        with open(path) as f:
            text = f.read()
        with open(path, 'w') as f:
            f.write(text.replace('"X"', value))
        roots.append(root)
    code = ('import sys, warnings; warnings.simplefilter("ignore")\n'
            'import mmris\nfrom mmris.datasets import RefCOCODataset\n'
            'for i, root in enumerate(sys.argv[1:]):\n'
            '    try:\n        RefCOCODataset(root, split="val")\n'
            '    except ValueError as err:\n'
            '        print(i, "REFUSED", str(err).replace("\\n", " "))\n'
            '    else:\n        print(i, "LOADED")\n')
    proc = subprocess.run([sys.executable, '-c', code, *roots],
                          capture_output=True,
                          text=True,
                          timeout=240)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    lines = dict(
        line.split(' ', 1) for line in proc.stdout.splitlines()
        if line[:1].isdigit())
    assert sorted(lines) == ['0', '1', '2', '3'], proc.stdout[-2000:]
    for i, (value, root) in enumerate(zip(values, roots)):
        out = lines[str(i)]
        path = osp.join(root, 'refcoco', 'instances.json')
        assert out.startswith('REFUSED') and path in out, (value, out)
        if value in ('NaN', 'Infinity'):  # not JSON: refused by the parser
            assert f'{value} is not a JSON number' in out
        else:
            assert f"ann_id {ref['ann_id']} (ref_id {ref['ref_id']})" in out
            assert 'polygon 0: coordinate 2' in out


def test_decode_refuses_inconsistent_rle():
    from mmris.datasets.transforms.loading import decode_segmentation
    seg, _ = BAD_RLE['short string'](6, 5)
    with pytest.raises(
            ValueError, match='RLE counts sum to 25, not height '
            'x width = 30'):
        decode_segmentation(seg, 6, 5)
    good = dict(size=[6, 5], counts=_rle_of_rows(6, 5))
    assert decode_segmentation(good, 6, 5).sum() == 30
    with pytest.raises(ValueError, match='coordinate'):
        decode_segmentation([[0, 0, float('nan'), 0, 3, 3]], 6, 5)
