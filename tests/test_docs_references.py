# Copyright (c) mmris contributors. All rights reserved.
"""Every reference in the repository can be followed by a user: no citation
of design notes that are not part of it."""
import os
import os.path as osp
import re

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SKIP_DIRS = {
    '.git', '.venv', 'data', 'work_dirs', '__pycache__', 'build', 'dist'
}
SUFFIXES = ('.py', '.md', '.yaml', '.yml', '.sh', '.txt', '.cfg')
# internal notes of the team that are not shipped with mmris
INTERNAL = re.compile(r'RIS-SPEC|PERF-ANCHORS|STACK\.md|CONVENTIONS\.md|'
                      r'shared/spec|official-keys/')


def test_no_reference_to_documents_users_do_not_have():
    hits = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [
            d for d in dirs
            if d not in SKIP_DIRS and not d.endswith('.egg-info')
        ]
        for name in files:
            if not name.endswith(SUFFIXES) or name == osp.basename(__file__):
                continue
            path = osp.join(folder, name)
            with open(path, encoding='utf-8', errors='replace') as f:
                for num, line in enumerate(f, 1):
                    if INTERNAL.search(line):
                        hits.append(f'{osp.relpath(path, ROOT)}:{num}: '
                                    f'{line.strip()[:100]}')
    assert not hits, '\n'.join(hits)


def _commands(text):
    """Shell commands of a markdown text, continuation lines joined."""
    lines, current = [], ''
    for line in text.splitlines():
        current += line.rstrip('\\').strip() + ' '
        if not line.rstrip().endswith('\\'):
            lines.append(current.strip())
            current = ''
    return lines


def test_documented_paper_training_commands_name_the_pretrained_files():
    docs = [osp.join(ROOT, 'README.md')] + [
        osp.join(ROOT, 'configs', m, 'README.md')
        for m in ('etris', 'barleria', 'detris')
    ]
    checked = 0
    for doc in docs:
        for cmd in _commands(open(doc).read()):
            train = re.search(
                r'(tools/train\.py|tools/dist_train\.sh) '
                r'configs/(etris|barleria|detris)/', cmd)
            if not train:
                continue
            checked += 1
            assert ('model.backbone.visual.pretrained=' in cmd
                    and 'model.backbone.text.pretrained='
                    in cmd), (f'{osp.relpath(doc, ROOT)}: {cmd}')
    assert checked >= 5
