# Copyright (c) mmris contributors. All rights reserved.
"""Shared pytest fixtures."""
import pytest


@pytest.fixture(scope='session')
def synthetic_root(tmp_path_factory):
    """A small synthetic REFER root, generated once per test session.

    Holds ``refcoco`` (unc), ``refcoco+`` (unc), ``refcocog`` (umd and
    google) sharing 16 images under ``images/train2014``.
    """
    import mmris  # noqa: F401
    from mmris.testing.synthetic import make_synthetic_refer_all
    root = tmp_path_factory.mktemp('synthetic_refer')
    make_synthetic_refer_all(str(root), seed=0, small=True)
    return str(root)


def pytest_addoption(parser):
    parser.addoption(
        '--all',
        action='store_true',
        default=False,
        help='also run the tests marked slow (heavy end-to-end runs; CI '
        'runs them through `tools/run_tests.sh --all`)')
    parser.addoption(
        '--slow-only',
        action='store_true',
        default=False,
        help='run only the tests marked slow')


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'slow: heavy end-to-end test, skipped unless --all or '
        '--slow-only is given')


def pytest_collection_modifyitems(config, items):
    if config.getoption('--slow-only'):
        keep = [item for item in items if 'slow' in item.keywords]
        config.hook.pytest_deselected(
            items=[item for item in items if 'slow' not in item.keywords])
        items[:] = keep
        return
    if config.getoption('--all'):
        return
    skip = pytest.mark.skip(
        reason='slow end-to-end test: run with `bash tools/run_tests.sh '
        '--all` (CI does)')
    for item in items:
        if 'slow' in item.keywords:
            item.add_marker(skip)
