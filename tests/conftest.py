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
