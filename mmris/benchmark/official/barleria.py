# Copyright (c) mmris contributors. All rights reserved.
"""The official BarLeRIa model (NastrondAd/BarLeRIa) with random weights.

Its pretrained-file loading (``torch.jit.load`` of the OpenAI CLIP archive
in model/segmenter.py) is answered with the state dict of the repository's
own randomly initialised ``CLIP`` (model/clip.py, the same class and
argument order as kkakkkka/ETRIS); any other load is refused. The side
adapter is built with ``PRETRAINED: False`` (as in every released config),
so nothing else is loaded. Every parameter of the built model is then
jittered (:func:`.common.jitter`, N(0, 0.02^2)): the flows start as the
identity (mu = log sigma = 0) and LayerNorms as (1, 0), which would hide
deviations in how they are applied; BatchNorm statistics are kept.

Stand-ins (only when the package is not installed):

* ``detectron2``: the side adapter (model/side_adapter/side_adapter.py,
  model/layers.py, model/intertwiner.py) uses six small helpers of it;
  each is re-implemented below from its documented behaviour
  (:class:`ShapeSpec`, :func:`configurable`, :class:`Registry`,
  :func:`log_first_n`, :class:`CNNBlockBase`, :class:`Conv2d`). Only
  :class:`Conv2d` and :func:`log_first_n` run in the forward pass.
* ``fvcore``: model/layers.py initialises the fusion convolutions with
  ``fvcore.nn.weight_init.c2_xavier_fill`` (:func:`c2_xavier_fill`).
* ``turtle`` (standard library, absent without Tk): flow.py imports
  ``turtle.forward`` and never calls it.

Every other stand-in attribute raises a clear error when used. The optional
imports of the repository's ``eva_clip`` package (transformers, apex,
xformers, deepspeed, horovod) are guarded there by ``try``/``except``; the
CLIP configs use none of them. The EVA configs (``barleria_v16_eva``) need
xformers' attention at the first forward: :func:`memory_efficient_attention`
stands in for it (apex is not needed: eva_clip falls back to its own
LayerNorm), and the EVA-CLIP file (``torch.load`` after an
``os.path.exists`` check) is answered with :func:`random_eva_release_state`.
``timm`` and ``einops`` are the installed ones.

timm >= 0.9 passes ``pretrained_cfg_overlay`` and ``cache_dir`` to every
model entry point, which the repository's ``absvit_tiny_patch16_224``
(model/absvit.py, written for timm 0.6) forwards to its ``VisionTransformer``
and fails; the side adapter's ``create_model`` is therefore answered by
:func:`timm06_create_model`, which calls the registered entry point with the
arguments timm 0.6 gave it, and ``timm.models.layers.helpers`` (gone in
timm 1.0) is the installed ``timm.layers.helpers`` (:func:`timm_old_names`).
The repository's timm entry points stay in timm's registry after the build.
"""
import collections.abc
import contextlib
import dataclasses
import functools
import importlib
import logging
import os.path as osp
import sys
import types
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.model import caffe2_xavier_init
from torch import Tensor

from .common import jitter, official_imports, pretrained_files
from .etris import RandomArchive, random_clip_state

DEFAULT_YAML = 'config/refcoco/barleria_v16.yaml'

_HERE = 'mmris/benchmark/official/barleria.py'


# -- detectron2 --------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ShapeSpec:
    """Stands in for ``detectron2.layers.ShapeSpec``: a frozen record of a
    feature map's ``channels``, ``height``, ``width`` and ``stride`` (all
    optional)."""
    channels: Optional[int] = None
    height: Optional[int] = None
    width: Optional[int] = None
    stride: Optional[int] = None


def configurable(init_func: Callable) -> Callable:
    """Stands in for ``detectron2.config.configurable`` used on ``__init__``.

    Called with a config as first positional argument (or ``cfg=``), the
    class's ``from_config`` classmethod turns the call's arguments into the
    keyword arguments of ``__init__``; any other call goes to ``__init__``
    unchanged. detectron2 recognises a config by its type (yacs ``CfgNode``
    or omegaconf ``DictConfig``, detectron2/config/config.py
    ``_called_with_cfg``); BarLeRIa passes its own dict-based
    ``utils.config.CfgNode``, which that check would not recognise, so
    here any mapping counts as a config.
    """
    if init_func.__name__ != '__init__':
        raise TypeError(f'{_HERE}: the configurable stand-in decorates '
                        f'__init__ only, not {init_func.__name__!r}')

    @functools.wraps(init_func)
    def wrapped(self, *args, **kwargs):
        from_config = getattr(type(self), 'from_config', None)
        if from_config is None:
            raise AttributeError(
                f'{type(self).__name__} uses @configurable but has no '
                'from_config classmethod')
        with_cfg = ((args and isinstance(args[0], collections.abc.Mapping))
                    or isinstance(kwargs.get('cfg'), collections.abc.Mapping))
        if with_cfg:
            init_func(self, **from_config(*args, **kwargs))
        else:
            init_func(self, *args, **kwargs)

    return wrapped


