# Copyright (c) mmris contributors. All rights reserved.
"""BarLeRIa Intertwiner (NastrondAd/BarLeRIa, model/intertwiner.py): text input
embeddings projected into the visual token sequence."""
from typing import Optional

import torch.nn as nn
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from mmseg.utils import OptConfigType
from torch import Tensor

from ..utils.step_context import StepContext


@MODELS.register_module()
class Intertwiner(BaseModule):
    """Project the text input embeddings into visual prompt tokens.

    A ``tokens`` hook of :class:`AdaptedEncoderPair` on the visual tower
    before block 0 (``dict(point='tokens', tower='visual', layers=[0],
    name='token_injector', module=dict(type='Intertwiner'))``): it reads the
    text input embeddings ``E = token_emb + pos[:L]`` (B, L, C_t) from its
    context and returns ``proj(E)`` (B, L, C_v), which the stepper inserts
    after the visual CLS token (no visual positional embedding, no
    ``ln_pre``). ``proj`` is Linear(C_t, hidden) -> ReLU -> Linear(hidden,
    C_v) (keys ``proj.0``, ``proj.2``), weights N(0, 0.02), biases 0.

    The official vision-to-text direction (``use_txt_add``, a projection of
    the visual CLS token prepended to the text sequence) is off in every
    released config (``use_txt_add: False``). ``use_txt_add=True`` builds its
    ``proj_txt`` layers; attach :meth:`text_prefix` as a second ``tokens``
    hook on the text tower before block 0 (same ``name``, no ``module``,
    ``method='text_prefix'``): the stepper prepends that token to the text
    sequence and strips it again before ``ln_final``, so word features keep
    length L and the EOT index.

    Args:
        text_channels (int): Text width C_t. Defaults to 512.
        d_img (int): Visual width C_v. Defaults to 768.
        hidden (int): Bottleneck width. Defaults to 32.
        use_txt_add (bool): Vision-to-text direction. Defaults to False.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 text_channels: int = 512,
                 d_img: int = 768,
                 hidden: int = 32,
                 use_txt_add: bool = False,
                 init_cfg: OptConfigType = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.use_txt_add = use_txt_add
        self.proj = nn.Sequential(
            nn.Linear(text_channels, hidden), nn.ReLU(),
            nn.Linear(hidden, d_img))
        self.proj_txt: Optional[nn.Module] = None
        if use_txt_add:
            self.proj_txt = nn.Sequential(
                nn.Linear(d_img, hidden), nn.ReLU(),
                nn.Linear(hidden, text_channels))
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor, ctx: StepContext) -> Tensor:
        """Visual tokens (B, L, C_v) from the text input embeddings
        ``ctx.text_embed`` (B, L, C_t); ``x`` (the visual sequence) is not
        used."""
        return self.proj(ctx.text_embed)

    def text_prefix(self, x: Tensor, ctx: StepContext) -> Tensor:
        """A (B, 1, C_t) token for the text sequence from the visual CLS
        token after ``ln_pre`` (``ctx.visual_tokens[:, :1]``)."""
        if self.proj_txt is None:
            raise ValueError('Intertwiner.text_prefix needs use_txt_add=True')
        return self.proj_txt(ctx.visual_tokens[:, :1])
