# Copyright (c) mmris contributors. All rights reserved.
"""GRefCOCODataset on a gRefCOCO-format fixture (synthetic writer)."""
import json
import os
import os.path as osp
import pickle
import shutil
import warnings

import numpy as np
import pytest
from mmengine.registry import init_default_scope

import mmris  # noqa: F401
from mmris.datasets import GRefCOCODataset, load_grefs
from mmris.datasets.grefcoco import union_segmentation
from mmris.datasets.refer_io import AnnotationFileError, RefusedGlobalError
from mmris.datasets.transforms import LoadRefMask, PackRISInputs
from mmris.testing.synthetic import make_synthetic_grefcoco

init_default_scope('mmseg')
SPLITS = ('train', 'val', 'testA', 'testB')


@pytest.fixture(scope='module')
def groot(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('grefcoco'))
    summary = make_synthetic_grefcoco(root, seed=0, small=True)
    return root, summary


def _copy(groot, tmp_path):
    root = str(tmp_path / 'root')
    shutil.copytree(osp.join(groot[0], 'grefcoco'), osp.join(root, 'grefcoco'))
    os.symlink(osp.join(groot[0], 'images'), osp.join(root, 'images'))
    return root


def _decode_one(ann, h, w):
    """One annotation's mask straight from pycocotools (no mmris code)."""
    from pycocotools import mask as mask_utils
    with warnings.catch_warnings():  # pycocotools + numpy 2 deprecation
        warnings.simplefilter('ignore', DeprecationWarning)
        rles = mask_utils.frPyObjects(ann['segmentation'], h, w)
        return mask_utils.decode(rles).max(axis=2).astype(np.uint8)


def test_counts_per_split_and_modes(groot):
    root, summary = groot
    refs = load_grefs(summary['refs_file'])
    for split in SPLITS:
        stat = summary['splits'][split]
        train = GRefCOCODataset(root, split=split, mode='train')
        test = GRefCOCODataset(root, split=split, mode='test')
        assert len(train) == stat['refs']
        assert len(test) == stat['sentences']
        infos = [test.get_data_info(i) for i in range(len(test))]
        split_refs = [r for r in refs if r['split'] == split]
        assert sum(i['no_target'] for i in infos) == sum(
            len(r['sentences']) for r in split_refs if r['ann_id'] == [-1])
        tinfos = [train.get_data_info(i) for i in range(len(train))]
        assert sum(i['no_target'] for i in tinfos) == stat['no_target_refs']
        assert sum(i['num_targets'] > 1
                   for i in tinfos) == stat['multi_target_refs']
    # every sentence exactly once in test mode
    test = GRefCOCODataset(root, split='val', mode='test')
    seen = sorted(
        (test.get_data_info(i)['ref_id'], test.get_data_info(i)['sent_id'])
        for i in range(len(test)))
    assert seen == sorted((r['ref_id'], s['sent_id']) for r in refs
                          if r['split'] == 'val' for s in r['sentences'])


def test_multi_target_union_pixel_exact(groot):
    root, summary = groot
    anns = {
        a['id']: a
        for a in json.load(open(summary['instances_file']))['annotations']
    }
    ds = GRefCOCODataset(root, split='train', mode='val_first')
    load = LoadRefMask()
    n_multi = 0
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        gt = load(dict(info))['gt_seg_map']
        h, w = info['height'], info['width']
        expected = np.zeros((h, w), np.uint8)
        for ann_id in info['ann_id']:
            expected |= _decode_one(anns[ann_id], h, w)
        np.testing.assert_array_equal(gt, expected)
        assert info['num_targets'] == len(info['ann_id'])
        if info['num_targets'] > 1:
            n_multi += 1
            assert gt.sum() > max(
                _decode_one(anns[a], h, w).sum() for a in info['ann_id'])
    assert n_multi == summary['splits']['train']['multi_target_refs']


def test_no_target_samples_have_empty_masks(groot):
    root, _ = groot
    ds = GRefCOCODataset(root, split='val', mode='test')
    nt = [
        ds.get_data_info(i) for i in range(len(ds))
        if ds.get_data_info(i)['no_target']
    ]
    assert nt
    for info in nt:
        assert info['ann_id'] == [] and info['category_id'] == []
        assert info['num_targets'] == 0
        gt = LoadRefMask()(dict(info))['gt_seg_map']
        assert gt.shape == (info['height'], info['width'])
        assert gt.sum() == 0


