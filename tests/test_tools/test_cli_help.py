# Copyright (c) mmris contributors. All rights reserved.
"""Every argument of every command-line tool carries help text."""
import argparse
import glob
import os.path as osp
import runpy
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# Scripts only: modules of a package (a folder with __init__.py, such as
# a package of tools/) are imported by the scripts, not run.
TOOLS = sorted(
    p
    for p in glob.glob(osp.join(ROOT, 'tools', '**', '*.py'), recursive=True)
    if not osp.basename(p).startswith('_')
    and not osp.exists(osp.join(osp.dirname(p), '__init__.py')))


class _Captured(Exception):

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__()
        self.parser = parser


def _capture_parser(script: str, monkeypatch) -> argparse.ArgumentParser:
    """Run ``script`` as ``__main__`` until it parses its arguments."""

    def fake_parse_args(self, *args, **kwargs):
        raise _Captured(self)

    monkeypatch.setattr(argparse.ArgumentParser, 'parse_args', fake_parse_args)
    monkeypatch.setattr(sys, 'argv', [script])
    with pytest.raises(_Captured) as info:
        runpy.run_path(script, run_name='__main__')
    return info.value.parser


def test_tools_found():
    names = {osp.relpath(p, ROOT) for p in TOOLS}
    assert {
        'tools/test.py', 'tools/train.py', 'tools/analysis_tools/benchmark.py',
        'tools/analysis_tools/count_params.py'
    } <= names


@pytest.mark.parametrize(
    'script', TOOLS, ids=[osp.relpath(p, ROOT) for p in TOOLS])
def test_every_argument_has_help(script, monkeypatch):
    parser = _capture_parser(script, monkeypatch)
    undocumented = [
        '/'.join(action.option_strings) or action.dest
        for action in parser._actions if action.help != argparse.SUPPRESS
        and not (action.help or '').strip()
        # the launcher-injected rank flag of the OpenMMLab tools
        and action.dest != 'local_rank'
    ]
    assert not undocumented, (
        f'{osp.relpath(script, ROOT)}: arguments without help text: '
        f'{undocumented}')
