# Copyright (c) mmris contributors. All rights reserved.
"""Compare an mmris config with the official implementation, same weights.

The official model is built from a local clone of its repository (given by
``--official-repo``; nothing of it is part of mmris) by the builder module
of the method in ``mmris/benchmark/official/``, with random weights of
the official shapes: the builders stand in only for the pretrained-file
loading and for third-party packages the model does not need (see each
module's docstring). Its state dict is converted with
``mmris.checkpoint.convert_official_state_dict`` (as
``tools/model_converters/ris2mmris.py``) and loaded strictly into the mmris
model built from ``--config``. The tool then prints, for both models: the
trainable parameter counts, the max |difference| of the test-mode logits
(fp32, same inputs), the counted saved-activation bytes, parameter /
gradient / optimizer-state bytes and forward / backward FLOPs of one
training step (``mmris.utils.memory_count``), and the median training-step
time.

Supported (method: official repository, default ``--official-config``):
    etris: kkakkkka/ETRIS, config/refcoco/bridge_v16.yaml
    barleria: NastrondAd/BarLeRIa, config/refcoco/barleria_v16.yaml
    detris: jiaqihuang01/DETRIS, config/refcoco/DETRIS_base.yaml (DETRIS-L:
        config/refcoco/DETRIS_large.yaml with configs/detris/detris-l_*.py)

Example:
    git clone https://github.com/kkakkkka/ETRIS /path/to/ETRIS
    python tools/analysis_tools/compare_official.py etris \
        --official-repo /path/to/ETRIS \
        --config configs/etris/etris_vit-b16_refcoco.py
"""
import argparse
import copy

import torch
import torch.nn as nn
from mmengine.config import Config, DictAction
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import mmris  # noqa: F401
from mmris.benchmark import (counted_train_step, format_counts, input_spec,
                             make_batch, official_inputs, time_interleaved)
from mmris.benchmark.official import METHODS, method_module
from mmris.benchmark.official.train_steps import official_train_step
from mmris.checkpoint import (convert_official_state_dict,
                              load_state_dict_strict)


def _trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'method',
        choices=METHODS,
        help='which official repository --official-repo is a clone of')
    parser.add_argument(
        '--official-repo', required=True, help='local clone of the official '
        'repository')
    parser.add_argument(
        '--config', required=True, help='the mmris config to compare')
    parser.add_argument(
        '--official-config',
        default=None,
        help='yaml file inside the official repository (default: '
        'config/refcoco/bridge_v16.yaml, barleria_v16.yaml or '
        'DETRIS_base.yaml; DETRIS-L: config/refcoco/DETRIS_large.yaml)')
    parser.add_argument(
        '--batch', type=int, default=1, help='images per step (default: 1)')
    parser.add_argument(
        '--iters',
        type=int,
        default=1,
        help='timed training steps of each model; 0 skips timing '
        '(default: 1)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the mmris config, key=value pairs (e.g. '
        'model.backbone.with_cp=True)')
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of the random weights and inputs (default: 0)')
    args = parser.parse_args()
    builder = method_module(args.method)
    torch.manual_seed(args.seed)
    yaml_file = args.official_config or builder.DEFAULT_YAML
    official, ocfg = builder.build(args.official_repo, yaml_file)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = MODELS.build(cfg.model)
    converted = convert_official_state_dict(official.state_dict(),
                                            args.method)
    load_state_dict_strict(
        model,
        converted,
        strict=True,
        source=f'{args.official_repo} ({args.method}, random weights)')
    print(f'official {args.method} ({yaml_file}) -> {args.config}: all '
          f'{len(converted)} tensors load strictly')
    print(f'trainable parameters: official {_trainable(official):,}, '
          f'mmris {_trainable(model):,}')

    size, length = input_spec(cfg)
    if int(ocfg.get('input_size', size)) != size or int(
            ocfg.get('word_len', length)) != length:
        raise ValueError(
            f'{yaml_file}: input_size/word_len {ocfg.get("input_size")}/'
            f'{ocfg.get("word_len")} differ from {args.config}: '
            f'{size}/{length}')
    data = make_batch(args.batch, size, length, train=True)
    prep = model.data_preprocessor(copy.deepcopy(data), True)
    img, word, gt = official_inputs(prep)

    official.eval()
    model.eval()
    with torch.no_grad():
        ref = builder.logits(official, img, word)
        ours = model._forward(img, prep['data_samples'])
    ours = ours if torch.is_tensor(ours) else ours[0]
    print(f'logits {tuple(ref.shape)}: max |official - mmris| = '
          f'{(ref - ours).abs().max().item():.3e} (fp32; max |logit| '
          f'{ref.abs().max().item():.2f})')

    official.train()
    model.train()
    # The official forward resizes the mask to the logits itself.
    mask = gt
    o_optim = torch.optim.Adam(
        [p for p in official.parameters() if p.requires_grad], lr=1e-4)
    o_counts = official_train_step(
        builder, official, img, word, mask, o_optim, count=True)
    ow = build_optim_wrapper(model, dict(cfg.optim_wrapper))
    m_counts = counted_train_step(model, ow, data, args.batch)
    print('official:\n' + format_counts(o_counts))
    print('mmris:\n' + format_counts(m_counts))
    if args.iters > 0:
        o_ms, m_ms = time_interleaved([
            lambda: official_train_step(builder, official, img, word, mask,
                                        o_optim),
            lambda: model.train_step(copy.deepcopy(data), ow)
        ], args.iters)
        print(f'training step (median of {args.iters}, interleaved, '
              f'{args.batch} images, {torch.get_num_threads()} threads): '
              f'official {o_ms:.0f} ms, mmris {m_ms:.0f} ms, official / '
              f'mmris {o_ms / m_ms:.2f}')
        official.eval()
        model.eval()
        with torch.no_grad():
            o_ms, m_ms = time_interleaved([
                lambda: builder.logits(official, img, word),
                lambda: model._forward(img, prep['data_samples'])
            ], args.iters)
        print(f'inference (test-mode logits, median of {args.iters}, '
              f'interleaved, {args.batch} images): official {o_ms:.0f} ms, '
              f'mmris {m_ms:.0f} ms, official / mmris {o_ms / m_ms:.2f}')


if __name__ == '__main__':
    main()
