# Copyright (c) mmris contributors. All rights reserved.
"""tools/analysis_tools/benchmark_suite.sh: the commands it runs (dry run)."""
import os
import os.path as osp
import subprocess

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(ROOT, 'tools', 'analysis_tools', 'benchmark_suite.sh')


def test_dry_run_lists_the_paper_configs(tmp_path):
    env = dict(os.environ, DRY_RUN='1')
    proc = subprocess.run(
        ['bash', SCRIPT, str(tmp_path / 'out'), '--device', 'cpu'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 4 * 3  # 4 configs x (fp16, bf16 train + infer)
    configs = {line.split()[2] for line in lines}
    assert {osp.relpath(c, ROOT) for c in configs} == {
        'configs/etris/etris_vit-b16_refcoco.py',
        'configs/barleria/barleria_vit-b16_refcoco.py',
        'configs/detris/detris-b_refcoco.py',
        'configs/detris/detris-l_refcoco.py'
    }
    assert all(osp.exists(c) for c in configs)
    train = [line for line in lines if '--mode train' in line]
    assert len(train) == 8
    assert all('--memory-at-batch 4 32 --device cpu >' in line
               for line in train)
    assert not (tmp_path / 'out').exists()  # a dry run writes nothing