class Registry:
    """Stands in for ``detectron2.utils.registry.Registry`` (fvcore's):
    name -> object, filled by ``register`` (decorator or call), read by
    ``get``; a name can be registered once."""

    def __init__(self, name: str):
        self._name = name
        self._obj_map: Dict[str, Any] = {}

    def _do_register(self, name: str, obj: Any) -> None:
        if name in self._obj_map:
            raise KeyError(f"An object named '{name}' was already "
                           f"registered in '{self._name}' registry!")
        self._obj_map[name] = obj

    def register(self, obj: Any = None) -> Any:
        if obj is None:

            def deco(func_or_class):
                self._do_register(func_or_class.__name__, func_or_class)
                return func_or_class

            return deco
        self._do_register(obj.__name__, obj)
        return obj

    def get(self, name: str) -> Any:
        if name not in self._obj_map:
            raise KeyError(f"No object named '{name}' found in "
                           f"'{self._name}' registry!")
        return self._obj_map[name]

    def __contains__(self, name: str) -> bool:
        return name in self._obj_map


_LOGGED: Dict[Tuple[str, int], int] = collections.Counter()


def log_first_n(lvl: int,
                msg: str,
                n: int = 1,
                *,
                name: str = None,
                key: str = 'caller') -> None:
    """Stands in for ``detectron2.utils.logger.log_first_n``: log ``msg``
    only the first ``n`` times it is called from the same line of code
    (``key='caller'``, the only key BarLeRIa uses)."""
    if key != 'caller':
        raise NotImplementedError(f"{_HERE}: the log_first_n stand-in "
                                  f"supports key='caller' only, not {key!r}")
    caller = sys._getframe(1)
    where = (caller.f_code.co_filename, caller.f_lineno)
    _LOGGED[where] += 1
    if _LOGGED[where] <= n:
        logging.getLogger(
            name
            or caller.f_globals.get('__name__', 'official')).log(lvl, msg)


