# Copyright (c) mmris contributors. All rights reserved.
"""Tiny model configs and inputs shared by the model tests."""
import ast
import copy
import os.path as osp

import torch
from mmseg.structures import SegDataSample

OFFICIAL_KEYS = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), 'data', 'official_keys')


def read_official_keys(name: str) -> dict:
    """``{key: (shape, trainable)}`` of an official model's key list
    (``tests/data/official_keys/<name>.txt``, lines ``key\t(shape)\tT|-``)."""
    keys = {}
    with open(osp.join(OFFICIAL_KEYS, name + '.txt')) as f:
        for line in f:
            key, shape, flag = line.rstrip('\n').split('\t')
            keys[key] = (tuple(ast.literal_eval(shape)), flag == 'T')
    return keys


TINY_ETRIS_VIT = dict(
    type='RISEncoderDecoder',
    data_preprocessor=dict(type='RISDataPreprocessor'),
    backbone=dict(
        type='AdaptedEncoderPair',
        visual=dict(
            type='CLIPVisionTransformer',
            img_size=64,
            patch_size=16,
            width=32,
            layers=4,
            heads=2,
            output_dim=32),
        text=dict(
            type='CLIPTextTransformer',
            width=32,
            heads=2,
            layers=4,
            embed_dim=32,
            vocab_size=49408),
        adapters=dict(
            bridger=dict(
                point='bridge',
                layers=(1, 2, 3),
                module=dict(
                    type='BridgerViT',
                    d_img=(32, 32, 32),
                    text_channels=32,
                    d_model=16,
                    nhead=2))),
        out_indices=(1, 2),
        trainable=('positional_embedding', )),
    neck=dict(
        type='RISNeck',
        in_channels=(32, 32, 32),
        text_channels=32,
        out_channels=32,
        nhead=2),
    decode_head=dict(
        type='RISDecodeHead',
        d_model=32,
        nhead=2,
        dim_ffn=32,
        text_channels=32))


def barleria_adapters(vis: int, txt: int, hidden: int = 32) -> dict:
    """The BarLeRIa adapter specs: flow pairs in every block of both towers
    and the Intertwiner before visual block 0."""
    specs = {}
    for tower, dim in (('visual', vis), ('text', txt)):
        for point, name in (('attn_shortcut', 'flow'), ('ffn_shortcut',
                                                        'flow2')):
            specs[f'{tower}_{name}'] = dict(
                point=point,
                tower=tower,
                name=name,
                module=dict(type='ShortcutNormalizingFlow', dim=dim))
    specs['intertwiner'] = dict(
        point='tokens',
        tower='visual',
        layers=[0],
        name='token_injector',
        module=dict(
            type='Intertwiner', text_channels=txt, d_img=vis, hidden=hidden))
    return specs


def detris_adapters(vis: int,
                    txt: int,
                    vis_hidden: int,
                    txt_hidden: int,
                    layers=(1, 3),
                    **dense_aligner) -> dict:
    """The DETRIS adapter specs: Dense Aligners next to the visual FFNs and
    Text Adapters next to the text FFNs of ``layers``."""
    return dict(
        dense_aligner=dict(
            point='ffn_parallel',
            tower='visual',
            layers=list(layers),
            scale=0.2,
            input='norm',
            name='adapter',
            module=dict(
                type='DenseAligner',
                in_channels=vis,
                hidden_channels=vis_hidden,
                text_channels=txt,
                **dense_aligner)),
        text_adapter=dict(
            point='ffn_parallel',
            tower='text',
            layers=list(layers),
            scale=0.2,
            input='residual',
            name='adapter',
            module=dict(
                type='TextAdapter',
                in_channels=txt,
                hidden_channels=txt_hidden)))


def tiny_etris_cfg(**overrides) -> dict:
    cfg = copy.deepcopy(TINY_ETRIS_VIT)
    cfg.update(overrides)
    return cfg


def make_ids(batch: int = 2, length: int = 8, seed: int = 0) -> torch.Tensor:
    """Token ids [SOT, words..., EOT, 0...] of varying lengths."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.zeros(batch, length, dtype=torch.long)
    for i in range(batch):
        n = 2 + (i % (length - 2))
        ids[i, 0] = 49406
        ids[i, 1:n] = torch.randint(1, 49000, (n - 1, ), generator=g)
        ids[i, n] = 49407
    return ids


def make_samples(ids: torch.Tensor, size: int = 64, with_mask: bool = True):
    samples = []
    for i in range(ids.shape[0]):
        ds = SegDataSample(
            metainfo=dict(
                img_shape=(size, size),
                ori_shape=(size, size),
                inv_affine=[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
        ds.text_ids = ids[i]
        if with_mask:
            from mmengine.structures import PixelData
            mask = torch.zeros(1, size, size)
            mask[:, size // 4:size // 2, size // 4:size // 2] = 1
            ds.gt_mask = PixelData(data=mask)
        samples.append(ds)
    return samples
