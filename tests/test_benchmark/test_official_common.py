# Copyright (c) mmris contributors. All rights reserved.
"""mmris/benchmark/official: import isolation of the official clone, the
method lookup and argument errors (no official code: a fake repository
written here)."""
import sys

import pytest

from mmris.benchmark import official
from mmris.benchmark.official import common, etris


def test_official_imports_are_isolated(tmp_path):
    pkg = tmp_path / 'model'
    pkg.mkdir()
    (pkg / '__init__.py').write_text('from loguru import logger\nVALUE = 41\n')
    had_loguru = 'loguru' in sys.modules
    with common.official_imports(str(tmp_path)):
        import model  # noqa: F401  (the fake official package)
        assert model.VALUE == 41
        assert 'loguru' in sys.modules
    assert 'model' not in sys.modules
    assert str(tmp_path) not in sys.path
    assert ('loguru' in sys.modules) == had_loguru
    with pytest.raises(FileNotFoundError, match='is not a folder'):
        with common.official_imports(str(tmp_path / 'missing')):
            pass


def test_random_clip_state_rejects_unknown_arch():
    with pytest.raises(KeyError, match="unknown CLIP architecture 'ViT-X'"):
        etris.random_clip_state(None, 'ViT-X', 17)


def test_unknown_method_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown method 'cris'"):
        official.method_module('cris')
    assert official.method_module('etris') is etris
    assert official.method_module('etris').DEFAULT_YAML.endswith('.yaml')
