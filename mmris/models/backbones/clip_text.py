# Copyright (c) mmris contributors. All rights reserved.
"""CLIP text tower (OpenAI layout) as a steppable frozen encoder."""
from typing import Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
from mmseg.registry import MODELS
from torch import Tensor

from mmris.checkpoint import load_clip_state_dict, load_state_dict_file
from ..utils.layer_norm import LayerNormFp32
from ..utils.step_context import StepContext
from .base_encoder import TextEncoder
from .clip_block import CLIPTransformer


@MODELS.register_module()
class CLIPTextTransformer(TextEncoder):
    """The OpenAI CLIP text encoder with the RIS semantics of the official
    ETRIS / BarLeRIa / DETRIS code (kkakkkka/ETRIS, model/clip.py).

    The positional table keeps its 77 rows and is sliced to the input length
    L; the causal mask is built for L; word features are the ``ln_final``
    output (not projected) and the sentence feature is the EOT token's
    feature (``argmax`` of the ids) times ``text_projection``.

    EVA02-CLIP's text tower (eva_clip ``TextTransformer``) is the same
    network with exact GELU (``act='gelu'``) and its files keep it under
    ``text.`` (``layout='eva_clip'``). BarLeRIa-EVA builds its causal mask
    for 77 tokens while it feeds 17, but its attention (xformers) only uses
    the mask's presence, as a causal mask over the fed tokens
    (eva_clip/transformer.py: ``xops.LowerTriangularMask()``), which is this
    L x L mask.

    Args:
        context_length (int): Rows of the positional table. Defaults to 77.
        vocab_size (int): Defaults to 49408.
        width (int): Defaults to 512.
        heads (int): Defaults to 8.
        layers (int): Defaults to 12.
        embed_dim (int): Width of the sentence feature. Defaults to 512.
        act (str): MLP activation, 'quick_gelu' or 'gelu'. Defaults to
            'quick_gelu'.
        pretrained (str, optional): Local checkpoint: OpenAI's (``visual.*``
            entries are ignored; every other entry must match a key of the
            tower, adapters attached to the blocks excepted) or, with
            ``layout='eva_clip'``, an EVA02-CLIP file (its ``text.*``
            entries and ``logit_scale``). Defaults to None.
        layout (str): Key layout of ``pretrained``: 'openai' or 'eva_clip'.
            Defaults to 'openai'.
        init_cfg (dict, optional): Defaults to None.
    """

    #: CLIP's contrastive temperature: in the file, unused by RIS models.
    unused_parameters = ('logit_scale', )

    def __init__(self,
                 context_length: int = 77,
                 vocab_size: int = 49408,
                 width: int = 512,
                 heads: int = 8,
                 layers: int = 12,
                 embed_dim: int = 512,
                 act: str = 'quick_gelu',
                 pretrained: Optional[str] = None,
                 layout: str = 'openai',
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if layout not in ('openai', 'eva_clip'):
            raise ValueError("layout must be 'openai' or 'eva_clip', got "
                             f'{layout!r}')
        self.layout = layout
        self.embed_dims = width
        self.output_dim = embed_dim
        self.pretrained = pretrained
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(
            torch.empty(context_length, width))
        self.transformer = CLIPTransformer(width, layers, heads, act=act)
        self.ln_final = LayerNormFp32(width)
        self.text_projection = nn.Parameter(torch.empty(width, embed_dim))
        self.logit_scale = nn.Parameter(torch.ones([]) * np.log(1 / 0.07))
        self._masks: Dict[tuple, Tensor] = {}
        self._default_init()

    def _default_init(self) -> None:
        # OpenAI CLIP's initialisation (used when no weights are loaded).
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        width, layers = self.transformer.width, len(self.blocks)
        proj_std = width**-0.5 * (2 * layers)**-0.5
        for block in self.blocks:
            nn.init.normal_(block.attn.in_proj_weight, std=width**-0.5)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=(2 * width)**-0.5)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(self.text_projection, std=width**-0.5)

    @property
    def blocks(self) -> nn.ModuleList:
        return self.transformer.resblocks

    def init_weights(self) -> None:
        """Load the text-tower tensors of ``pretrained`` strictly into the
        tower's own keys; the attached adapters keep their
        initialisation."""
        if self.pretrained is None:
            return super().init_weights()
        if self.layout == 'eva_clip':
            state = load_state_dict_file(
                self.pretrained, 'an EVA02-CLIP file such as '
                'EVA02_CLIP_B_psz16_s8B.pt',
                nested=('model', 'module', 'state_dict'))
            own = {}
            for key, value in state.items():
                key = key[len('module.'):] if key.startswith('module.') \
                    else key
                if key.startswith('text.'):
                    key = key[len('text.'):]
                elif key != 'logit_scale':
                    continue
                own[key] = value.float() if value.is_floating_point() \
                    else value
        else:
            state = load_clip_state_dict(self.pretrained)
            own = {
                k: v
                for k, v in state.items() if not k.startswith('visual.')
            }
        self.load_pretrained_state_dict(own, self.pretrained)

    def causal_mask(self, length: int, device: torch.device) -> Tensor:
        key = (length, device)
        if key not in self._masks:
            mask = torch.full((length, length), float('-inf'), device=device)
            self._masks[key] = mask.triu_(1)
        return self._masks[key]

    def embed(self, ids: Tensor) -> Tensor:
        length = ids.shape[1]
        if length > self.positional_embedding.shape[0]:
            raise ValueError(
                f'text length {length} exceeds the positional table '
                f'({self.positional_embedding.shape[0]} rows)')
        x = self.token_embedding(ids)
        return x + self.positional_embedding[:length].to(x.dtype)

    def run_block(self,
                  index: int,
                  x: Tensor,
                  ctx: Optional[StepContext] = None) -> Tensor:
        mask = self.causal_mask(x.shape[1], x.device)
        return self.blocks[index](x, ctx, attn_mask=mask)

    def final_features(self, x: Tensor, ids: Tensor) -> Tuple[Tensor, Tensor]:
        word = self.ln_final(x)
        eot = word[torch.arange(word.shape[0], device=word.device),
                   ids.argmax(dim=-1)]
        return word, eot @ self.text_projection.to(word.dtype)
