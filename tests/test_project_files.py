# Copyright (c) mmris contributors. All rights reserved.
"""LICENSE, CITATION.cff, CHANGELOG.md and the requirement files say what
the code says (version, papers, licence, install requirements)."""
import os.path as osp
import re

import yaml

import mmris

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def read(*parts):
    with open(osp.join(ROOT, *parts), encoding='utf-8') as f:
        return f.read()


def test_license_is_the_apache_2_text():
    text = read('LICENSE')
    assert 'Apache License' in text and 'Version 2.0, January 2004' in text
    for section in ('1. Definitions.', '4. Redistribution.',
                    '9. Accepting Warranty or Additional Liability.',
                    'END OF TERMS AND CONDITIONS'):
        assert section in text, section
    assert len(text.split()) > 1500  # the whole text, not a summary


def _bibtex_titles():
    titles = {}
    for method in ('etris', 'barleria', 'detris'):
        readme = read('configs', method, 'README.md')
        bib = re.search(r'```bibtex\n(.*?)```', readme, re.S).group(1)
        title = re.search(r'title=\{(.*)\},', bib).group(1)
        titles[method] = re.sub(r'[{}]', '', title).lower()
    return titles


def test_citation_cites_mmris_and_the_three_papers():
    cff = yaml.safe_load(read('CITATION.cff'))
    assert cff['cff-version'] == '1.2.0'
    assert cff['version'] == mmris.__version__
    assert cff['license'] == 'Apache-2.0'
    refs = [' '.join(r['title'].split()).lower() for r in cff['references']]
    assert sorted(refs) == sorted(_bibtex_titles().values())
    for ref in cff['references']:
        assert ref['authors'] and ref['year'] in (2023, 2024, 2025)


def test_changelog_names_the_current_version_only():
    text = read('CHANGELOG.md')
    versions = set(re.findall(r'^## (\d+\.\d+\.\d+)', text, re.M))
    assert versions == {mmris.__version__}


def test_install_requirements_are_ranges_and_constraints_pin_them():
    runtime = [
        line.split('#')[0].strip()
        for line in read('requirements', 'runtime.txt').splitlines()
        if line.split('#')[0].strip()
    ]
    assert not [r for r in runtime if '==' in r]
    pins = {}
    for line in read('requirements', 'constraints.txt').splitlines():
        if line and not line.startswith('#'):
            name, version = line.split('==')
            pins[re.sub(r'[-_.]+', '-', name.lower())] = version
    for name in ('runtime.txt', 'tests.txt', 'deploy.txt', 'lint.txt'):
        for line in read('requirements', name).splitlines():
            req = line.split('#')[0].strip()
            if not req:
                continue
            pkg = re.split(r'[<>=!~;\[ ]', req)[0]
            assert re.sub(r'[-_.]+', '-', pkg.lower()) in pins, (name, pkg)
