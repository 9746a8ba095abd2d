# Copyright (c) mmris contributors. All rights reserved.
"""Trainable / frozen parameter accounting per module.

Parameter totals come from :func:`mmengine.analysis.parameter_count` (each
parameter once, as ``module.parameters()`` counts them); the trainable part
is the sum over the parameters with ``requires_grad``, which MMEngine does
not split out, and the frozen part is the difference.
"""
from collections import OrderedDict
from typing import Dict

import torch.nn as nn
from mmengine.analysis import parameter_count


def _trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _numel(module: nn.Module, trainable: bool) -> int:
    """The trainable (``trainable=True``) or frozen parameters of
    ``module``."""
    count = _trainable(module)
    return count if trainable else parameter_count(module)[''] - count


def count_parameters(model: nn.Module) -> Dict[str, dict]:
    """Count trainable and frozen parameters of an RIS segmentor.

    Returns a dict with per-module rows (``backbone.visual``,
    ``backbone.text``, the adapters attached to them, ``backbone.bridge``,
    ``neck``, ``decode_head``...), the totals and the backbone-update
    percentage: parameters of the adapters (all trainable modules that live
    in the backbone except the encoders' own tensors) over the frozen
    encoders' parameters.
    """
    rows = OrderedDict()
    backbone = getattr(model, 'backbone', None)
    adapter_params = 0
    encoder_frozen = 0
    if backbone is not None:
        for name, child in backbone.named_children():
            if name in ('visual', 'text'):
                # modules attached through the block hooks (adapters, flows)
                hooks = (
                    child.hook_modules()
                    if hasattr(child, 'hook_modules') else [])
                hook_ids = {id(p) for m in hooks for p in m.parameters()}
                own_t = sum(p.numel() for p in child.parameters()
                            if p.requires_grad and id(p) not in hook_ids)
                hook_t = sum(p.numel() for m in hooks for p in m.parameters())
                frozen = _numel(child, False)
                rows[f'backbone.{name}'] = dict(trainable=own_t, frozen=frozen)
                if hooks:
                    rows[f'backbone.{name} adapters'] = dict(
                        trainable=hook_t, frozen=0)
                adapter_params += hook_t
                encoder_frozen += frozen + own_t
            else:
                t = _numel(child, True)
                rows[f'backbone.{name}'] = dict(
                    trainable=t, frozen=_numel(child, False))
                adapter_params += t
    for name, child in model.named_children():
        if name in ('backbone', 'data_preprocessor'):
            continue
        rows[name] = dict(
            trainable=_numel(child, True), frozen=_numel(child, False))
    total_t = _numel(model, True)
    total_f = _numel(model, False)
    return dict(
        modules=rows,
        trainable=total_t,
        frozen=total_f,
        adapters=adapter_params,
        backbone_update=100.0 * adapter_params / max(encoder_frozen, 1))


def format_parameter_table(stats: Dict[str, dict]) -> str:
    """A markdown table of :func:`count_parameters`."""
    lines = ['| module | trainable | frozen |', '|---|---:|---:|']
    for name, row in stats['modules'].items():
        lines.append(f"| {name} | {row['trainable']:,} | {row['frozen']:,} |")
    lines.append(f"| **total** | **{stats['trainable']:,}** | "
                 f"**{stats['frozen']:,}** |")
    lines.append('')
    lines.append(f"adapters (parameters attached to the frozen encoders): "
                 f"{stats['adapters']:,}; backbone update: "
                 f"{stats['backbone_update']:.2f} %")
    return '\n'.join(lines)
