# Copyright (c) mmris contributors. All rights reserved.
"""``model-index.yml`` and the metafiles use MMSegmentation's keys and
point at files that exist."""
import glob
import os.path as osp

import pytest
import yaml

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _load(path):
    with open(osp.join(ROOT, path)) as f:
        return yaml.safe_load(f)


def test_index_imports_every_metafile():
    imports = _load('model-index.yml')['Import']
    found = sorted(
        osp.relpath(p, ROOT)
        for p in glob.glob(osp.join(ROOT, 'configs', '*', 'metafile.yaml')))
    assert sorted(imports) == found and found


@pytest.mark.parametrize('metafile', _load('model-index.yml')['Import'])
def test_metafile_keys(metafile):
    data = _load(metafile)
    collections = {c['Name']: c for c in data['Collections']}
    for c in collections.values():
        assert {'Name', 'Paper', 'README', 'Metadata'} <= set(c), c['Name']
        assert osp.isfile(osp.join(ROOT, c['README']))
        assert {'Title', 'URL'} <= set(c['Paper'])
    folder = osp.dirname(metafile)
    configs = {
        osp.relpath(p, ROOT)
        for p in glob.glob(osp.join(ROOT, folder, '*.py'))
    }
    listed = set()
    for model in data['Models']:
        name = model['Name']
        assert model['In Collection'] in collections, name
        assert osp.isfile(osp.join(ROOT, model['Config'])), name
        assert osp.splitext(osp.basename(model['Config']))[0] == name
        listed.add(model['Config'])
        meta = model['Metadata']
        for key in ('Training Data', 'Batch Size', 'Architecture',
                    'Training Resources'):
            assert key in meta, f'{metafile}: {name} lacks Metadata.{key}'
        assert isinstance(meta['Architecture'], list)
        assert 'Weights' in model
        results = model['Results']
        assert isinstance(results, list), name
        for result in results:
            assert {'Task', 'Dataset', 'Metrics'} <= set(result), name
            assert result['Task'] == 'Referring Image Segmentation'
    # every config of the method folder has its entry
    assert listed == configs, sorted(configs - listed)
