# Copyright (c) mmris contributors. All rights reserved.
"""The shared referring decode head: transformer decoder + dynamic
projector."""
from typing import Dict

import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor

from .dynamic_projector import DynamicProjector
from .ris_transformer_decoder import RISTransformerDecoder


@MODELS.register_module()
class RISDecodeHead(BaseModule):
    """CRIS-style head shared by ETRIS, BarLeRIa and DETRIS.

    ``decoder`` attends the neck map to the word features, ``proj`` turns it
    into mask logits at 4x the neck resolution; the loss is BCE-with-logits
    against the soft target resized with legacy ``nearest`` (kkakkkka/ETRIS,
    model/segmenter.py).
    An optional Dice term (``dice_weight > 0``, not part of the official
    recipes) weighs every sample's mask overlap equally, whatever the
    object's area; the quick-start config uses it.

    Args:
        num_layers (int): Decoder layers. Defaults to 3.
        d_model (int): Decoder width (``vis_dim``). Defaults to 512.
        nhead (int): Defaults to 8.
        dim_ffn (int): Defaults to 512.
        dropout (float): Defaults to 0.1.
        text_channels (int): Sentence-feature width fed to the projector
            (1024 for ETRIS-RN50). Defaults to 512.
        loss_weight (float): Weight of the BCE term. Defaults to 1.0.
        dice_weight (float): Weight of the soft Dice term
            ``1 - (2 sum(p t) + 1) / (sum(p) + sum(t) + 1)`` per sample,
            ``p = sigmoid(logits)``; 0 (the official recipes) leaves it out.
            Defaults to 0.0.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 num_layers: int = 3,
                 d_model: int = 512,
                 nhead: int = 8,
                 dim_ffn: int = 512,
                 dropout: float = 0.1,
                 text_channels: int = 512,
                 loss_weight: float = 1.0,
                 dice_weight: float = 0.0,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.decoder = RISTransformerDecoder(num_layers, d_model, nhead,
                                             dim_ffn, dropout)
        self.proj = DynamicProjector(text_channels, d_model // 2, 3)
        if dice_weight < 0:
            raise ValueError(f'dice_weight must be >= 0, got {dice_weight}')
        self.loss_weight = loss_weight
        self.dice_weight = dice_weight

    def forward(self, fq: Tensor, word: Tensor, state: Tensor,
                pad_mask: Tensor) -> Tensor:
        """fq (B, C, H, W), word (B, L, C), state (B, D), pad_mask (B, L)
        -> logits (B, 1, 4H, 4W)."""
        return self.proj(self.decoder(fq, word, pad_mask), state)

    def loss_by_feat(self, logits: Tensor,
                     gt_masks: Tensor) -> Dict[str, Tensor]:
        """BCE-with-logits (+ optional Dice) against ``gt_masks``
        (B, 1, S, S) in [0, 1]."""
        if gt_masks.shape[-2:] != logits.shape[-2:]:
            gt_masks = F.interpolate(
                gt_masks, logits.shape[-2:], mode='nearest')
        logits, gt_masks = logits.float(), gt_masks.float()
        loss = F.binary_cross_entropy_with_logits(logits, gt_masks)
        losses = dict(loss_bce=self.loss_weight * loss)
        if self.dice_weight > 0:
            prob = logits.sigmoid().flatten(1)
            target = gt_masks.flatten(1)
            dice = 1 - (2 * (prob * target).sum(1) + 1) / (
                prob.sum(1) + target.sum(1) + 1)
            losses['loss_dice'] = self.dice_weight * dice.mean()
        return losses
