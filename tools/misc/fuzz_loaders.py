# Copyright (c) mmris contributors. All rights reserved.
"""Fuzz the loaders of the files users hand over (checkpoints, TorchScript
archives, REFER pickles, gRefCOCO JSON, instances.json, images).

Every input must load or be refused with the loader's named error; a
crash, a hang, an unexpected exception or an allocation past the memory cap
is a failure, saved (input + JSON) under ``--out`` for reproduction.

Example (the long campaign of the README, about 12 minutes per 100,000
inputs of a checkpoint target on one core)::

    python tools/misc/fuzz_loaders.py --targets all --count 100000 \
        --out work_dirs/fuzz
"""
import argparse
import json
import os.path as osp
import runpy
import sys


def load_tool_env() -> dict:
    """``mmris/utils/tool_env.py`` run by path, before any heavy import:
    ``--help`` stays fast and a Python without the project's packages gets
    one line (or the checkout's ``.venv``)."""
    folder = osp.dirname(osp.abspath(__file__))
    while osp.dirname(folder) != folder:
        path = osp.join(folder, 'mmris', 'utils', 'tool_env.py')
        if osp.isfile(path):
            return runpy.run_path(path)
        folder = osp.dirname(folder)
    from mmris.utils import tool_env  # an installed mmris
    return vars(tool_env)


TOOL_ENV = load_tool_env()
TOOL_ENV['ensure_environment'](__file__)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Fuzz mmris file loaders (mmris.testing.fuzz).')
    parser.add_argument(
        '--targets',
        nargs='+',
        default=['all'],
        help='target names (see --list), or "all"')
    parser.add_argument(
        '--count',
        type=int,
        default=10000,
        help='inputs per target (default 10000)')
    parser.add_argument(
        '--seed', type=int, default=0, help='campaign seed (default 0)')
    parser.add_argument(
        '--start', type=int, default=0, help='first input index (default 0)')
    parser.add_argument(
        '--time-limit',
        type=float,
        default=20.0,
        help='seconds one input may take (default 20)')
    parser.add_argument(
        '--memory-mb',
        type=int,
        default=1024,
        help='memory a worker may allocate beyond its '
        'imports, in MiB (default 1024)')
    parser.add_argument(
        '--out',
        default=None,
        help='folder for failing inputs and report.json')
    parser.add_argument(
        '--list', action='store_true', help='list the targets and exit')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmris.testing.fuzz import TARGETS, get_target, run_fuzz
    get_target('checkpoint')  # registers the built-in targets
    if args.list:
        for name, target in sorted(TARGETS.items()):
            print(f'{name}: {target.load}')
        return 0
    names = sorted(TARGETS) if args.targets == ['all'] else args.targets
    reports = []
    for name in names:
        print(
            f'fuzzing {name}: {args.count} inputs from index '
            f'{args.start}, seed {args.seed}',
            flush=True)
        report = run_fuzz(
            name,
            args.count,
            seed=args.seed,
            start=args.start,
            time_limit=args.time_limit,
            memory_limit_mb=args.memory_mb,
            save_dir=args.out,
            log=lambda line: print(line, flush=True))
        print(report.summary(), flush=True)
        reports.append(report)
    if args.out:
        import os
        os.makedirs(args.out, exist_ok=True)
        with open(osp.join(args.out, 'report.json'), 'w') as f:
            json.dump([
                dict(
                    target=r.target,
                    inputs=r.inputs,
                    loaded=r.loaded,
                    refused=r.refused,
                    crashes=r.crashes,
                    hangs=r.hangs,
                    failures=len(r.failures),
                    seconds=round(r.seconds, 1),
                    seed=args.seed,
                    start=args.start) for r in reports
            ],
                      f,
                      indent=1)
    return 1 if any(r.failures for r in reports) else 0


if __name__ == '__main__':
    sys.exit(main())
