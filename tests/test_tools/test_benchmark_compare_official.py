# Copyright (c) mmris contributors. All rights reserved.
"""tools/analysis_tools/compare_official.py: import isolation of the official
clone and argument errors (no official code: a fake repository written
here)."""
import importlib.util
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(ROOT, 'tools', 'analysis_tools', 'compare_official.py')


def _tool():
    spec = importlib.util.spec_from_file_location('_compare_official', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _official(name):
    _tool()  # puts tools/analysis_tools on sys.path
    return importlib.import_module(f'official.{name}')


def test_official_imports_are_isolated(tmp_path):
    common = _official('common')
    pkg = tmp_path / 'model'
    pkg.mkdir()
    (pkg / '__init__.py').write_text(
        'from loguru import logger\nVALUE = 41\n')
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
    etris = _official('etris')
    with pytest.raises(KeyError, match="unknown CLIP architecture 'ViT-X'"):
        etris.random_clip_state(None, 'ViT-X', 17)


def test_unknown_method_is_a_clear_error():
    official = _official('common') and sys.modules['official']
    with pytest.raises(ValueError, match="unknown method 'cris'"):
        official.method_module('cris')
    assert official.method_module('etris').DEFAULT_YAML.endswith('.yaml')


def test_time_interleaved_alternates_and_takes_medians(monkeypatch):
    tool = _tool()
    calls, clock = [], iter([0, 1, 1, 11, 11, 14, 14, 34, 34, 39, 39, 69])
    monkeypatch.setattr(tool.time, 'perf_counter',
                        lambda: next(clock) / 1000)
    medians = tool.time_interleaved(
        [lambda: calls.append('official'), lambda: calls.append('mmris')], 3)
    assert calls == ['official', 'mmris'] * 3
    # official took 1, 3, 5 ms; mmris 10, 20, 30 ms.
    assert medians == pytest.approx([3.0, 20.0])
