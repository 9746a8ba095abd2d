# Copyright (c) mmris contributors. All rights reserved.
"""Batches RIS samples and applies CLIP normalisation on the device."""
from typing import Optional, Sequence

import torch
from mmengine.model import BaseDataPreprocessor
from mmseg.registry import MODELS

#: CLIP image statistics in the 0-255 scale (used for all three methods,
#: DINOv2 in DETRIS included; utils/dataset.py of the official repositories).
CLIP_MEAN = (122.7709383, 116.7460125, 104.09373615)
CLIP_STD = (68.5005327, 66.6321579, 70.32316305)


@MODELS.register_module()
class RISDataPreprocessor(BaseDataPreprocessor):
    """Stack uint8 letterboxed images, move them to the device and normalise.

    ``(x - 255 * mean) / (255 * std)`` equals the official ``(x / 255 - mean)
    / std`` on the uint8 warped image.

    Args:
        mean (Sequence[float]): Defaults to CLIP's (0-255 scale).
        std (Sequence[float]): Defaults to CLIP's (0-255 scale).
        channels_last (bool): Return the batch in channels-last memory
            format (faster convolutions on GPU). Defaults to False.
    """

    def __init__(self,
                 mean: Sequence[float] = CLIP_MEAN,
                 std: Sequence[float] = CLIP_STD,
                 channels_last: bool = False,
                 non_blocking: Optional[bool] = True):
        super().__init__(non_blocking)
        self.register_buffer('mean', torch.tensor(mean).view(-1, 1, 1), False)
        self.register_buffer('std', torch.tensor(std).view(-1, 1, 1), False)
        self.channels_last = channels_last

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        inputs = data['inputs']
        if isinstance(inputs, (list, tuple)):
            shapes = {tuple(x.shape) for x in inputs}
            if len(shapes) != 1:
                raise ValueError('RIS inputs must share one letterboxed size, '
                                 f'got {sorted(shapes)}')
            inputs = torch.stack(list(inputs))
        inputs = (inputs.float() - self.mean) / self.std
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return dict(inputs=inputs, data_samples=data.get('data_samples'))
