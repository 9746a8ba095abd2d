# Copyright (c) mmris contributors. All rights reserved.
"""BarLeRIa Intertwiner (NastrondAd/BarLeRIa, model/intertwiner.py): text input
embeddings projected into the visual token sequence."""
from typing import Optional

import torch.nn as nn
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from mmseg.utils import OptConfigType
from torch import Tensor


@MODELS.register_module()
class Intertwiner(BaseModule):
    """Project the text input embeddings into visual prompt tokens.

    Used as the ``token_injector`` of :class:`AdaptedEncoderPair`: it is
    called on the text input embeddings ``E = token_emb + pos[:L]`` (B, L,
    C_t) and returns ``proj(E)`` (B, L, C_v), which the stepper inserts after
    the visual CLS token, before block 0 (no visual positional embedding, no
    ``ln_pre``). ``proj`` is Linear(C_t, hidden) -> ReLU -> Linear(hidden,
    C_v) (keys ``proj.0``, ``proj.2``), weights N(0, 0.02), biases 0.

    The official vision-to-text direction (``use_txt_add``, a projection of
    the visual CLS token prepended to the text sequence) is off in every
    released config (``use_txt_add: False``). ``use_txt_add=True`` builds its
    ``proj_txt`` layers and :meth:`text_prefix` returns that token, which the
    stepper prepends to the text sequence (and strips again before
    ``ln_final``, so word features keep length L and the EOT index).

    Args:
        d_txt (int): Text width C_t. Defaults to 512.
        d_img (int): Visual width C_v. Defaults to 768.
        hidden (int): Bottleneck width. Defaults to 32.
        use_txt_add (bool): Vision-to-text direction. Defaults to False.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 d_txt: int = 512,
                 d_img: int = 768,
                 hidden: int = 32,
                 use_txt_add: bool = False,
                 init_cfg: OptConfigType = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.use_txt_add = use_txt_add
        self.proj = nn.Sequential(nn.Linear(d_txt, hidden), nn.ReLU(),
                                  nn.Linear(hidden, d_img))
        self.proj_txt: Optional[nn.Module] = None
        if use_txt_add:
            self.proj_txt = nn.Sequential(nn.Linear(d_img, hidden), nn.ReLU(),
                                          nn.Linear(hidden, d_txt))
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, text_embeds: Tensor) -> Tensor:
        """(B, L, C_t) text input embeddings -> (B, L, C_v) visual tokens."""
        return self.proj(text_embeds)

    def text_prefix(self, cls_token: Tensor) -> Optional[Tensor]:
        """(B, 1, C_v) visual CLS after ``ln_pre`` -> (B, 1, C_t) token to
        prepend to the text sequence, or None when ``use_txt_add`` is off."""
        if self.proj_txt is None:
            return None
        return self.proj_txt(cls_token)
