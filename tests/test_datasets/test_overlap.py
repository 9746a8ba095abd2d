# Copyright (c) mmris contributors. All rights reserved.
"""exclude_images_of: mixed training without evaluation images, on the
planted-overlap root (mmris.testing.synthetic.PLANTED_OVERLAP)."""
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmris  # noqa: F401
from mmris.datasets import GRefCOCODataset, RefCOCODataset
from mmris.datasets.overlap import excluded_images, parse_exclusions
from mmris.testing.synthetic import make_planted_overlap_root

init_default_scope('mmseg')
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
#: Images of the evaluation splits of PLANTED_OVERLAP (by hand).
EVAL_IMAGES = {
    'refcoco': {4, 5, 6},
    'refcoco+': {1, 8, 9},
    'refcocog_umd': {11, 2},
    'refcocog_google': {12},
    'grefcoco': {4, 5, 14}
}


@pytest.fixture(scope='module')
def planted(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('planted'))
    make_planted_overlap_root(root)
    return root


def test_parse_and_image_sets(planted):
    assert parse_exclusions('refcocog_umd') == [('refcocog_umd', 'val'),
                                                ('refcocog_umd', 'test')]
    assert parse_exclusions(['refcoco/testB',
                             'refcoco']) == [('refcoco', 'testB'),
                                             ('refcoco', 'val'),
                                             ('refcoco', 'testA')]
    assert len(parse_exclusions('all')) == 12
    for bad, match in (('refcocog', 'unknown dataset'),
                       ('refcoco/test', 'no evaluation split'),
                       ('refcoco/train', 'no evaluation split')):
        with pytest.raises(ValueError, match=match):
            parse_exclusions(bad)
    for name, images in EVAL_IMAGES.items():
        assert excluded_images(planted, name) == images
    assert excluded_images(planted,
                           'all') == set().union(*EVAL_IMAGES.values())
    assert excluded_images(planted, 'refcoco+/testA') == {8}


def _mixed(config, root):
    from mmseg.registry import DATASETS
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    ds_cfg = cfg.train_dataloader.dataset
    for d in ds_cfg.datasets:
        d['data_root'] = root
        d['pipeline'] = []
    return DATASETS.build(ds_cfg)


def _images(ds):
    return {ds.get_data_info(i)['image_id'] for i in range(len(ds))}


def test_clean_mixed_config_has_no_evaluation_image(planted):
    """refcoco train (images 1, 1, 2, 3), refcoco+ train (4, 4, 7), umd
    train (5, 10) without the images of the refcoco, refcoco+ and umd
    evaluation splits {1, 2, 4, 5, 6, 8, 9, 11}: images 3, 7 and 10."""
    mixed = _mixed('detris/detris-l_refcoco_mixed.py', planted)
    evaluation = EVAL_IMAGES['refcoco'] | EVAL_IMAGES[
        'refcoco+'] | EVAL_IMAGES['refcocog_umd']
    assert _images(mixed) == {3, 7, 10} and not _images(mixed) & evaluation
    assert [d.excluded for d in mixed.datasets] == [
        dict(refs=3, sentences=6, images=2),
        dict(refs=2, sentences=4, images=1),
        dict(refs=1, sentences=2, images=1)
    ]
    # the strict variant also leaves out google / gRefCOCO evaluation
    # images: none more here
    strict = _mixed('detris/detris-l_refcoco_mixed_strict.py', planted)
    assert _images(strict) == {3, 7, 10}
    assert strict.datasets[0].exclude_images_of == 'all'


def test_official_recipe_keeps_them(planted):
    official = _mixed('detris/detris-l_refcoco_mixed_official.py', planted)
    assert len(official) == 4 + 3 + 2
    assert _images(official) == {1, 2, 3, 4, 7, 5, 10}
    assert all(d.exclude_images_of is None for d in official.datasets)


def test_dataset_option_logs_and_grefcoco(planted, capsys):
    from mmengine.logging import MMLogger
    MMLogger.get_instance('overlap_test')
    ds = RefCOCODataset(
        planted,
        dataset='refcoco+',
        split='train',
        exclude_images_of=['refcoco/val'])
    assert _images(ds) == {7}
    out = capsys.readouterr().out
    assert ("RefCOCODataset refcoco+ (unc) train: left out 2 refs (4 "
            "sentences) on 1 images that are in the evaluation splits "
            "refcoco/val (exclude_images_of); 1 samples remain") in out
    g = GRefCOCODataset(
        planted, split='train', mode='test', exclude_images_of='refcoco+')
    assert _images(g) == {13} and g.excluded == dict(
        refs=1, sentences=1, images=1)
    with pytest.raises(ValueError, match='unknown dataset'):
        RefCOCODataset(planted, split='train', exclude_images_of='coco')
