# Copyright (c) mmris contributors. All rights reserved.
"""The two sides of a benchmark suite model: mmris and the official code.

A side builds its model once and ``prepare(mode, batch)`` returns the step
of a run and a function counting one step's FLOPs; ``cudnn`` is the
``(enabled, benchmark)`` setting its runs take; ``reset()`` drops the
gradients a failed step may have left.
"""
import os.path as osp
from types import ModuleType
from typing import Any, Callable, Optional, Tuple

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from ..inputs import input_spec, make_batch, official_inputs
from ..official.train_steps import OfficialTrainStep
from ..steps import (build_train_wrapper, count_flops, counted_train_step,
                     infer_step)
from .specs import ModelSpec

__all__ = ['Prepared', 'load_config', 'MmrisSide', 'OfficialSide']

#: ``(step, count)``: the step of a run and a function counting the FLOPs
#: of one step.
Prepared = Tuple[Callable[[], Any], Callable[[], int]]


def load_config(config: str,
                cfg_options: Optional[dict],
                root: str = '.') -> Config:
    """``config`` (a path, or relative to ``root``) with ``cfg_options``
    merged; sets the config's default scope.

    Raises:
        FileNotFoundError: Neither path is a file.
    """
    path = config if osp.exists(config) else osp.join(root, config)
    if not osp.isfile(path):
        raise FileNotFoundError(f'mmris config {config!r} not found')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    return cfg


class MmrisSide:
    """The mmris model of a config, its bf16 optimizer wrapper and steps.

    Args:
        cfg (Config): The mmris config.
        device (torch.device): Where to run.
    """
    side = 'mmris'

    def __init__(self, cfg: Config, device: torch.device):
        self.device = device
        self.size, self.length = input_spec(cfg)
        torch.manual_seed(0)
        self.model = MODELS.build(cfg.model).to(device)
        self.optim_wrapper = build_train_wrapper(self.model, cfg, 'bf16')
        self.cudnn = (True,
                      bool(
                          cfg.get('env_cfg', {}).get('cudnn_benchmark',
                                                     False)))

    def _batch(self, batch: int, train: bool) -> dict:
        data = make_batch(batch, self.size, self.length, train)
        data['inputs'] = [x.to(self.device) for x in data['inputs']]
        return data

    def prepare(self, mode: str, batch: int) -> Prepared:
        """The step of a run and a function counting one step's FLOPs."""
        model, ow = self.model, self.optim_wrapper
        data = self._batch(batch, mode == 'train')
        model.train(mode == 'train')
        if mode == 'train':

            def count():
                counts = counted_train_step(model, ow, data, batch)
                return counts.forward_flops + counts.backward_flops

            return lambda: model.train_step(data, ow), count
        step = infer_step(model, self.device, torch.bfloat16)
        return lambda: step(data), lambda: count_flops(lambda: step(data))

    def reset(self) -> None:
        """Drop gradients a failed step may have left."""
        self.optim_wrapper.zero_grad()


class OfficialSide:
    """The official model of a clone and its steps, fed the mmris data
    preprocessor's tensors of the mmris config ``cfg``.

    Args:
        cfg (Config): The mmris config (input size, text length, data
            preprocessor).
        spec (ModelSpec): The model.
        repo (str): The clone of the official repository.
        device (torch.device): Where to run.
        method_module (Callable): ``method -> builder module`` (e.g.
            :func:`mmris.benchmark.official.method_module`).

    Raises:
        ValueError: The official config's input size or text length differ
            from the mmris config's.
    """
    side = 'official'
    cudnn = (False, False)  # train.py: torch.backends.cudnn.enabled = False

    def __init__(self, cfg: Config, spec: ModelSpec, repo: str,
                 device: torch.device, method_module: Callable[[str],
                                                               ModuleType]):
        self.device = device
        self.size, self.length = input_spec(cfg)
        self.builder = method_module(spec.method)
        yaml_file = spec.yaml or self.builder.DEFAULT_YAML
        torch.manual_seed(0)
        model, ocfg = self.builder.build(repo, yaml_file)
        got = (ocfg.get('input_size',
                        self.size), ocfg.get('word_len', self.length))
        if tuple(int(v) for v in got) != (self.size, self.length):
            raise ValueError(
                f'{osp.join(repo, yaml_file)}: input_size/word_len {got} '
                f'differ from the mmris config {spec.config}: '
                f'{(self.size, self.length)}')
        self.model = model.to(device)
        self.preprocessor = MODELS.build(
            cfg.model.data_preprocessor).to(device)
        self.optimizer = torch.optim.Adam(
            [p for p in self.model.parameters() if p.requires_grad],
            lr=float(ocfg.get('base_lr', 1e-4)),
            weight_decay=float(ocfg.get('weight_decay', 0.0)))
        self.scaler = torch.amp.GradScaler(device.type)

    def _tensors(self, batch: int) -> Tuple[torch.Tensor, ...]:
        return official_inputs(
            self.preprocessor(
                make_batch(batch, self.size, self.length, True), True))

    def prepare(self, mode: str, batch: int) -> Prepared:
        """The step of a run and a function counting one step's FLOPs."""
        img, word, mask = self._tensors(batch)
        self.model.train(mode == 'train')
        if mode == 'train':
            step = OfficialTrainStep(self.builder, self.model, self.optimizer,
                                     self.scaler, (img, word, mask))
            return step, step.count

        def infer():
            with torch.no_grad(), torch.autocast(
                    self.device.type, dtype=torch.bfloat16):
                return self.builder.logits(self.model, img, word)

        return infer, lambda: count_flops(infer)

    def reset(self) -> None:
        """Drop gradients a failed step may have left."""
        self.optimizer.zero_grad(set_to_none=True)
