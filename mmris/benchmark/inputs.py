# Copyright (c) mmris contributors. All rights reserved.
"""Random inputs of a config's size for benchmarks (no data needed)."""
from typing import Tuple

import torch
from mmengine.config import Config
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from mmris.apis import find_ref_dataset

__all__ = ['input_spec', 'make_batch', 'official_inputs']


def input_spec(cfg: Config) -> Tuple[int, int]:
    """(input size, text length) from the config's test dataset (416 and
    17 when it sets none)."""
    ds = find_ref_dataset(cfg.test_dataloader.dataset) or {}
    return int(ds.get('img_size') or 416), int(ds.get('word_len') or 17)


def make_batch(batch: int, size: int, length: int, train: bool) -> dict:
    """A batch as the data loader gives it: ``batch`` random uint8 images of
    ``size`` x ``size``, CLIP-style token ids of ``length`` (start, random
    tokens of varied lengths, end) and, for training, random binary masks.
    Always the same for the same arguments (its own generator, seed 0).

    Args:
        batch (int): Images in the batch.
        size (int): Input size (square).
        length (int): Text length (token ids per sentence).
        train (bool): Add ``gt_mask`` to the data samples.

    Returns:
        dict: ``inputs`` (list of uint8 tensors) and ``data_samples``.
    """
    g = torch.Generator().manual_seed(0)
    inputs = [
        torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=g)
        for _ in range(batch)
    ]
    samples = []
    for i in range(batch):
        ids = torch.zeros(length, dtype=torch.long)
        n = 3 + i % max(length - 4, 1)
        ids[0] = 49406
        ids[1:n] = torch.randint(1, 49000, (n - 1, ), generator=g)
        ids[n] = 49407
        ds = SegDataSample(
            metainfo=dict(img_shape=(size, size), ori_shape=(size, size)))
        ds.text_ids = ids
        if train:
            ds.gt_mask = PixelData(
                data=(torch.rand(1, size, size, generator=g) > 0.7).float())
        samples.append(ds)
    return dict(inputs=inputs, data_samples=samples)


def official_inputs(prep: dict) -> Tuple[torch.Tensor, ...]:
    """(images, token ids, masks) of a batch preprocessed by the mmris data
    preprocessor in training mode, as the official models take them."""
    samples = prep['data_samples']
    word = torch.stack([ds.text_ids for ds in samples])
    mask = torch.stack([ds.gt_mask.data for ds in samples])
    img = prep['inputs']
    return img, word.to(img.device), mask.to(img.device)