class CNNBlockBase(nn.Module):
    """Stands in for ``detectron2.layers.CNNBlockBase``: a module recording
    ``in_channels``, ``out_channels`` and ``stride``. Its ``freeze`` (never
    called by BarLeRIa) is not stood in for."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride

    def freeze(self):
        raise NotImplementedError(
            f'{_HERE}: detectron2 CNNBlockBase.freeze is not stood in for '
            '(install detectron2)')


class Conv2d(nn.Conv2d):
    """Stands in for ``detectron2.layers.Conv2d``: ``torch.nn.Conv2d``
    followed by the optional ``norm`` module and ``activation`` callable
    given as keyword arguments (BarLeRIa gives neither)."""

    def __init__(self,
                 *args,
                 norm: Optional[nn.Module] = None,
                 activation: Optional[Callable] = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.norm = norm
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        x = super().forward(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x


# -- fvcore ------------------------------------------------------------------
def c2_xavier_fill(module: nn.Module) -> None:
    """Stands in for ``fvcore.nn.weight_init.c2_xavier_fill`` (Caffe2's
    XavierFill): weight ~ U(-sqrt(3 / fan_in), sqrt(3 / fan_in)), i.e.
    ``kaiming_uniform_(a=1)``, and bias 0 -- MMEngine's
    ``caffe2_xavier_init``, the same draws."""
    caffe2_xavier_init(module, bias=0)


# -- turtle ------------------------------------------------------------------
def turtle_forward(*args, **kwargs):
    """Stands in for ``turtle.forward`` (imported by flow.py, never called):
    raises."""
    raise RuntimeError(f'{_HERE}: turtle.forward is a stand-in (Tk is not '
                       'installed) and should never be called')


# -- stand-in modules --------------------------------------------------------
def stub_module(name: str, **attrs: Any) -> types.ModuleType:
    """A module ``name`` holding ``attrs``; any other attribute raises an
    ``AttributeError`` that names the stand-in and what it provides."""
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    provided = sorted(attrs)

    def __getattr__(attr: str):
        raise AttributeError(
            f'{name}.{attr} is not stood in for by {_HERE} (it provides '
            f'only {provided}); install {name.split(".")[0]} if the '
            'official code needs it')

    module.__getattr__ = __getattr__
    return module


#: What each stand-in module provides (see the module docstring).
STUB_ATTRS: Dict[str, Dict[str, Any]] = {
    'detectron2': {},
    'detectron2.config':
    dict(configurable=configurable),
    'detectron2.layers':
    dict(ShapeSpec=ShapeSpec, CNNBlockBase=CNNBlockBase, Conv2d=Conv2d),
    'detectron2.utils': {},
    'detectron2.utils.logger':
    dict(log_first_n=log_first_n),
    'detectron2.utils.registry':
    dict(Registry=Registry),
    'fvcore': {},
    'fvcore.nn': {},
    'fvcore.nn.weight_init':
    dict(c2_xavier_fill=c2_xavier_fill),
    'turtle':
    dict(forward=turtle_forward),
}

#: Stand-ins for the packages the official model imports, used only where
#: the package is not installed (:func:`.common.official_imports`).
STUBS: Dict[str, Callable[[], types.ModuleType]] = {
    name: functools.partial(stub_module, name, **attrs)
    for name, attrs in STUB_ATTRS.items()
}


# -- xformers (EVA variant) ---------------------------------------------------
class LowerTriangularMask:
    """Stands in for ``xformers.ops.LowerTriangularMask``: a causal mask,
    aligned top-left (query i attends to keys j <= i)."""


def memory_efficient_attention(query: Tensor,
                               key: Tensor,
                               value: Tensor,
                               attn_bias: Any = None,
                               p: float = 0.0,
                               scale: Optional[float] = None,
                               **kwargs: Any) -> Tensor:
    """Stands in for ``xformers.ops.memory_efficient_attention``, which
    the EVA02-CLIP towers of the official EVA variant call
    (eva_clip/eva_vit_model.py and transformer.py, ``xattn``): what its
    documentation defines, ``softmax(q k^T * scale [+ causal mask]) v``
    with ``scale`` defaulting to ``head_dim ** -0.5``, on (B, N, H, D)
    tensors. The official EVA model cannot run without it (eva_clip binds
    ``xops = None`` and fails at the first forward)."""
    if p != 0.0 or kwargs:
        raise NotImplementedError(
            f'{_HERE}: the xformers stand-in has no dropout or '
            f'{sorted(kwargs)}')
    if scale is None:
        scale = query.shape[-1]**-0.5
    q = query.transpose(1, 2) * scale
    attn = q @ key.transpose(1, 2).transpose(-2, -1)
    if attn_bias is not None:
        if not isinstance(attn_bias, LowerTriangularMask):
            raise NotImplementedError(f'{_HERE}: attn_bias {attn_bias!r}')
        m, n = attn.shape[-2:]
        causal = torch.ones(m, n, dtype=torch.bool, device=attn.device).triu(1)
        attn = attn.masked_fill(causal, float('-inf'))
    return (attn.softmax(dim=-1) @ value.transpose(1, 2)).transpose(1, 2)


EVA_STUBS = dict(
    STUBS,
    xformers=functools.partial(stub_module, 'xformers'),
    **{
        'xformers.ops':
        functools.partial(
            stub_module,
            'xformers.ops',
            memory_efficient_attention=memory_efficient_attention,
            LowerTriangularMask=LowerTriangularMask)
    })


def random_eva_release_state(eva_clip: types.ModuleType,
                             model_name: str) -> Dict[str, Tensor]:
    """A random state dict in the layout of the EVA-CLIP release file
    (``CustomCLIP`` at its 224 pretraining resolution), jittered except the
    derived rotary tables."""
    cfg = eva_clip.get_model_config(model_name)
    cfg['vision_cfg']['rope_size'] = 224
    state = eva_clip.CustomCLIP(**cfg).state_dict()
    noisy = jitter({k: v for k, v in state.items() if 'rope.freqs' not in k})
    return {k: noisy.get(k, v).clone() for k, v in state.items()}


@contextlib.contextmanager
def _path_exists(path: str) -> Iterator[None]:
    """``os.path.exists`` answers True for ``path`` (eva_clip checks the
    pretrained file exists before loading it)."""
    import os
    real = os.path.exists
    os.path.exists = lambda p: p == path or real(p)
    try:
        yield
    finally:
        os.path.exists = real


# -- timm --------------------------------------------------------------------
def timm06_create_model(model_name: str,
                        pretrained: bool = False,
                        **kwargs) -> nn.Module:
    """``timm.create_model`` as timm 0.6 called a registered entry point:
    ``entry(pretrained=..., pretrained_cfg=None, **kwargs)`` with the
    ``None`` keyword arguments dropped (timm >= 0.9 also passes
    ``pretrained_cfg_overlay`` and ``cache_dir``, which the repository's
    ``absvit_tiny_patch16_224`` does not accept)."""
    from timm.models import is_model, model_entrypoint
    if pretrained:
        raise ValueError(f'{_HERE}: the side adapter must be built with '
                         'SIDE_ADAPTER.PRETRAINED False (random weights)')
    if not is_model(model_name):
        raise RuntimeError(f'Unknown timm model {model_name!r}')
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    return model_entrypoint(model_name)(
        pretrained=False, pretrained_cfg=None, **kwargs)


#: Modules the official code imports under their timm 0.6 names, moved in
#: timm >= 0.9: old name -> new name (the installed module is used as is).
TIMM_MOVED = {'timm.models.layers.helpers': 'timm.layers.helpers'}


@contextlib.contextmanager
def timm_old_names() -> Iterator[None]:
    """Make the :data:`TIMM_MOVED` modules importable under their timm 0.6
    names where the installed timm lacks them; undo it afterwards."""
    added = []
    for old, new in TIMM_MOVED.items():
        try:
            importlib.import_module(old)
        except ImportError:
            sys.modules[old] = importlib.import_module(new)
            added.append(old)
    try:
        yield
    finally:
        for old in added:
            sys.modules.pop(old, None)


@contextlib.contextmanager
def _patched(obj: Any, name: str, value: Any):
    real = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, real)


def jitter_parameters(model: nn.Module, std: float = 0.02) -> nn.Module:
    """``model`` with :func:`.common.jitter` noise added in place to every
    parameter (shared parameters once, so ties stay tied); buffers (BN
    statistics) are kept."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, noisy in jitter(params, std).items():
            params[name].copy_(noisy)
    return model


