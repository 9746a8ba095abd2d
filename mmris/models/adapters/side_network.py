# Copyright (c) mmris contributors. All rights reserved.
"""BarLeRIa global side-tuning network (NastrondAd/BarLeRIa,
model/side_adapter/)."""
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from mmseg.utils import OptConfigType
from torch import Tensor

from .absvit import AbSViT, AddFusion

PRIOR_NORMS = ('per_sample', 'batch_axis', 'channel')


class SideAdapterNetwork(nn.Module):
    """The official ``side_adapter_network`` (a tiny AbS-ViT with learnable
    queries, text prompts, CLIP-feature fusion and top-down attention).

    Token sequence: ``[queries (Q), prompt = proj(word) (L), patches (N)]``.
    Computation (``fuse(j)`` adds ``fusion_layers.layer_j`` of the j-th CLIP
    map to the patch tokens)::

        x = fuse(0, [query_embed + query_pos_embed, prompt, patches + pos])
        x1 = blocks(x)                                # first pass
        p = mean_L(prompt);  c = clamp(<x1/|x1|, n(p)>, 0, 1)
        td = feedback(5 * (x1 * c) @ (p p^T))         # top-down signals
        for i = 1..depth: x = fuse(i, block_i(x, td_i))   # second pass
        side = patches of x after the blocks in ``out_blocks``
        loss_var = sum_i MSE(decoders[i].linear(out_i), in_i)  # detached

    ``n(p)`` is selected by ``prior_norm``:

    * ``'per_sample'`` (default): ``p / |p|`` element-wise, i.e. what the
      official code computes for a batch of one (its test setting), for every
      sample independently of its batch-mates;
    * ``'batch_axis'``: the official training-time behaviour
      (``F.normalize(p[None, ..., None], dim=1)`` on a (1, B, C, 1)
      tensor): normalisation over the *batch* axis, so that a prediction
      depends on the other samples of the batch; use it only to reproduce
      the official numbers at batch size > 1;
    * ``'channel'``: the cosine similarity ``p / ||p||_2`` over channels
      (not in the official code).

    Args:
        clip_channels (int): Width of the CLIP maps. Defaults to 768.
        text_channels (int): Width of the word features. Defaults to 512.
        img_size (int): Defaults to 416.
        patch_size (int): Defaults to 16.
        embed_dim (int): Defaults to 144.
        depth (int): Defaults to 8.
        num_heads (int): Defaults to 3.
        mlp_ratio (float): Defaults to 4.
        num_queries (int): Defaults to 128.
        fusion_blocks (Sequence[int]): Side positions receiving the CLIP maps
            in order (0 = before the blocks, i = after block i of the second
            pass). Defaults to (0, 1, 2, 3).
        out_blocks (Sequence[int]): Second-pass blocks (1-based) whose patch
            tokens are returned. Defaults to (8, ).
        prior_norm (str): See above. Defaults to 'per_sample'.
        prior_scale (float): Defaults to 5.
    """

    def __init__(self,
                 clip_channels: int = 768,
                 text_channels: int = 512,
                 img_size: int = 416,
                 patch_size: int = 16,
                 embed_dim: int = 144,
                 depth: int = 8,
                 num_heads: int = 3,
                 mlp_ratio: float = 4.,
                 num_queries: int = 128,
                 fusion_blocks: Sequence[int] = (0, 1, 2, 3),
                 out_blocks: Sequence[int] = (8, ),
                 prior_norm: str = 'per_sample',
                 prior_scale: float = 5.) -> None:
        super().__init__()
        if prior_norm not in PRIOR_NORMS:
            raise ValueError(f'prior_norm must be one of {PRIOR_NORMS}, got '
                             f'{prior_norm!r}')
        bad = [i for i in out_blocks if not 1 <= i <= depth]
        bad += [i for i in fusion_blocks if not 0 <= i <= depth]
        if bad or not out_blocks:
            raise ValueError(f'fusion_blocks/out_blocks out of range for '
                             f'depth {depth}: {bad}')
        self.prior_norm = prior_norm
        self.prior_scale = prior_scale
        self.num_queries = num_queries
        self.fusion_blocks = tuple(fusion_blocks)
        self.out_blocks = tuple(out_blocks)
        self.vit_model = AbSViT(img_size, patch_size, 3, embed_dim, depth,
                                num_heads, mlp_ratio)
        self.query_embed = nn.Parameter(torch.zeros(1, num_queries, embed_dim))
        self.query_pos_embed = nn.Parameter(
            torch.zeros(1, num_queries, embed_dim))
        nn.init.normal_(self.query_embed, std=0.02)
        nn.init.normal_(self.query_pos_embed, std=0.02)
        self.fusion_layers = nn.ModuleDict({
            f'layer_{i}':
            AddFusion(clip_channels, embed_dim)
            for i in self.fusion_blocks
        })
        self.proj = nn.Sequential(
            nn.Linear(text_channels, 32), nn.ReLU(), nn.Linear(32, embed_dim))

    def _fuse(self, pos: int, x: Tensor, feats: List[Tensor], grid,
              num_patches: int) -> Tensor:
        if pos not in self.fusion_blocks:
            return x
        k = self.fusion_blocks.index(pos)
        patches = self.fusion_layers[f'layer_{pos}'](x[:, -num_patches:],
                                                     feats[k], grid)
        return torch.cat([x[:, :-num_patches], patches], dim=1)

    def _normalize_prior(self, p: Tensor) -> Tensor:
        if self.prior_norm == 'batch_axis':
            return F.normalize(p, dim=0)
        if self.prior_norm == 'channel':
            return F.normalize(p, dim=-1)
        return F.normalize(p.unsqueeze(1), dim=1).squeeze(1)

    def forward(self, img: Tensor, clip_feats: Sequence[Tensor],
                word: Tensor) -> Tuple[List[Tensor], Tensor]:
        """Return the side maps (B, C, h, w) and the reconstruction loss.

        Args:
            img (Tensor): (B, 3, H, W), the image fed to CLIP.
            clip_feats (Sequence[Tensor]): One CLIP patch map (B, C_clip,
                h', w') per entry of ``fusion_blocks``.
            word (Tensor): (B, L, C_w) word features.
        """
        if len(clip_feats) != len(self.fusion_blocks):
            raise ValueError(f'expected {len(self.fusion_blocks)} CLIP maps '
                             f'(one per fusion block), got {len(clip_feats)}')
        vit = self.vit_model
        patches, grid = vit.embed(img)
        n = patches.shape[1]
        b = patches.shape[0]
        queries = (self.query_embed + self.query_pos_embed).expand(b, -1, -1)
        prompt = self.proj(word)
        x = torch.cat([queries, prompt, patches], dim=1)
        x = self._fuse(0, x, clip_feats, grid, n)

        # first pass and the prompt-conditioned top-down signals
        x1 = x
        for blk in vit.blocks:
            x1 = blk(x1)
        p = prompt.mean(dim=1)  # (B, C)
        sim = F.normalize(x1, dim=-1) @ self._normalize_prior(p)[..., None]
        x1 = x1 * sim.clamp(0, 1)
        x1 = x1 @ (p[..., None] @ p[:, None]) * self.prior_scale
        td = vit.feedback(x1)

        # second pass with top-down attention
        ins, outs, side = [], [], []
        for i, blk in enumerate(vit.blocks, start=1):
            ins.append(x)
            x = blk(x, td[i - 1])
            outs.append(x)
            x = self._fuse(i, x, clip_feats, grid, n)
            if i in self.out_blocks:
                side.append(x[:, -n:].transpose(1, 2).reshape(b, -1, *grid))
        return side, vit.reconstruction_loss(ins, outs)


