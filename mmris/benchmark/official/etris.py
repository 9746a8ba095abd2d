# Copyright (c) mmris contributors. All rights reserved.
"""The official ETRIS model (kkakkkka/ETRIS) with random weights.

Its pretrained-file loading (``torch.jit.load`` of the OpenAI CLIP archive
in model/segmenter.py) is answered with the state dict of the repository's
own randomly initialised ``CLIP`` module (model/clip.py); ``loguru`` is
stood in for when it is not installed.
"""
import importlib
import os.path as osp
from typing import Dict, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from .common import official_imports

DEFAULT_YAML = 'config/refcoco/bridge_v16.yaml'

# OpenAI CLIP hyper-parameters (openai/CLIP, clip/clip.py _MODELS), in the
# argument order of the official ``CLIP`` class of kkakkkka/ETRIS,
# model/clip.py: embed_dim, image_resolution, vision_layers, vision_width,
# vision_patch_size, context_length, vocab_size, transformer_width,
# transformer_heads, transformer_layers.
CLIP_ARCHS = {
    'ViT-B-16': (512, 224, 12, 768, 16, 77, 49408, 512, 8, 12),
    'RN50': (1024, 224, (3, 4, 6, 3), 64, None, 77, 49408, 512, 8, 12),
    'RN101': (512, 224, (3, 4, 23, 3), 64, None, 77, 49408, 512, 8, 12),
}


class RandomArchive:
    """Stands in for ``torch.jit.load(<CLIP archive>)``: ``state_dict()``
    returns the tensors of a freshly initialised official ``CLIP``."""

    def __init__(self, state: Dict[str, Tensor]):
        self._state = state

    def eval(self) -> 'RandomArchive':
        return self

    def state_dict(self) -> Dict[str, Tensor]:
        return dict(self._state)


def random_clip_state(clip_module, arch: str, txt_length: int) -> dict:
    """The state dict of a random official ``CLIP`` of ``arch``, with the
    scalar entries of an OpenAI archive."""
    if arch not in CLIP_ARCHS:
        raise KeyError(f'unknown CLIP architecture {arch!r} in the official '
                       f'config; expected one of {sorted(CLIP_ARCHS)}')
    (embed, res, layers, width, patch, ctx, vocab, t_width, t_heads,
     t_layers) = CLIP_ARCHS[arch]
    clip = clip_module.CLIP(embed, res, layers, width, patch, ctx, txt_length,
                            vocab, t_width, t_heads, t_layers)
    state = clip.state_dict()
    state['input_resolution'] = torch.tensor(res)
    state['context_length'] = torch.tensor(ctx)
    state['vocab_size'] = torch.tensor(vocab)
    return state


def build(repo: str, yaml_file: str) -> Tuple[nn.Module, dict]:
    """The official ETRIS model of ``repo`` with random weights.

    Returns:
        tuple: The model (fp32, official freezing) and its yaml settings.
    """
    with official_imports(repo):
        config = importlib.import_module('utils.config')
        cfg = config.load_cfg_from_cfg_file(osp.join(repo, yaml_file))
        clip_module = importlib.import_module('model.clip')
        segmenter = importlib.import_module('model.segmenter')
        arch = osp.splitext(osp.basename(cfg.clip_pretrain))[0]
        state = random_clip_state(clip_module, arch, cfg.word_len)
        real_load = torch.jit.load
        torch.jit.load = lambda *a, **k: RandomArchive(state)
        try:
            model = segmenter.ETRIS(cfg)
        finally:
            torch.jit.load = real_load
    return model.float(), dict(cfg)


def logits(model: nn.Module, img: Tensor, word: Tensor) -> Tensor:
    """Test-mode logits: the official forward without a mask."""
    return model(img, word)


def loss(model: nn.Module, img: Tensor, word: Tensor, mask: Tensor) -> Tensor:
    """The training loss (the official forward resizes ``mask`` itself)."""
    return model(img, word, mask)[2]
