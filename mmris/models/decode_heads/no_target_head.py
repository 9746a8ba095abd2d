# Copyright (c) mmris contributors. All rights reserved.
"""A "there is no such object" classifier for generalized RIS (gRefCOCO)."""
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor


@MODELS.register_module()
class NoTargetHead(BaseModule):
    """Decide from the fused features whether a sentence refers to nothing.

    ReLA (henghuiding/ReLA, CVPR 2023) adds a no-target classifier to its
    segmentation model; this is a small method-agnostic counterpart for
    the CRIS-style models of mmris: the neck's fused visual-linguistic map
    ``fq`` (B, C, H, W) is pooled (mean and max over positions), the
    sentence feature ``state`` (B, D) is projected to C channels, and
    optionally the mask logits contribute their max and mean (an empty
    predicted mask is evidence of "no target"); an MLP gives one logit per
    sample. It is trained with BCE-with-logits on the ``no_target`` flag of
    the samples; at test time a probability above ``threshold`` is a
    no-target prediction (the segmentor then empties the mask).

    Args:
        in_channels (int): Channels of ``fq``.
        text_channels (int): Width of the sentence feature ``state``.
        hidden_channels (int): MLP width. Defaults to 256.
        use_mask_logits (bool): Also feed the max and mean of the mask
            logits. Defaults to True.
        loss_weight (float): Weight of the BCE term. Defaults to 1.0.
        threshold (float): Probability above which a sample is predicted
            as no-target. Defaults to 0.5.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 text_channels: int,
                 hidden_channels: int = 256,
                 use_mask_logits: bool = True,
                 loss_weight: float = 1.0,
                 threshold: float = 0.5,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        for name, value in (('in_channels', in_channels), ('text_channels',
                                                           text_channels),
                            ('hidden_channels', hidden_channels)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f'NoTargetHead: {name} must be a positive int, got '
                    f'{value!r}')
        if not 0.0 < threshold < 1.0:
            raise ValueError(
                f'NoTargetHead: threshold must be in (0, 1), got {threshold}')
        if loss_weight < 0:
            raise ValueError(
                f'NoTargetHead: loss_weight must be >= 0, got {loss_weight}')
        self.in_channels = in_channels
        self.use_mask_logits = use_mask_logits
        self.loss_weight = loss_weight
        self.threshold = threshold
        self.text_proj = nn.Linear(text_channels, in_channels)
        extra = 2 if use_mask_logits else 0
        self.mlp = nn.Sequential(
            nn.Linear(3 * in_channels + extra, hidden_channels),
            nn.ReLU(inplace=True), nn.Linear(hidden_channels, 1))

    def forward(self,
                fq: Tensor,
                state: Tensor,
                mask_logits: Optional[Tensor] = None) -> Tensor:
        """No-target logits.

        Args:
            fq (Tensor): Fused map (B, C, H, W).
            state (Tensor): Sentence feature (B, D).
            mask_logits (Tensor, optional): Mask logits (B, 1, h, w); needed
                when ``use_mask_logits``.

        Returns:
            Tensor: (B,) logits; > logit(threshold) means no target.
        """
        if fq.dim() != 4 or fq.shape[1] != self.in_channels:
            raise ValueError(
                f'NoTargetHead: fq must be (B, {self.in_channels}, H, W), '
                f'got {tuple(fq.shape)}')
        feats = [fq.mean((2, 3)), fq.amax((2, 3)), self.text_proj(state)]
        if self.use_mask_logits:
            if mask_logits is None:
                raise ValueError('NoTargetHead(use_mask_logits=True) needs '
                                 'the mask logits')
            flat = mask_logits.flatten(1).to(fq.dtype)
            feats += [flat.amax(1, keepdim=True), flat.mean(1, keepdim=True)]
        return self.mlp(torch.cat(feats, dim=1)).squeeze(1)

    def loss_by_feat(self, logits: Tensor,
                     no_target: Tensor) -> Dict[str, Tensor]:
        """BCE-with-logits against the samples' ``no_target`` flags (B,)."""
        loss = F.binary_cross_entropy_with_logits(
            logits.float(),
            no_target.to(logits.device).float())
        return dict(loss_no_target=self.loss_weight * loss)

    def predict(self, logits: Tensor) -> Tuple[Tensor, Tensor]:
        """Boolean no-target decisions (B,) and their probabilities (B,)."""
        prob = logits.float().sigmoid()
        return prob > self.threshold, prob