@MODELS.register_module()
class BarLeRIaSideNetwork(BaseModule):
    """Global side tuning of BarLeRIa: :class:`SideAdapterNetwork` plus
    ``side_linear`` (channel-last Linear to the neck width).

    Plugged into :class:`RISEncoderDecoder` through ``side_network=``: it is
    called as ``side_network(img, side_feats, word)`` with the CLIP patch
    maps tapped by ``AdaptedEncoderPair(side_indices=(0, 3, 6, 9))`` and
    returns the map added to the neck output, and ``{'loss_var': ...}``
    (added with weight ``loss_weight`` to the BCE loss).

    Args:
        out_channels (int): Width of the neck output. Defaults to 512.
        loss_weight (float): Weight of the reconstruction loss.
            Defaults to 1.
        init_cfg (dict, optional): Defaults to None.
        **kwargs: :class:`SideAdapterNetwork` arguments.
    """

    def __init__(self,
                 out_channels: int = 512,
                 loss_weight: float = 1.0,
                 init_cfg: OptConfigType = None,
                 **kwargs) -> None:
        super().__init__(init_cfg=init_cfg)
        self.side_adapter_network = SideAdapterNetwork(**kwargs)
        dim = self.side_adapter_network.vit_model.embed_dim
        self.side_linear = nn.Linear(
            dim * len(self.side_adapter_network.out_blocks), out_channels)
        self.loss_weight = loss_weight

    def forward(self, img: Tensor, side_feats: Sequence[Tensor],
                word: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        maps, var_loss = self.side_adapter_network(img, side_feats, word)
        x = torch.cat(maps, dim=1).permute(0, 2, 3, 1)
        x = self.side_linear(x).permute(0, 3, 1, 2)
        return x, dict(loss_var=self.loss_weight * var_loss)
