# Copyright (c) mmris contributors. All rights reserved.
"""The launch scripts find the checkout's .venv in a fresh shell."""
import os
import os.path as osp
import subprocess

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _python_of(env):
    proc = subprocess.run(
        ['bash', '-c', 'source tools/find_python.sh && echo "$PYTHON"'],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True)
    return proc.stdout.strip()


@pytest.mark.slow
def test_fresh_shell_uses_checkout_venv():
    venv_python = osp.join(ROOT, '.venv', 'bin', 'python')
    assert osp.isfile(venv_python)  # made by tools/setup_env.sh
    # a new login shell: no venv activated, no PYTHON
    env = {'PATH': '/usr/bin:/bin', 'HOME': os.environ.get('HOME', '/root')}
    assert _python_of(env) == venv_python
    # the chosen interpreter imports mmris and torch
    proc = subprocess.run([_python_of(env), '-c', 'import mmris, torch'],
                          env=env,
                          capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_explicit_choices_win(tmp_path):
    env = {'PATH': '/usr/bin:/bin', 'PYTHON': '/opt/py/bin/python3'}
    assert _python_of(env) == '/opt/py/bin/python3'
    fake_venv = tmp_path / 'venv'
    (fake_venv / 'bin').mkdir(parents=True)
    (fake_venv / 'bin' / 'python').write_text('#!/bin/sh\n')
    (fake_venv / 'bin' / 'python').chmod(0o755)
    env = {'PATH': '/usr/bin:/bin', 'VIRTUAL_ENV': str(fake_venv)}
    assert _python_of(env) == str(fake_venv / 'bin' / 'python')


def test_launchers_use_it():
    for name in ('dist_train.sh', 'dist_test.sh', 'slurm_train.sh',
                 'slurm_test.sh'):
        text = open(osp.join(ROOT, 'tools', name)).read()
        assert 'find_python.sh' in text and '"$PYTHON"' in text, name
        assert 'torch.distributed.launch' not in text, name