def build(repo: str, yaml_file: str) -> Tuple[nn.Module, dict]:
    """The official BarLeRIa model of ``repo`` with random weights.

    The model is built by ``BARLERIA(cfg)`` (model/segmenter.py), which also
    sets the official freezing (backbone frozen except the positional
    tables and the flows); ``build_segmenter`` (model/__init__.py) only
    forms the optimizer groups from it.

    Returns:
        tuple: The model (fp32, official freezing) and its yaml settings.
    """
    with official_imports(repo, stubs=EVA_STUBS), timm_old_names():
        config = importlib.import_module('utils.config')
        cfg = config.load_cfg_from_cfg_file(osp.join(repo, yaml_file))
        segmenter = importlib.import_module('model.segmenter')
        side = importlib.import_module('model.side_adapter.side_adapter')
        if 'EVA' in cfg.clip_pretrain:
            # eva_clip.create_model_and_transforms(..., rope_size=416)
            eva_clip = importlib.import_module('eva_clip')
            state = random_eva_release_state(eva_clip, cfg.model_name)
            answers = {cfg.clip_pretrain: ('torch.load', state)}
            exists = _path_exists(cfg.clip_pretrain)
        else:
            clip_module = importlib.import_module('model.clip')
            arch = osp.splitext(osp.basename(cfg.clip_pretrain))[0]
            state = random_clip_state(clip_module, arch, cfg.word_len)
            answers = {
                cfg.clip_pretrain: ('torch.jit.load', RandomArchive(state))
            }
            exists = contextlib.nullcontext()
        with pretrained_files(answers), exists, \
                _patched(side, 'create_model', timm06_create_model):
            model = segmenter.BARLERIA(cfg)
    return jitter_parameters(model.float()), dict(cfg)


def converter(ocfg: dict) -> str:
    """The key map of :func:`mmris.checkpoint.convert_official_state_dict`
    for a model built from the yaml settings ``ocfg``."""
    return 'barleria_eva' if 'EVA' in str(ocfg.get('clip_pretrain')) \
        else 'barleria'


def logits(model: nn.Module, img: Tensor, word: Tensor) -> Tensor:
    """Test-mode logits: the official forward without a mask."""
    return model(img, word)


def loss(model: nn.Module, img: Tensor, word: Tensor, mask: Tensor) -> Tensor:
    """The training loss of engine/engine.py ``train``: the third output of
    the forward with the mask (BCE on the resized mask plus the side
    adapter's reconstruction loss)."""
    return model(img, word, mask)[2]
