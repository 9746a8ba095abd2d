# Copyright (c) mmris contributors. All rights reserved.
"""Install mmris: ``pip install -e .`` (the pins live in requirements/)."""
import os.path as osp
import re

from setuptools import find_packages, setup


def read_version() -> str:
    text = open(osp.join('mmris', 'version.py')).read()
    return re.search(r"__version__ = '([^']+)'", text).group(1)


def read_requirements(name: str) -> list:
    lines = open(osp.join('requirements', name)).read().splitlines()
    return [
        line.split('#')[0].strip() for line in lines
        if line.split('#')[0].strip() and not line.startswith('-')
    ]


setup(
    name='mmris',
    version=read_version(),
    description='Parameter-efficient referring image segmentation '
    '(ETRIS, BarLeRIa, DETRIS) for OpenMMLab',
    long_description=open('README.md').read() if osp.exists('README.md')
    else '',
    long_description_content_type='text/markdown',
    license='Apache License 2.0',
    packages=find_packages(exclude=('configs', 'tools', 'tests')),
    python_requires='>=3.9',
    install_requires=read_requirements('runtime.txt'),
    extras_require=dict(
        tests=read_requirements('tests.txt'),
        optional=read_requirements('optional.txt')),
    zip_safe=False)
