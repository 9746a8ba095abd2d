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


def test_official_imports_are_isolated(tmp_path):
    tool = _tool()
    pkg = tmp_path / 'model'
    pkg.mkdir()
    (pkg / '__init__.py').write_text(
        'from loguru import logger\nVALUE = 41\n')
    had_loguru = 'loguru' in sys.modules
    with tool.official_imports(str(tmp_path)):
        import model  # noqa: F401  (the fake official package)
        assert model.VALUE == 41
        assert 'loguru' in sys.modules
    assert 'model' not in sys.modules
    assert str(tmp_path) not in sys.path
    assert ('loguru' in sys.modules) == had_loguru
    with pytest.raises(FileNotFoundError, match='is not a folder'):
        with tool.official_imports(str(tmp_path / 'missing')):
            pass


def test_random_clip_state_rejects_unknown_arch():
    tool = _tool()
    with pytest.raises(KeyError, match="unknown CLIP architecture 'ViT-X'"):
        tool._random_clip_state(None, 'ViT-X', 17)


def test_unsupported_method_is_a_clear_error(tmp_path):
    proc = subprocess.run([
        sys.executable, TOOL, 'detris', '--official-repo',
        str(tmp_path), '--config', 'x.py'
    ], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert 'detris: not supported yet (supported: [\'etris\'])' in proc.stderr
