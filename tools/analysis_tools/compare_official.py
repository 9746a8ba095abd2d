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

The tool also prints both training losses of one batch (train mode, every
dropout off on both sides, so that the two draw nothing at random).

Supported (method: official repository, default ``--official-config``):
    etris: kkakkkka/ETRIS, config/refcoco/bridge_v16.yaml
    barleria: NastrondAd/BarLeRIa, config/refcoco/barleria_v16.yaml
        (``--variant eva``: config/refcoco/barleria_v16_eva.yaml, the
        EVA02-CLIP-B/16 model, with configs/barleria/barleria_eva02-b16_*.py)
    detris: jiaqihuang01/DETRIS, config/refcoco/DETRIS_base.yaml (DETRIS-L:
        config/refcoco/DETRIS_large.yaml with configs/detris/detris-l_*.py)

Example:
    git clone https://github.com/kkakkkka/ETRIS /path/to/ETRIS
    python tools/analysis_tools/compare_official.py etris \
        --official-repo /path/to/ETRIS \
        --config configs/etris/etris_vit-b16_refcoco.py
"""
import argparse
import contextlib
import copy
import os.path as osp
import runpy


def load_tool_env() -> dict:
    """``mmris/utils/tool_env.py`` run by path, before any heavy import:
    ``--help`` stays fast and a Python without the project's packages gets
    one line (or the checkout's ``.venv``)."""
    folder = osp.dirname(osp.abspath(__file__))
    while osp.dirname(folder) != folder:
        path = osp.join(folder, 'mmris', 'utils', 'tool_env.py')
        if osp.isfile(path):
            return runpy.run_path(path)
        folder = osp.dirname(folder)
    from mmris.utils import tool_env  # an installed mmris
    return vars(tool_env)


TOOL_ENV = load_tool_env()
TOOL_ENV['ensure_environment'](__file__)
import torch  # noqa: E402
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


@contextlib.contextmanager
def no_dropout(model: nn.Module):
    """Every dropout of ``model`` off (``nn.Dropout`` modules and the
    ``dropout`` probability of attention modules), restored afterwards."""
    saved = []
    for m in model.modules():
        for attr in ('p', 'dropout'):
            value = getattr(m, attr, None)
            if isinstance(value, float) and value > 0 and (
                    attr == 'dropout'
                    or isinstance(m, nn.modules.dropout._DropoutNd)):
                saved.append((m, attr, value))
                setattr(m, attr, 0.0)
    try:
        yield
    finally:
        for m, attr, value in saved:
            setattr(m, attr, value)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'method',
        choices=METHODS,
        help='which official repository --official-repo is a clone of')
    parser.add_argument(
        '--official-repo',
        required=True,
        help='local clone of the official '
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
        '--variant',
        choices=('clip', 'eva'),
        default='clip',
        help='barleria: the CLIP ViT-B/16 (default) or the EVA02-CLIP-B/16 '
        'model (default yaml config/refcoco/barleria_v16_eva.yaml)')
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of the random weights and inputs (default: 0)')
    args = parser.parse_args()
    TOOL_ENV['setup_cpu_threads']('compare_official.py')
    builder = method_module(args.method)
    torch.manual_seed(args.seed)
    if args.variant == 'eva' and args.method != 'barleria':
        parser.error('--variant eva applies to barleria only')
    yaml_file = args.official_config or ('config/refcoco/barleria_v16_eva.yaml'
                                         if args.variant == 'eva' else
                                         builder.DEFAULT_YAML)
    official, ocfg = builder.build(args.official_repo, yaml_file)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = MODELS.build(cfg.model)
    key_map = builder.converter(ocfg) if hasattr(builder, 'converter') \
        else args.method
    converted = convert_official_state_dict(official.state_dict(), key_map)
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

    # BatchNorm statistics move in the loss pass: restore them after it
    official_state = copy.deepcopy(official.state_dict())
    model_state = copy.deepcopy(model.state_dict())
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
    with no_dropout(official), no_dropout(model), torch.no_grad():
        o_loss = builder.loss(official, img, word, mask).item()
        terms = model.loss(prep['inputs'], prep['data_samples'])
        m_loss = sum(v for k, v in terms.items() if 'loss' in k).item()
    print(f'training loss (train mode, dropout off, {args.batch} images): '
          f'official {o_loss:.6f}, mmris {m_loss:.6f}, |difference| '
          f'{abs(o_loss - m_loss):.3e}')
    official.load_state_dict(official_state)
    model.load_state_dict(model_state)
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
