# Copyright (c) mmris contributors. All rights reserved.
"""The official DETRIS model (jiaqihuang01/DETRIS) with random weights.

Stand-ins (each only for what is missing or must not be read):

* ``torch.jit.load(cfg.clip_pretrain)`` (model/segmenter.py) is answered
  with the tensors of the repository's own randomly initialised ``CLIP``
  (model/clip.py, ViT-B/16 hyper-parameters; see :mod:`.etris`), and
  ``torch.load(cfg.dino_pretrain)`` with those of a randomly initialised
  DINOv2 of the shape of Meta's ``dinov2_vit{b,l}14_reg4_pretrain.pth``.
  Any other path is refused. Both are jittered (:func:`jitter`) so that
  the constant-initialised tensors (LayerScale, LayerNorm, biases, tokens)
  are not degenerate, as in a trained checkpoint
  (:func:`.common.pretrained_files`, :func:`.common.jitter`).
* xFormers: the official DINOv2 layers (model/dinov2/layers/attention.py,
  block.py, swiglu_ffn.py) use it when importable; the repository's own
  switch ``XFORMERS_DISABLED`` is set while they are imported, so the
  plain-PyTorch path runs (``softmax(q k^T / sqrt(d)) v``, the same math
  as ``xformers.ops.memory_efficient_attention``), and :func:`build`
  checks that it does.
* ``fvcore.nn.weight_init`` (imported, never used, by model/layers.py) is
  a module whose every function raises (:func:`unused_module`).
* ``loguru`` (model/__init__.py), see :data:`.common.COMMON_STUBS`.
"""
import contextlib
import importlib
import os
import os.path as osp
import types
import warnings
from typing import Callable, Dict, Iterator, Sequence, Tuple

import torch.nn as nn
from torch import Tensor

from .common import jitter, official_imports, pretrained_files
from .etris import RandomArchive, random_clip_state

DEFAULT_YAML = 'config/refcoco/DETRIS_base.yaml'

#: The official DINOv2 modules that switch on xFormers at import.
XFORMERS_MODULES = ('model.dinov2.layers.attention',
                    'model.dinov2.layers.block',
                    'model.dinov2.layers.swiglu_ffn')

#: yaml ``dino_name`` -> DINOv2 constructor of
#: model/dinov2/models/vision_transformer.py (as model/segmenter.py picks).
DINO_ARCHS = {'dino-base': 'vit_base', 'dinov2-large': 'vit_large'}


def unused_module(name: str) -> types.ModuleType:
    """A stand-in for module ``name``, imported by the official code but
    never used on the model's path: every public attribute is a function
    that raises when called."""
    module = types.ModuleType(name)

    def __getattr__(attr: str) -> Callable:
        if attr.startswith('__'):
            raise AttributeError(attr)

        def unavailable(*args, **kwargs):
            raise RuntimeError(
                f'{name}.{attr} was called, but {name} is not installed and '
                'mmris/benchmark/official/detris.py only stands in for '
                f'its import; install {name.split(".")[0]} to run this path')

        return unavailable

    module.__getattr__ = __getattr__
    return module


#: Stand-ins for the packages the DETRIS model imports but does not need.
STUBS = {
    'fvcore.nn.weight_init': lambda: unused_module('fvcore.nn.weight_init')
}


@contextlib.contextmanager
def xformers_disabled() -> Iterator[None]:
    """Set ``XFORMERS_DISABLED`` (the switch of the official DINOv2 layers)
    for the imports inside, then restore the environment."""
    old = os.environ.get('XFORMERS_DISABLED')
    os.environ['XFORMERS_DISABLED'] = '1'
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                'ignore', message='xFormers is (disabled|not available)')
            yield
    finally:
        if old is None:
            del os.environ['XFORMERS_DISABLED']
        else:
            os.environ['XFORMERS_DISABLED'] = old


def check_plain_pytorch(modules: Sequence[types.ModuleType]) -> None:
    """Raise if one of ``modules`` switched xFormers on."""
    on = [m.__name__ for m in modules if getattr(m, 'XFORMERS_AVAILABLE', 1)]
    if on:
        raise RuntimeError(f'{on} use xFormers (XFORMERS_AVAILABLE is not '
                           'False): the comparison needs the plain-PyTorch '
                           'path of the official DINOv2 layers')


def random_dinov2_state(vits: types.ModuleType,
                        dino_name: str) -> Dict[str, Tensor]:
    """The tensors of a random DINOv2 of the shapes of Meta's
    ``dinov2_vit{b,l}14_reg4_pretrain.pth`` (patch 14, 4 registers, 37x37
    position table of the 518-px models, LayerScale, flat blocks), built
    with the official ``vits`` module (model/dinov2/models/
    vision_transformer.py) without adapters."""
    if dino_name not in DINO_ARCHS:
        raise KeyError(f'unknown dino_name {dino_name!r} in the official '
                       f'config; expected one of {sorted(DINO_ARCHS)}')
    net = getattr(vits, DINO_ARCHS[dino_name])(
        patch_size=14,
        num_register_tokens=4,
        img_size=518,
        init_values=1.0,
        block_chunks=0)
    return net.state_dict()


def build(repo: str, yaml_file: str) -> Tuple[nn.Module, dict]:
    """The official DETRIS model of ``repo`` with random weights.

    Returns:
        tuple: The model (fp32, official freezing) and its yaml settings.
    """
    with official_imports(repo, STUBS), xformers_disabled():
        config = importlib.import_module('utils.config')
        cfg = config.load_cfg_from_cfg_file(osp.join(repo, yaml_file))
        check_plain_pytorch(
            [importlib.import_module(m) for m in XFORMERS_MODULES])
        clip_module = importlib.import_module('model.clip')
        vits = importlib.import_module(
            'model.dinov2.models.vision_transformer')
        segmenter = importlib.import_module('model.segmenter')
        arch = osp.splitext(osp.basename(cfg.clip_pretrain))[0]
        clip_state = jitter(random_clip_state(clip_module, arch, cfg.word_len))
        dino_state = jitter(random_dinov2_state(vits, cfg.dino_name))
        answers = {
            cfg.clip_pretrain: ('torch.jit.load', RandomArchive(clip_state)),
            cfg.dino_pretrain: ('torch.load', dino_state)
        }
        with pretrained_files(answers):
            model = segmenter.DETRIS(cfg)
    return model.float(), dict(cfg)


def logits(model: nn.Module, img: Tensor, word: Tensor) -> Tensor:
    """Test-mode logits: the official forward without a mask."""
    return model(img, word)


def loss(model: nn.Module, img: Tensor, word: Tensor, mask: Tensor) -> Tensor:
    """The training loss, as engine/engine.py ``train`` takes it from
    ``pred, target, loss = model(image, text, target)`` (the forward
    resizes ``mask`` to the logits itself)."""
    return model(img, word, mask)[2]
