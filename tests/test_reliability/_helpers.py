# Copyright (c) mmris contributors. All rights reserved.
"""Shared helpers of the reliability tests (tiny configs, tool runners)."""
import copy
import os.path as osp
import runpy
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY_CONFIG = osp.join(ROOT, 'configs', 'quickstart',
                       'etris-tiny_synthetic.py')
TRAIN = osp.join(ROOT, 'tools', 'train.py')
TEST = osp.join(ROOT, 'tools', 'test.py')
CONVERTER = osp.join(ROOT, 'tools', 'model_converters', 'ris2mmris.py')


def small_options(data_root, batch_size=16, max_epochs=1, extra=()):
    """``--cfg-options`` shrinking the quick-start config for a test."""
    opts = [
        f'{k}_dataloader.{v}' for k in ('train', 'val', 'test')
        for v in (f'dataset.data_root={data_root}', 'num_workers=0',
                  'persistent_workers=False')
    ]
    opts += [
        f'train_dataloader.batch_size={batch_size}',
        f'train_cfg.max_epochs={max_epochs}',
        f'train_cfg.val_interval={max_epochs}',
        'default_hooks.checkpoint.interval=1',
        'default_hooks.logger.interval=1', 'log_processor.window_size=1',
        'env_cfg.cudnn_benchmark=False'
    ]
    return ['--cfg-options'] + opts + list(extra)


def run_tool_inprocess(script, args, monkeypatch):
    """Run a tool's ``__main__`` in this process (no import overhead)."""
    monkeypatch.setattr(sys, 'argv', [script] + [str(a) for a in args])
    runpy.run_path(script, run_name='__main__')


def tiny_model_cfg(width=64, config=TINY_CONFIG):
    """The quick-start tiny ETRIS model at another width."""
    from mmengine.config import Config
    model = copy.deepcopy(Config.fromfile(config).model.to_dict())
    bb = model['backbone']
    bb['visual'].update(width=width, output_dim=width)
    bb['text'].update(width=width, embed_dim=width)
    bb['adapters']['bridger']['module'].update(
        d_img=(width, ) * 3, text_channels=width)
    model['neck'].update(
        in_channels=(width, ) * 3, text_channels=width, out_channels=width)
    model['decode_head'].update(
        d_model=width, dim_ffn=width, text_channels=width)
    return model
