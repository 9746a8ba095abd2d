# Copyright (c) mmris contributors. All rights reserved.
"""mmris.benchmark.suite: the clone lookup and the comparisons (the whole
suite through its command line: tests/test_tools/test_benchmark_suite.py)."""
import pytest

from mmris.benchmark.suite import comparisons, find_clone, official_clones


def test_clone_lookup(tmp_path):
    (tmp_path / 'barleria').mkdir()
    (tmp_path / 'Kkakkkka' / 'ETRIS').mkdir(parents=True)
    (tmp_path / 'detris').write_text('a file, not a clone')
    assert find_clone(str(tmp_path), 'barleria') == str(tmp_path / 'barleria')
    assert find_clone(str(tmp_path),
                      'etris') == str(tmp_path / 'Kkakkkka' / 'ETRIS')
    assert find_clone(str(tmp_path), 'detris') is None
    lines = []
    found = official_clones(
        str(tmp_path), ['etris', 'detris', 'etris'], lines.append)
    assert found == {
        'ETRIS': str(tmp_path / 'Kkakkkka' / 'ETRIS'),
        'DETRIS': None
    }
    assert lines[0] == f'official ETRIS: found {tmp_path}/Kkakkkka/ETRIS'
    assert lines[1].startswith('official DETRIS: MISSING (no folder DETRIS '
                               f'or jiaqihuang01/DETRIS in {tmp_path}')
    assert official_clones(None, ['etris'], lines.append) == {}


def _run(side, status='ok', ms=None, peak=None, batch=2):
    return dict(
        model='m',
        side=side,
        mode='train',
        batch=batch,
        status=status,
        ms_per_step=ms,
        peak_gib=peak)


def test_comparisons_from_the_measured_numbers():
    runs = [
        _run('mmris', ms=10.0, peak=2.0),
        _run('official', ms=25.0, peak=5.0),
        _run('mmris', ms=10.0, peak=None, batch=4),  # CPU: no peak
        _run('official', ms=30.0, peak=None, batch=4),
        _run('mmris', ms=10.0, batch=8),
        _run('official', status='oom', batch=8),
        _run('mmris', status='failed', batch=16),
    ]
    comps = comparisons(runs)
    assert [(c['batch'], c['speedup'], c['memory_ratio']) for c in comps] == [
        (2, pytest.approx(2.5), pytest.approx(2.5)),
        (4, pytest.approx(3.0), None),
        (8, None, None),
        (16, None, None),
    ]
