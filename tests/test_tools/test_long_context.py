# Copyright (c) mmris contributors. All rights reserved.
"""Longer text contexts (issue: long G-Ref expressions): ``word_len`` up to
CLIP's 77 positions runs through dataset, tokenizer, text tower, training
step and prediction for each method; 78 is refused naming the table."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS

import mmris  # noqa: F401
from mmris.apis import init_model
from mmris.datasets.transforms.tokenizer import EOT_TOKEN_ID

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
LONG = ' '.join(['the small red circle next to the big one'] * 12)


def _options(root, word_len):
    """The documented way to train and test with a longer context."""
    return {
        f'{k}_dataloader.dataset.{key}': value
        for k in ('train', 'val', 'test')
        for key, value in (('word_len', word_len), ('data_root', root))
    }


def model_optim_wrapper(model):
    """A no-op SGD step (lr 0): the train step runs, weights stay."""
    from mmengine.optim import OptimWrapper
    return OptimWrapper(
        torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                        lr=0.0))


@pytest.mark.parametrize('method', ['etris', 'barleria', 'detris'])
@pytest.mark.slow
def test_word_len_77_end_to_end(synthetic_root, method):
    init_default_scope('mmseg')
    config = osp.join(REPO, 'configs', 'quickstart',
                      f'{method}-tiny_synthetic.py')
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(_options(synthetic_root, 77))
    torch.manual_seed(0)
    model = init_model(cfg, None, device='cpu')
    assert model.backbone.text.positional_embedding.shape[0] == 77
    for phase in ('train', 'test'):
        ds = DATASETS.build(cfg[f'{phase}_dataloader'].dataset)
        info = ds.get_data_info(0)
        info['text'] = LONG
        packed = ds.pipeline(info)
        ids = packed['data_samples'].text_ids
        assert ids.shape == (77, ) and int(ids[-1]) == EOT_TOKEN_ID
        assert int((ids != 0).sum()) == 77  # the whole context is used
        batch = pseudo_collate([packed, ds[1]])
        if phase == 'train':
            model.train()
            losses = model.train_step(batch, model_optim_wrapper(model))
            assert torch.isfinite(losses['loss'])
        else:
            model.eval()
            with torch.no_grad():
                out = model.test_step(batch)
            assert out[0].pred_sem_seg.shape == (info['height'], info['width'])
    cfg.merge_from_dict(_options(synthetic_root, 78))
    ds = DATASETS.build(cfg.test_dataloader.dataset)
    with torch.no_grad(), pytest.raises(
            ValueError,
            match='text length 78 exceeds the '
            r'positional table \(77 rows\)'):
        model.test_step(pseudo_collate([ds[0]]))
