# Copyright (c) mmris contributors. All rights reserved.
"""The models of the benchmark suite and where their official clones are."""
import os
import os.path as osp
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

__all__ = [
    'ModelSpec', 'MODEL_SPECS', 'DEFAULT_MODELS', 'OFFICIAL_CLONES',
    'PRECISION', 'find_clone', 'official_clones'
]


@dataclass(frozen=True)
class ModelSpec:
    """A model of the suite.

    Attributes:
        title (str): Name in the table.
        config (str): mmris config, relative to the repository root.
        method (str): Official method (builder module in
            :mod:`mmris.benchmark.official`).
        yaml (str, optional): Official config file inside the clone; None
            uses the builder's ``DEFAULT_YAML``.
    """
    title: str
    config: str
    method: str
    yaml: Optional[str] = None


MODEL_SPECS: Dict[str, ModelSpec] = {
    'etris-vit-b16':
    ModelSpec('ETRIS ViT-B/16 416', 'configs/etris/etris_vit-b16_refcoco.py',
              'etris', 'config/refcoco/bridge_v16.yaml'),
    'barleria-vit-b16':
    ModelSpec('BarLeRIa ViT-B/16 416',
              'configs/barleria/barleria_vit-b16_refcoco.py', 'barleria',
              'config/refcoco/barleria_v16.yaml'),
    'detris-b':
    ModelSpec('DETRIS-B 448', 'configs/detris/detris-b_refcoco.py', 'detris',
              'config/refcoco/DETRIS_base.yaml'),
    'detris-l':
    ModelSpec('DETRIS-L 448', 'configs/detris/detris-l_refcoco.py', 'detris',
              'config/refcoco/DETRIS_large.yaml'),
}
DEFAULT_MODELS = ('etris-vit-b16', 'detris-b', 'detris-l')

#: Folder name of each method's clone under ``--official-root`` (matched
#: ignoring case) and its GitHub repository.
OFFICIAL_CLONES = {
    'etris': ('ETRIS', 'kkakkkka/ETRIS'),
    'barleria': ('BarLeRIa', 'NastrondAd/BarLeRIa'),
    'detris': ('DETRIS', 'jiaqihuang01/DETRIS'),
}

#: The precision of each (side, mode) run.
PRECISION = {
    ('mmris', 'train'): 'bf16 autocast (AutocastOptimWrapper)',
    ('mmris', 'infer'): 'bf16 autocast',
    ('official', 'train'): 'fp16 autocast + GradScaler, cuDNN off',
    ('official', 'infer'): 'bf16 autocast, cuDNN off',
}


def _subfolder(folder: str, name: str) -> Optional[str]:
    if not osp.isdir(folder):
        return None
    for entry in sorted(os.listdir(folder)):
        path = osp.join(folder, entry)
        if entry.lower() == name.lower() and osp.isdir(path):
            return path
    return None


def find_clone(root: str, method: str) -> Optional[str]:
    """The clone of ``method``'s repository in ``root``: the folder
    ``root/NAME`` or ``root/OWNER/NAME`` of its GitHub repository (e.g.
    ``ETRIS`` or ``kkakkkka/ETRIS``), names matched ignoring case; None when
    there is none."""
    name, github = OFFICIAL_CLONES[method]
    owner = _subfolder(root, github.split('/')[0])
    return _subfolder(root, name) or (owner and _subfolder(owner, name))


def official_clones(root: Optional[str], methods: List[str],
                    log: Callable[[str], None]) -> Dict[str, Optional[str]]:
    """Clone name -> path (None: missing) for ``methods`` in ``root``,
    reported through ``log``; empty when no root is given."""
    if not root:
        log('no --official-root: only the mmris models run')
        return {}
    found = {}
    for method in dict.fromkeys(methods):
        name, github = OFFICIAL_CLONES[method]
        path = find_clone(root, method)
        found[name] = path
        log(f'official {name}: ' +
            (f'found {path}' if path else
             f'MISSING (no folder {name} or {github} in {root}; clone '
             f'https://github.com/{github} there)'))
    return found
