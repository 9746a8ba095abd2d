# Copyright (c) mmris contributors. All rights reserved.
"""mmris/utils/tool_env.py: the tools' environment, CPU threads and
checkpoint-argument rules."""
import glob
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
import torch

from mmris.utils import tool_env
from test_reliability._helpers import run_tool_inprocess

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'quickstart', 'etris-tiny_synthetic.py')
TOOL_ENV = osp.join(ROOT, 'mmris', 'utils', 'tool_env.py')
TOOLS = sorted(
    p
    for p in glob.glob(osp.join(ROOT, 'tools', '**', '*.py'), recursive=True)
    if not osp.exists(osp.join(osp.dirname(p), '__init__.py')))
#: Tools whose --help imports nothing heavy (the analysis tools that share
#: code with each other, and check_refer_root, import at module level).
FAST_HELP = ('tools/train.py', 'tools/test.py', 'tools/demo.py',
             'tools/webui.py', 'tools/analysis_tools/count_params.py',
             'tools/analysis_tools/union_baseline.py',
             'tools/analysis_tools/browse_dataset.py',
             'tools/dataset_converters/make_synthetic_refer.py',
             'tools/model_converters/ris2mmris.py',
             'tools/misc/print_config.py')


def test_thread_rule():
    choose = tool_env.choose_cpu_threads
    # the user's choice wins
    assert choose({'OMP_NUM_THREADS': '3'}, lambda: 0.1,
                  2) == (3, 'OMP_NUM_THREADS=3 from the environment')
    for bad in ('0', '-1', 'two'):
        with pytest.raises(
                ValueError, match='OMP_NUM_THREADS must be a '
                'positive integer'):
            choose({'OMP_NUM_THREADS': bad}, lambda: 1.0, 2)
    # else the cores idle now, in [1, usable cores]
    for idle, expected in ((2.0, 2), (1.02, 1), (1.6, 2), (0.2, 1), (7.5, 2)):
        threads, why = choose({}, lambda idle=idle: idle, 2)
        assert threads == expected, idle
        assert why == (f'2 usable cores, {idle:.1f} idle now; set '
                       'OMP_NUM_THREADS to override')
    assert choose({}, lambda: None, 4)[0] == 4  # idleness unknown


def test_idle_cores_from_proc_stat_ticks():
    samples = iter([(100, 1000), (150, 1100)])  # 50 of 100 jiffies idle
    idle = tool_env.idle_cores(
        0.5, ticks=lambda: next(samples), sleep=lambda s: None, cpu_count=2)
    assert idle == pytest.approx(1.0)
    assert tool_env.idle_cores(
        0.0, ticks=lambda: (_ for _ in ()).throw(OSError())) is None
    assert 0 <= tool_env.idle_cores(0.05) <= os.cpu_count()


def test_setup_applies_and_says_it_once(capsys):
    before = torch.get_num_threads()
    environ = {}
    try:
        assert tool_env.setup_cpu_threads(
            'x.py', environ, idle=lambda: 1.2, cores=2) == 1
        assert environ['OMP_NUM_THREADS'] == '1'
        assert torch.get_num_threads() == 1
        out = capsys.readouterr().out
        assert out == ('[x.py] CPU threads: 1 (2 usable cores, 1.2 idle '
                       'now; set OMP_NUM_THREADS to override)\n')
        # other ranks of a distributed launch stay quiet
        tool_env.setup_cpu_threads(
            'x.py', {'RANK': '1'}, idle=lambda: 2.0, cores=2)
        assert capsys.readouterr().out == ''
    finally:
        torch.set_num_threads(before)


def test_tools_choose_threads_and_say_it(monkeypatch, capsys):
    """A real tool, without OMP_NUM_THREADS: one line, and torch runs with
    the count it names; every tool that computes calls the rule."""
    before = torch.get_num_threads()
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    try:
        run_tool_inprocess(
            osp.join(ROOT, 'tools', 'analysis_tools', 'count_params.py'),
            [CONFIG, '--json'], monkeypatch)
        out = capsys.readouterr().out
        lines = [line for line in out.splitlines() if 'CPU threads' in line]
        assert len(lines) == 1 and lines[0].startswith(
            '[count_params.py] CPU threads: '), out[:500]
        threads = int(lines[0].split(': ')[1].split()[0])
        assert torch.get_num_threads() == threads
        assert os.environ['OMP_NUM_THREADS'] == str(threads)
    finally:
        torch.set_num_threads(before)
    for path in TOOLS:
        source = open(path).read()
        rel = osp.relpath(path, ROOT)
        # onnx_demo.py runs without torch: it checks its own modules
        assert "TOOL_ENV['ensure_environment'](__file__" in source, rel
        if 'import torch' in source or 'import mmris' in source:
            # these read annotation files only (no tensor work)
            if rel not in ('tools/analysis_tools/dataset_overlap.py',
                           'tools/dataset_converters/check_refer_root.py',
                           'tools/dataset_converters/make_synthetic_refer.py',
                           'tools/misc/print_config.py'):
                assert "TOOL_ENV['setup_cpu_threads']" in source, rel


