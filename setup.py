# Copyright (c) mmris contributors. All rights reserved.
"""Install mmris.

``pip install -e .`` (development) or ``python -m build --wheel`` /
``pip wheel --no-deps .`` (a wheel). As in MMSegmentation and MMPretrain,
``configs/``, ``tools/`` and ``model-index.yml`` go into the wheel under
``mmris/.mim/`` (``add_mim_extension``), so that ``mim train mmris CONFIG``
and ``Config.fromfile`` of a shipped config work from an installed wheel.

Install requirements are ranges (``requirements/runtime.txt``); the exact
versions CI and ``tools/setup_env.sh`` install are
``requirements/constraints.txt``.
"""
import os
import os.path as osp
import platform
import re
import shutil
import sys
import warnings
from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_version() -> str:
    with open(osp.join(HERE, 'mmris', 'version.py')) as f:
        text = f.read()
    return re.search(r"__version__ = '([^']+)'", text).group(1)


def read_requirements(name: str) -> list:
    """Requirement lines of ``requirements/<name>`` (comments, options and
    ``-r`` / ``-c`` lines dropped)."""
    with open(osp.join(HERE, 'requirements', name)) as f:
        lines = f.read().splitlines()
    return [
        line.split('#')[0].strip() for line in lines
        if line.split('#')[0].strip() and not line.strip().startswith('-')
    ]


def add_mim_extension():
    """Put ``configs``, ``tools`` and ``model-index.yml`` into
    ``mmris/.mim`` (as MMSegmentation's and MMPretrain's setup.py do).

    Symbolic links for an editable install (``develop``,
    ``editable_wheel``), copies for a wheel or an sdist; nothing for other
    commands.
    """
    if 'develop' in sys.argv or 'editable_wheel' in sys.argv:
        # an editable install: links (copies on Windows)
        mode = 'copy' if platform.system() == 'Windows' else 'symlink'
    elif any(cmd in sys.argv for cmd in ('sdist', 'bdist_wheel')):
        mode = 'copy'
    else:
        return
    filenames = ['tools', 'configs', 'model-index.yml']
    mim_path = osp.join(HERE, 'mmris', '.mim')
    os.makedirs(mim_path, exist_ok=True)
    for filename in filenames:
        src = osp.join(HERE, filename)
        tar = osp.join(mim_path, filename)
        if not osp.exists(src):
            continue
        if osp.isfile(tar) or osp.islink(tar):
            os.remove(tar)
        elif osp.isdir(tar):
            shutil.rmtree(tar)
        if mode == 'symlink':
            try:
                os.symlink(osp.relpath(src, osp.dirname(tar)), tar)
                continue
            except OSError:
                warnings.warn(f'Failed to link {src}; copying it instead')
        if osp.isfile(src):
            shutil.copyfile(src, tar)
        else:
            shutil.copytree(
                src,
                tar,
                ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))


if __name__ == '__main__':
    add_mim_extension()
    with open(osp.join(HERE, 'README.md'), encoding='utf-8') as f:
        long_description = f.read()
    setup(
        name='mmris',
        version=read_version(),
        description='Parameter-efficient referring image segmentation '
        '(ETRIS, BarLeRIa, DETRIS) for OpenMMLab',
        long_description=long_description,
        long_description_content_type='text/markdown',
        keywords='referring image segmentation, parameter-efficient, '
        'OpenMMLab, MMSegmentation, CLIP, DINOv2, ONNX',
        license='Apache License 2.0',
        classifiers=[
            'Development Status :: 3 - Alpha',
            'License :: OSI Approved :: Apache Software License',
            'Operating System :: OS Independent',
            'Programming Language :: Python :: 3',
            'Programming Language :: Python :: 3.9',
            'Programming Language :: Python :: 3.10',
            'Programming Language :: Python :: 3.11',
            'Topic :: Scientific/Engineering :: Artificial Intelligence',
        ],
        packages=find_packages(
            exclude=('configs', 'tools', 'tests', 'tests.*', 'demo')),
        include_package_data=True,
        python_requires='>=3.9',
        install_requires=read_requirements('runtime.txt'),
        extras_require=dict(
            tests=read_requirements('tests.txt'),
            deploy=read_requirements('deploy.txt'),
            lint=read_requirements('lint.txt'),
            optional=read_requirements('optional.txt')),
        zip_safe=False)