def test_flags_reach_the_data_sample(groot):
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')  # the pipeline is given as configs
    root, _ = groot
    pipeline = [
        dict(type='LoadRefImage'),
        dict(type='LoadRefMask'),
        dict(type='LetterboxAffine', size=32, warp_mask=False),
        dict(type='CLIPTokenize', context_length=8),
        dict(type='PackRISInputs')
    ]
    ds = GRefCOCODataset(root, split='val', mode='test', pipeline=pipeline)
    flags = set()
    for i in range(len(ds)):
        sample = ds[i]['data_samples']
        assert sample.no_target == (sample.num_targets == 0)
        assert sample.no_target == (int(sample.gt_sem_seg.data.sum()) == 0)
        flags.add(sample.no_target)
    assert flags == {True, False}
    assert 'no_target' in PackRISInputs().meta_keys


def test_pickle_variant_and_keyed_draw(groot, tmp_path):
    root, _ = groot
    proot = str(tmp_path / 'p')
    summary = make_synthetic_grefcoco(
        proot, seed=0, small=True, refs_format='pickle')
    assert summary['refs_file'].endswith('grefs(unc).p')
    a = GRefCOCODataset(root, split='train', mode='test')
    b = GRefCOCODataset(proot, split='train', mode='test')
    strip = ('img_path', 'sample_idx')
    assert [{
        k: v
        for k, v in a.get_data_info(i).items() if k not in strip
    } for i in range(len(a))] == [{
        k: v
        for k, v in b.get_data_info(i).items() if k not in strip
    } for i in range(len(b))]
    # training sentence draw keyed by (seed, epoch, idx), as RefCOCO
    train = GRefCOCODataset(root, split='train', mode='train')
    draws = []
    for _ in range(2):
        train.set_sentence_epoch(3, seed=7)
        draws.append(
            [train.get_data_info(i)['sent_id'] for i in range(len(train))])
    assert draws[0] == draws[1]
    train.set_sentence_epoch(4, seed=7)
    assert [train.get_data_info(i)['sent_id']
            for i in range(len(train))] != draws[0]


def test_same_images_as_refcoco_writer(groot, tmp_path):
    from mmris.testing.synthetic import make_synthetic_refer
    root, summary = groot
    other = str(tmp_path / 'r')
    make_synthetic_refer(other, seed=0, small=True)
    for name in sorted(os.listdir(summary['image_dir']))[:4]:
        with open(osp.join(summary['image_dir'], name), 'rb') as f1, open(
                osp.join(other, 'images', 'train2014', name), 'rb') as f2:
            assert f1.read() == f2.read()
    # deterministic by seed
    again = make_synthetic_grefcoco(str(tmp_path / 'g'), seed=0, small=True)
    assert open(again['refs_file']).read() == open(summary['refs_file']).read()


def test_union_with_rle(groot):
    from pycocotools import mask as mask_utils
    h, w = 20, 30
    a = np.zeros((h, w), np.uint8, order='F')
    a[2:8, 3:9] = 1
    rle = mask_utils.encode(a)
    rle['counts'] = rle['counts'].decode('ascii')
    poly = [[15, 10, 25, 10, 25, 18, 15, 18]]
    seg = union_segmentation([rle, poly], h, w)
    got = LoadRefMask()(dict(segmentation=seg, height=h,
                             width=w))['gt_seg_map']
    b = LoadRefMask()(dict(segmentation=poly, height=h, width=w))['gt_seg_map']
    np.testing.assert_array_equal(got, a | b)