@pytest.mark.parametrize('tool', FAST_HELP)
def test_help_imports_nothing_heavy(tool):
    """``--help`` parses the arguments before importing torch or mmris."""
    script = textwrap.dedent(f'''
        import runpy, sys
        sys.argv = [{tool!r}, '--help']
        try:
            runpy.run_path({tool!r}, run_name='__main__')
        except SystemExit:
            pass
        print('HEAVY', sorted(m for m in ('torch', 'mmris', 'mmseg', 'cv2')
                              if m in sys.modules))
    ''')
    proc = subprocess.run([sys.executable, '-c', script],
                          cwd=ROOT,
                          capture_output=True,
                          text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'usage:' in proc.stdout
    assert proc.stdout.strip().endswith('HEAVY []'), proc.stdout[-300:]


def test_newest_checkpoint(tmp_path):
    assert tool_env.newest_checkpoint(str(tmp_path)) is None
    (tmp_path / 'best_mIoU.pth').write_bytes(b'')
    assert tool_env.newest_checkpoint(str(tmp_path)).endswith('best_mIoU.pth')
    for name in ('epoch_2.pth', 'epoch_10.pth', 'iter_99.pth'):
        (tmp_path / name).write_bytes(b'')
    assert tool_env.newest_checkpoint(str(tmp_path)).endswith('epoch_10.pth')
    # last_checkpoint names it (an absolute path, or a moved work dir)
    (tmp_path / 'last_checkpoint').write_text('/elsewhere/epoch_2.pth')
    assert tool_env.newest_checkpoint(str(tmp_path)) == str(tmp_path /
                                                            'epoch_2.pth')
    with pytest.raises(
            SystemExit,
            match=f'checkpoint {tmp_path} is a '
            'directory, not a checkpoint file: did you mean '):
        tool_env.check_checkpoint_path(str(tmp_path), 'x.py')
    with pytest.raises(SystemExit, match='x.py: checkpoint file not found'):
        tool_env.check_checkpoint_path(str(tmp_path / 'no.pth'), 'x.py')
    for ok in (None, 'none', 'None', str(tmp_path / 'epoch_2.pth')):
        tool_env.check_checkpoint_path(ok, 'x.py')


def test_missing_environment_reruns_in_venv_or_says_what_to_run(tmp_path):
    """Without the project's packages a tool re-runs itself with the
    checkout's .venv (saying so), or stops with one line."""
    tool = tmp_path / 'checkout' / 'tools' / 'fake.py'
    tool.parent.mkdir(parents=True)
    tool.write_text('')
    script = textwrap.dedent(f'''
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location('e', {TOOL_ENV!r})
        env = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(env)
        sys.argv = [{str(tool)!r}, '--flag']
        env.ensure_environment({str(tool)!r}, modules=('no_such_mod_x',))
        print('not reached')
    ''')
    env = {k: v for k, v in os.environ.items() if k != 'MMRIS_TOOL_REEXEC'}
    proc = subprocess.run([sys.executable, '-c', script],
                          capture_output=True,
                          text=True,
                          timeout=60,
                          env=env)
    assert proc.returncode == 1 and 'not reached' not in proc.stdout
    assert proc.stderr.strip().splitlines() == [
        f'fake.py: no_such_mod_x not installed for {sys.executable}: run '
        '`bash tools/setup_env.sh` in the checkout, then `source '
        '.venv/bin/activate`'
    ]
    # a .venv in the checkout: run again with it (a stand-in interpreter)
    venv_python = tmp_path / 'checkout' / '.venv' / 'bin' / 'python'
    venv_python.parent.mkdir(parents=True)
    venv_python.write_text('#!/bin/sh\necho "venv python $@"\n')
    venv_python.chmod(0o755)
    proc = subprocess.run([sys.executable, '-c', script],
                          capture_output=True,
                          text=True,
                          timeout=60,
                          env=env,
                          cwd=str(tmp_path / 'checkout'))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f'venv python {tool} --flag'
    assert 'no_such_mod_x not found' in proc.stderr
    assert 'running with .venv/bin/python' in proc.stderr
    # present modules: nothing happens
    tool_env.ensure_environment(str(tool), modules=('os', ))


def test_test_tool_names_a_checkpoint_directory_before_the_config_dump(
        tmp_path):
    work = tmp_path / 'quickstart'
    work.mkdir()
    (work / 'epoch_4.pth').write_bytes(b'')
    proc = subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools', 'test.py'), CONFIG,
        str(work)
    ],
                          cwd=ROOT,
                          capture_output=True,
                          text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert proc.stderr.strip() == (
        f'tools/test.py: checkpoint {work} is a directory, not a checkpoint '
        f'file: did you mean {work / "epoch_4.pth"}?')
    assert proc.stdout == ''  # no config dump, nothing else
