# Copyright (c) mmris contributors. All rights reserved.
"""Reading the pretrained encoder files a user points a config at.

OpenAI's CLIP files (``ViT-B-16.pt``, ``RN50.pt``, ``RN101.pt``) are
TorchScript archives; ``openai/CLIP`` (clip/clip.py) loads them with
``torch.jit.load``, which runs code of the archive, so mmris reads their
weights as data (:func:`~.reader.read_torchscript_weights`). Plain state-dict
files (Meta's DINOv2 ``dinov2_vit*14_reg4_pretrain.pth``, a CLIP state dict
saved by ``torch.save``) go through :func:`~.loading.safe_torch_load`.
"""
import os.path as osp
from typing import Dict, Sequence

from torch import Tensor

from .errors import CorruptCheckpointError
from .loading import safe_torch_load
from .reader import is_torchscript_archive, read_torchscript_weights

__all__ = ['load_clip_state_dict', 'load_state_dict_file', 'sub_state_dict']

#: Scalars of OpenAI's archives that are not weights.
_CLIP_SCALAR_KEYS = ('input_resolution', 'context_length', 'vocab_size')


def load_state_dict_file(
    path: str, what: str, nested: Sequence[str] = ('state_dict', 'model')
) -> Dict[str, Tensor]:
    """The state dict of a ``torch.save`` file, taken out of a
    ``{'state_dict': ...}`` / ``{'model': ...}`` wrapper if there is one.

    Args:
        path (str): Local file.
        what (str): What the file should be, for the not-found message
            (e.g. 'a Meta state dict such as dinov2_vitb14_reg4_pretrain.pth').
        nested (Sequence[str]): Wrapper keys to look into.

    Raises:
        FileNotFoundError: Naming ``path`` and ``what``.
        CorruptCheckpointError: The file holds no dict of named tensors.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'"{path}" not found; expected {what}.')
    state = safe_torch_load(path, map_location='cpu')
    for key in nested:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(
            isinstance(k, str) for k in state):
        raise CorruptCheckpointError(
            f'"{path}" does not hold a state dict (a dict of named '
            f'tensors): it holds a {type(state).__name__}.')
    return state


def load_clip_state_dict(path: str) -> Dict[str, Tensor]:
    """An OpenAI CLIP checkpoint (TorchScript archive or state dict) as fp32
    tensors under the OpenAI key names (``visual.*``, ``transformer.*``,
    ``token_embedding.weight``, ...); the archive's scalar entries
    (``input_resolution``, ``context_length``, ``vocab_size``) are dropped.

    Args:
        path (str): Local file.
    """
    what = ('an OpenAI archive such as ViT-B-16.pt / RN50.pt / RN101.pt or '
            'a state-dict file')
    if osp.isfile(path) and is_torchscript_archive(path):
        state = read_torchscript_weights(path)
    else:
        state = load_state_dict_file(path, what, nested=('state_dict', ))
    # one fp32 copy per tensor, however many keys refer to it
    converted: Dict[int, Tensor] = {}
    out = {}
    for key, value in state.items():
        if key in _CLIP_SCALAR_KEYS:
            continue
        if isinstance(value, Tensor) and value.is_floating_point():
            if id(value) not in converted:
                converted[id(value)] = value.float()
            value = converted[id(value)]
        out[key] = value
    return out


def sub_state_dict(state: Dict[str, Tensor], prefix: str) -> Dict[str, Tensor]:
    """The entries under ``prefix`` with the prefix removed."""
    return {
        k[len(prefix):]: v
        for k, v in state.items() if k.startswith(prefix)
    }
