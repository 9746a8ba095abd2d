# Copyright (c) mmris contributors. All rights reserved.
"""Short fixed-seed fuzz campaigns of the annotation loaders (REFER refs
pickle, gRefCOCO refs JSON, COCO instances.json) through the datasets; the
long campaign: ``python tools/misc/fuzz_loaders.py --targets refer_pickle
grefcoco_json instances_json --count 100000``."""
import os.path as osp
import tempfile

import pytest

from mmris.testing import fuzz

#: Inputs per target in the default suite.
SHORT_RUN = 100


def test_seeds_load_cleanly():
    """Every seed file loads (so that refusals come from the mutations) and
    the seeds hold what the mutations should reach: Python 2 byte strings,
    a latin-1 sentence, RLE objects and a crowd region."""
    import json
    import warnings
    with tempfile.TemporaryDirectory() as folder, \
            warnings.catch_warnings():
        warnings.simplefilter('ignore')  # the latin-1 and crowd warnings
        for name in ('refer_pickle', 'grefcoco_json', 'instances_json'):
            target = fuzz.get_target(name)
            seeds = fuzz._resolve(target.seeds)(folder)
            load = fuzz._resolve(target.load)
            for data in seeds:
                path = osp.join(folder, f'input{target.suffix}')
                with open(path, 'wb') as f:
                    f.write(data)
                load(path)  # no exception
            if name == 'refer_pickle':
                assert b"S'sent'" in seeds[1] and b'gar\xe7on' in seeds[2]
            if name == 'instances_json':
                anns = json.loads(seeds[0])['annotations']
                assert any(a['iscrowd'] for a in anns)
                assert any(
                    isinstance(a['segmentation'], dict)
                    and isinstance(a['segmentation']['counts'], str)
                    for a in anns)


@pytest.mark.parametrize('target',
                         ['refer_pickle', 'grefcoco_json', 'instances_json'])
def test_short_campaign(target, tmp_path):
    report = fuzz.run_fuzz(
        target, SHORT_RUN, seed=0, time_limit=60, save_dir=str(tmp_path))
    assert report.inputs == SHORT_RUN
    assert not report.failures, report.failures[:3]
    assert report.loaded > 0 and report.refused > SHORT_RUN // 2