@pytest.mark.parametrize('case, message', [
    ('missing', 'gRefCOCO refs file not found'),
    ('truncated', 'is not valid JSON'),
    ('no_split', "has no 'split'"),
    ('mixed', 'mixes the no-target id -1'),
    ('bad_ann', 'expected a list of annotation ids'),
    ('absent_ann', 'absent from'),
    ('bad_split', "Split 'val' has no refs"),
])
def test_bad_files_name_the_file(groot, tmp_path, case, message):
    root = _copy(groot, tmp_path)
    path = osp.join(root, 'grefcoco', 'grefs(unc).json')
    refs = json.load(open(path))
    if case == 'missing':
        os.remove(path)
    elif case == 'truncated':
        raw = open(path).read()
        open(path, 'w').write(raw[:len(raw) // 2])
    else:
        if case == 'no_split':
            del refs[3]['split']
        elif case == 'mixed':
            refs[0]['ann_id'] = [-1, refs[0]['ann_id'][0]]
            refs[0]['split'] = 'val'
        elif case == 'bad_ann':
            refs[0]['ann_id'] = []
            refs[0]['split'] = 'val'
        elif case == 'absent_ann':
            refs[0]['ann_id'] = [123456789]
            refs[0]['split'] = 'val'
        elif case == 'bad_split':
            refs = [dict(r, split='train') for r in refs]
        json.dump(refs, open(path, 'w'))
    errors = (FileNotFoundError, AnnotationFileError, KeyError, ValueError)
    with pytest.raises(errors) as err:
        GRefCOCODataset(root, split='val', mode='test')
    assert message in str(err.value)
    assert 'grefcoco' in str(err.value)


def test_malicious_pickle_refused(groot, tmp_path):
    from test_reliability._malicious import OpenFile
    root = _copy(groot, tmp_path)
    os.remove(osp.join(root, 'grefcoco', 'grefs(unc).json'))
    marker = tmp_path / 'pwned'
    path = osp.join(root, 'grefcoco', 'grefs(unc).p')
    with open(path, 'wb') as f:
        pickle.dump([
            dict(
                ref_id=0,
                image_id=0,
                ann_id=[-1],
                split='val',
                sentences=[OpenFile(str(marker))])
        ],
                    f,
                    protocol=2)
    with pytest.raises(RefusedGlobalError) as err:
        GRefCOCODataset(root, split='val', mode='test')
    assert not marker.exists()
    assert path in str(err.value) and 'io.open' in str(err.value)


def _tool(name):
    import importlib.util
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    path = osp.join(repo, 'tools', 'dataset_converters', f'{name}.py')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tools_write_and_check_a_grefcoco_root(tmp_path, capsys):
    root = str(tmp_path / 'g')
    assert _tool('make_synthetic_refer').main(
        [root, '--datasets', 'grefcoco', '--num-images', '8']) == 0
    summary = json.loads(capsys.readouterr().out)
    check = _tool('check_refer_root')
    assert check.main([root, '--datasets', 'grefcoco']) == 0
    out = capsys.readouterr().out
    val = summary['splits']['val']
    row = [
        line.split() for line in out.splitlines()
        if line.strip().startswith('val ')
    ][0]
    assert row[:3] == ['val', str(val['refs']), str(val['sentences'])]
    assert row[3] == f'{100 * val["no_target_refs"] / val["refs"]:.1f}%'
    assert row[6] == f'{100 * val["multi_target_refs"] / val["refs"]:.1f}%'
    assert 'All checks passed.' in out
    # a damaged root fails, naming the problem
    refs_file = osp.join(root, 'grefcoco', 'grefs(unc).json')
    refs = [r for r in json.load(open(refs_file)) if r['split'] != 'testB']
    refs[0]['ann_id'] = [987654321]
    json.dump(refs, open(refs_file, 'w'))
    assert check.main([root, '--datasets', 'grefcoco']) == 1
    out = capsys.readouterr().out
    assert 'testB' in out and 'split absent from' in out
    assert '1 target ids point to annotations absent from' in out


def test_grefcoco_full_concatenates_grefcoco_and_refcoco(groot, tmp_path):
    from mmengine.config import Config
    from mmseg.registry import DATASETS

    from mmris.testing.synthetic import make_synthetic_refer
    root = str(tmp_path / 'full')
    gsum = make_synthetic_grefcoco(root, seed=0, small=True)
    rsum = make_synthetic_refer(root, seed=0, small=True)
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    cfg = Config.fromfile(
        osp.join(repo, 'configs', '_base_', 'datasets', 'grefcoco_full.py'))
    ds_cfg = cfg.train_dataloader.dataset
    assert [d['type']
            for d in ds_cfg.datasets] == ['GRefCOCODataset', 'RefCOCODataset']
    for d in ds_cfg.datasets:
        d['data_root'] = root
        d['pipeline'] = []
    ds = DATASETS.build(ds_cfg)
    assert len(ds) == (
        gsum['splits']['train']['refs'] + rsum['splits']['train']['refs'])
    gref, ref = ds.datasets
    assert gref.get_data_info(0)['img_path'] == ref.get_data_info(0)[
        'img_path']  # the same images
    assert 'no_target' not in ref.get_data_info(0)
    assert cfg.val_dataloader.dataset.type == 'GRefCOCODataset'
    assert cfg.val_evaluator.type == 'GRISMetric'


def _rect(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def _block_rle(h, w, rows, cols):
    """pycocotools' compressed RLE of a block (no mmris code)."""
    from pycocotools import mask as mask_utils
    m = np.zeros((h, w), np.uint8, order='F')
    m[rows, cols] = 1
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        rle = mask_utils.encode(m)
    return dict(size=[h, w], counts=rle['counts'].decode('ascii'))


def _pycoco_mask(seg, h, w):
    from pycocotools import mask as mask_utils
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        rles = (
            mask_utils.frPyObjects(seg, h, w) if isinstance(seg, list) else
            [dict(seg, counts=seg['counts'].encode('ascii'))])
        return mask_utils.decode(rles).max(axis=2).astype(np.uint8)


#: A hand-made gRefCOCO root (ReLA's rules, henghuiding/ReLA grefer.py and
#: gres_model/data/datasets/grefcoco.py): a crowd region listed in a
#: multi-target ref, a ref listing only a crowd region, raw != sent.
H, W = 20, 30
ANNS = [
    dict(
        id=11,
        image_id=1,
        category_id=1,
        iscrowd=0,
        segmentation=_rect(2, 2, 10, 8),
        bbox=[2, 2, 8, 6]),
    dict(
        id=12,
        image_id=1,
        category_id=1,
        iscrowd=0,
        segmentation=_rect(20, 10, 28, 18),
        bbox=[20, 10, 8, 8]),
    dict(
        id=13,
        image_id=1,
        category_id=1,
        iscrowd=1,
        segmentation=_block_rle(H, W, slice(0, 20), slice(12, 19)),
        bbox=[12, 0, 7, 20]),
]


def _sentence(sent_id, raw, sent):
    return dict(sent_id=sent_id, raw=raw, sent=sent, tokens=sent.split())


GREFS = [
    dict(
        ref_id=0,
        image_id=1,
        ann_id=[11, 13],
        category_id=[1, 1],
        split='val',
        sentences=[
            _sentence(0, 'The LEFT box, and the people!',
                      'the left box and the people')
        ]),
    dict(
        ref_id=1,
        image_id=1,
        ann_id=[13],
        category_id=[1],
        split='val',
        sentences=[
            _sentence(1, 'crowd of people in the middle  ',
                      'crowd people middle')
        ]),
    dict(
        ref_id=2,
        image_id=1,
        ann_id=[-1],
        category_id=[-1],
        split='val',
        sentences=[_sentence(2, 'The dog.', 'the dog')]),
    dict(
        ref_id=3,
        image_id=1,
        ann_id=[11, 12],
        category_id=[1, 1],
        split='val',
        sentences=[_sentence(3, 'Both boxes', 'both boxes')]),
]


def _write_rela_root(tmp_path, refs=GREFS, anns=ANNS):
    root = tmp_path / 'rela'
    (root / 'grefcoco').mkdir(parents=True)
    with open(root / 'grefcoco' / 'instances.json', 'w') as f:
        json.dump(
            dict(
                images=[dict(id=1, file_name='a.jpg', height=H, width=W)],
                annotations=anns,
                categories=[dict(id=1, name='box')]), f)
    with open(root / 'grefcoco' / 'grefs(unc).json', 'w') as f:
        json.dump(refs, f)
    return str(root)


def test_crowd_regions_are_left_out_as_rela(tmp_path):
    root = _write_rela_root(tmp_path)
    box, other, crowd = (_pycoco_mask(a['segmentation'], H, W) for a in ANNS)
    assert (box.sum(), other.sum(), crowd.sum()) == (48, 64, 140)
    with pytest.warns(
            UserWarning,
            match='ref_id 1 ann_id 13: a crowd '
            'region .iscrowd. left out of the target'):
        ds = GRefCOCODataset(root, split='val', mode='test')
    infos = {
        ds.get_data_info(i)['ref_id']: ds.get_data_info(i)
        for i in range(len(ds))
    }
    gt = {k: LoadRefMask()(dict(v))['gt_seg_map'] for k, v in infos.items()}
    np.testing.assert_array_equal(gt[0], box)  # not box | crowd (188 px)
    assert gt[1].sum() == 0 and not infos[1]['no_target']
    assert infos[0]['crowd_ann_ids'] == [13] and infos[0]['ann_id'] == [11, 13]
    np.testing.assert_array_equal(gt[3], box | other)
    # training never learns an empty target: the crowd-only ref is skipped
    with pytest.warns(UserWarning):
        train = GRefCOCODataset(root, split='val', mode='train')
    assert sorted(train.get_data_info(i)['ref_id']
                  for i in range(len(train))) == [0, 2, 3]
    # the switch keeps mmris's earlier union
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        union = GRefCOCODataset(
            root, split='val', mode='test', include_crowd=True)
    info = next(
        union.get_data_info(i) for i in range(len(union))
        if union.get_data_info(i)['ref_id'] == 0)
    np.testing.assert_array_equal(LoadRefMask()(info)['gt_seg_map'],
                                  box | crowd)


def test_sentence_field_raw_for_grefcoco(tmp_path):
    """ReLA feeds ``raw`` (gres_model/data/dataset_mappers/
    refcoco_mapper.py: ``dataset_dict['sentence']['raw']``)."""
    root = _write_rela_root(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        ds = GRefCOCODataset(root, split='val', mode='test')
        sent = GRefCOCODataset(
            root, split='val', mode='test', sentence_field='sent')
    texts = [ds.get_data_info(i)['text'] for i in range(len(ds))]
    assert texts == [r['sentences'][0]['raw'].strip() for r in GREFS]
    assert [sent.get_data_info(i)['text'] for i in range(len(sent))
            ] == [r['sentences'][0]['sent'] for r in GREFS]
    refs = json.loads(json.dumps(GREFS))
    del refs[2]['sentences'][0]['raw']
    root = _write_rela_root(tmp_path / 'b', refs=refs)
    with pytest.raises(
            AnnotationFileError,
            match="ref_id 2: sentence 0 .sent_id 2. has no 'raw'"):
        GRefCOCODataset(root, split='val', mode='test')


def _broken(refs, case):
    ref = refs[1]
    if case == 'sentences_str':
        ref['sentences'] = 'crowd of people'
    elif case == 'sent_int':
        ref['sentences'][0]['raw'] = 5
    elif case == 'sentence_list':
        ref['sentences'] = [['crowd']]
    elif case == 'image_id_list':
        ref['image_id'] = [1]
    elif case == 'ref_id_dict':
        ref['ref_id'] = {'a': 1}
    elif case == 'split_int':
        ref['split'] = 3
    elif case == 'category_str':
        ref['category_id'] = 'box'
    elif case == 'sent_id_str':
        ref['sentences'][0]['sent_id'] = '1'
    elif case == 'ann_id_float':
        ref['ann_id'] = [13.0]
    return refs


@pytest.mark.parametrize('case,field', [
    ('sentences_str', "'sentences' is a str"),
    ('sent_int', "'raw' is an int"),
    ('sentence_list', 'sentence 0 is a list'),
    ('image_id_list', "'image_id' is a list"),
    ('ref_id_dict', "'ref_id' is a dict"),
    ('split_int', "'split' is an int"),
    ('category_str', "'category_id' is a str"),
    ('sent_id_str', "'sent_id' is a str"),
    ('ann_id_float', "'ann_id' is [13.0]"),
])
def test_wrong_types_name_the_file_and_ref(tmp_path, capsys, case, field):
    refs = _broken(json.loads(json.dumps(GREFS)), case)
    root = _write_rela_root(tmp_path, refs=refs)
    path = osp.join(root, 'grefcoco', 'grefs(unc).json')
    where = 'ref 1 ' if case == 'ref_id_dict' else 'ref_id 1'
    with pytest.raises(AnnotationFileError) as info:
        GRefCOCODataset(root, split='val', mode='test')
    msg = str(info.value)
    assert path in msg and where in msg and field in msg, msg
    # the check tool reports it instead of crashing
    code = _tool('check_refer_root').main([root, '--datasets', 'grefcoco'])
    out = capsys.readouterr().out
    assert code == 1 and 'ERROR' in out and field in out


def test_targets_on_another_image_name_both_files(tmp_path):
    anns = json.loads(json.dumps(ANNS))
    anns[1]['image_id'] = 2
    root = _write_rela_root(tmp_path, anns=anns)
    with open(osp.join(root, 'grefcoco', 'instances.json')) as f:
        inst = json.load(f)
    inst['images'].append(dict(id=2, file_name='b.jpg', height=H, width=W))
    with open(osp.join(root, 'grefcoco', 'instances.json'), 'w') as f:
        json.dump(inst, f)
    with pytest.raises(AnnotationFileError) as info:
        GRefCOCODataset(root, split='val', mode='test')
    msg = str(info.value)
    assert ('grefs(unc).json: ref_id 3 is on image_id 1, but its ann_id 12 '
            'is on image_id 2 in') in msg and 'instances.json' in msg
