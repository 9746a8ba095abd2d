# Copyright (c) mmris contributors. All rights reserved.
"""EVA02-CLIP ViT image tower (EVA-CLIP layout) as a steppable frozen
encoder: the second backbone of BarLeRIa (NastrondAd/BarLeRIa, config
``barleria_v16_eva``: EVA02-CLIP-B/16 built by the repository's
``eva_clip`` package with ``force_custom_clip=True, rope_size=input_size``).

Parameter names are those of the EVA-CLIP files and the official BarLeRIa
checkpoints (``cls_token``, ``pos_embed`` (1, 197, C), ``patch_embed.proj``,
``blocks.{i}.{norm1, attn.{q_proj, k_proj, v_proj, q_bias, v_bias,
inner_attn_ln, proj}, norm2, mlp.{w1, w2, ffn_ln, w3}}``, ``norm``,
``head``). An EVA02 block (eva_clip/eva_vit_model.py) is a pre-norm block
with

* attention: q/k/v projections without bias plus separate ``q_bias`` and
  ``v_bias`` (no k bias), 2-D rotary position embeddings on the patch
  tokens of q and k, softmax attention with scale ``head_dim ** -0.5``, a
  LayerNorm over the merged heads (``inner_attn_ln``, "sub-LN") before the
  output projection;
* MLP: SwiGLU ``w3(ffn_ln(silu(w1 x) * w2 x))``;
* every LayerNorm with eps 1e-6, no LayerScale, no drop path at inference.

Rotary embeddings: EVA02's "language" frequencies ``1 / 10000 ** (2j / d)``
over a ``pt_hw_seq_len`` (16) grid interpolated to the patch grid, row angle
on the first half of each head, column angle on the second half, in
interleaved pairs; timm's ``RotaryEmbeddingCat`` / ``apply_rot_embed_cat``
compute exactly this (equal bit for bit to eva_clip's
``VisionRotaryEmbeddingFast``), for the patch grid of each call (the official
model builds its table once for ``rope_size``). BarLeRIa inserts the text
tokens after the CLS token; its modified rope (eva_clip/rope.py,
``if t.shape[2] != dim2``) then gives the first text token the phase of grid
cell (0, 0) and leaves patch 0 unrotated. Phase (0, 0) is the zero angle
(cos 1, sin 0 exactly), so that is equal, bit for bit, to rotating exactly
the patch tokens, each with its own phase, which is what is computed here;
there is no switch because no result could change.

Quirk kept by default: BarLeRIa's last map is ``head(patch tokens)``
without the final ``norm`` that EVA-CLIP's own image encoder applies before
``head`` (NastrondAd/BarLeRIa, model/intertwiner.py, ``Intertwiner_EVA``:
the ``ln_post`` line is commented out); ``final_norm=True`` applies it.
The positional table keeps its 14 x 14 pretraining grid and is resized
bicubically (``align_corners=False``, no antialiasing) to the input grid on
every call, as the official code does; its name is not
``positional_embedding``, so BarLeRIa's freezing rule keeps it frozen.
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS
from timm.layers import RotaryEmbeddingCat, apply_rot_embed_cat
from torch import Tensor

from mmris.checkpoint import load_state_dict_file
from ..utils.pos_embed import resize_pos_embed
from ..utils.step_context import StepContext
from .base_block import AdaptableBlock
from .base_encoder import VisualEncoder

#: Suffixes of the derived rotary tables some files store as buffers
#: (recomputed here from the patch grid, so never loaded).
ROPE_BUFFERS = ('rope.freqs_cos', 'rope.freqs_sin')


class EVA02Attention(nn.Module):
    """EVA02 self-attention with sub-LN and 2-D rotary embeddings on the
    patch tokens (keys ``q_proj``, ``k_proj``, ``v_proj``, ``q_bias``,
    ``v_bias``, ``inner_attn_ln``, ``proj``).

    Args:
        dim (int): Width.
        num_heads (int): Heads.
        rope_ref_grid (int): Side of the grid the rotary frequencies refer
            to (``pt_hw_seq_len``). Defaults to 16.
        norm_eps (float): Epsilon of ``inner_attn_ln``. Defaults to 1e-6.
    """

    def __init__(self,
                 dim: int,
                 num_heads: int,
                 rope_ref_grid: int = 16,
                 norm_eps: float = 1e-6) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'width {dim} not divisible by {num_heads} heads')
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.rope_ref_grid = rope_ref_grid
        # Registration order = EVA-CLIP's state-dict order.
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.inner_attn_ln = nn.LayerNorm(dim, eps=norm_eps)
        self.proj = nn.Linear(dim, dim)
        self._rope: Dict[tuple, Tensor] = {}

    def rope(self, grid: Tuple[int, int], device: torch.device) -> Tensor:
        """The (h*w, 2*head_dim) ``[sin, cos]`` table of a patch grid
        (cached per grid and device)."""
        key = (tuple(grid), device)
        if key not in self._rope:
            ref = [self.rope_ref_grid, self.rope_ref_grid]
            self._rope[key] = RotaryEmbeddingCat(
                self.head_dim,
                in_pixels=False,
                feat_shape=list(grid),
                ref_feat_shape=ref).get_embed().to(device)
        return self._rope[key]

    def project(self, x: Tensor) -> Tensor:
        """q, k, v of ``x`` (B, N, C) -> (B, N, 3C)."""
        return torch.cat([
            F.linear(x, self.q_proj.weight, self.q_bias),
            F.linear(x, self.k_proj.weight),
            F.linear(x, self.v_proj.weight, self.v_bias)
        ],
                         dim=-1)

    def attend_projected(self, qkv: Tensor,
                         grid: Optional[Tuple[int, int]]) -> Tensor:
        """Attention of projected ``qkv`` (B, N, 3C) whose last ``h*w``
        tokens are the patches of ``grid``, before ``proj``: (B, N, C)."""
        b, n, c3 = qkv.shape
        c = c3 // 3
        q, k, v = qkv.view(b, n, 3, self.num_heads,
                           self.head_dim).permute(2, 0, 3, 1, 4)
        if grid is not None:
            emb = self.rope(grid, qkv.device)
            p = emb.shape[0]
            q = torch.cat(
                [q[:, :, :n - p],
                 apply_rot_embed_cat(q[:, :, n - p:], emb)],
                dim=2)
            k = torch.cat(
                [k[:, :, :n - p],
                 apply_rot_embed_cat(k[:, :, n - p:], emb)],
                dim=2)
        x = F.scaled_dot_product_attention(q, k, v)
        x = x.transpose(1, 2).reshape(b, n, c)
        return self.inner_attn_ln(x)


class SwiGLU(nn.Module):
    """EVA02's SwiGLU with sub-LN: ``w3(ffn_ln(silu(w1 x) * w2 x))`` (keys
    ``w1``, ``w2``, ``ffn_ln``, ``w3``; timm's ``SwiGLU`` computes the same
    under other names).

    Args:
        dim (int): Width.
        hidden_dim (int): Hidden width.
        norm_eps (float): Epsilon of ``ffn_ln``. Defaults to 1e-6.
    """

    def __init__(self,
                 dim: int,
                 hidden_dim: int,
                 norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden_dim)
        self.w2 = nn.Linear(dim, hidden_dim)
        self.ffn_ln = nn.LayerNorm(hidden_dim, eps=norm_eps)
        self.w3 = nn.Linear(hidden_dim, dim)

    def hidden(self, x: Tensor) -> Tensor:
        """The activations before the output layer ``w3``."""
        return self.ffn_ln(F.silu(self.w1(x)) * self.w2(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.w3(self.hidden(x))


class EVA02Block(AdaptableBlock):
    """The EVA02 block (pre-norm, sub-LN attention with rope, SwiGLU) with
    the hook points of :class:`AdaptableBlock`.

    Args:
        dim (int): Width.
        num_heads (int): Heads.
        mlp_ratio (float): SwiGLU hidden width over ``dim`` (truncated, as
            ``int(768 * 2.6667) = 2048``). Defaults to 2.6667.
        rope_ref_grid (int): See :class:`EVA02Attention`. Defaults to 16.
        norm_eps (float): LayerNorm epsilon. Defaults to 1e-6.
    """

    def __init__(self,
                 dim: int,
                 num_heads: int,
                 mlp_ratio: float = 2.6667,
                 rope_ref_grid: int = 16,
                 norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = EVA02Attention(dim, num_heads, rope_ref_grid, norm_eps)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = SwiGLU(dim, int(dim * mlp_ratio), norm_eps)

    def norm_attn(self, x: Tensor) -> Tensor:
        return self.norm1(x)

    def proj_qkv(self, h: Tensor) -> Tensor:
        return self.attn.project(h)

    def attend(self, qkv: Tensor, attn_mask: Optional[Tensor],
               ctx: Optional[StepContext]) -> Tensor:
        return self.attn.attend_projected(qkv,
                                          None if ctx is None else ctx.grid)

    def attn_proj(self, x: Tensor) -> Tensor:
        return self.attn.proj(x)

    def norm_ffn(self, x: Tensor) -> Tensor:
        return self.norm2(x)

    def ffn_inner(self, x: Tensor) -> Tensor:
        return self.mlp.hidden(x)

    def ffn_proj(self, x: Tensor) -> Tensor:
        return self.mlp.w3(x)


class EVA02PatchEmbed(nn.Module):
    """Non-overlapping patch projection with bias (key ``proj``).

    Args:
        embed_dims (int): Width.
        patch_size (int): Patch side.
    """

    def __init__(self, embed_dims: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dims, patch_size, patch_size)

    def forward(self, img: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        x = self.proj(img)
        return x.flatten(2).transpose(1, 2), (x.shape[2], x.shape[3])


#: The open_clip / timm names (``EVA02-B-16``, ``eva02_base_patch16_clip_224``)
#: of the EVA-CLIP tower's keys, as (EVA-CLIP suffix, timm suffix).
TIMM_RENAMES = (('attn.q_bias', 'attn.q_proj.bias'),
                ('attn.v_bias', 'attn.v_proj.bias'), ('attn.inner_attn_ln.',
                                                      'attn.norm.'),
                ('mlp.ffn_ln.', 'mlp.norm.'), ('mlp.w1.', 'mlp.fc1_g.'),
                ('mlp.w2.', 'mlp.fc1_x.'), ('mlp.w3.', 'mlp.fc2.'))


def eva_clip_visual_state(state: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """The image-tower tensors of an EVA02-CLIP state dict, under the
    EVA-CLIP names without the ``visual.`` prefix.

    Accepts the EVA-CLIP release layout (``visual.*``) and the open_clip /
    timm one (``visual.trunk.*``, :data:`TIMM_RENAMES`); derived rotary
    tables (:data:`ROPE_BUFFERS`) are dropped.
    """
    out = {}
    for key, value in state.items():
        if key.startswith('visual.trunk.'):
            key = key[len('visual.trunk.'):]
            for eva, timm in TIMM_RENAMES:
                key = key.replace(timm, eva)
        elif key.startswith('visual.'):
            key = key[len('visual.'):]
        else:
            continue
        if not key.endswith(ROPE_BUFFERS):
            out[key] = value
    return out


@MODELS.register_module()
class EVA02VisionTransformer(VisualEncoder):
    """The EVA02-CLIP ViT image encoder (module docstring).

    Args:
        img_size (int): Resolution of the positional table's grid
            (``img_size // patch_size`` per side). Defaults to 224.
        patch_size (int): Defaults to 16.
        width (int): Defaults to 768.
        layers (int): Defaults to 12.
        heads (int): Defaults to 12.
        mlp_ratio (float): Defaults to 2.6667.
        output_dim (int): Width after ``head``. Defaults to 512.
        rope_ref_grid (int): ``pt_hw_seq_len`` of the rotary frequencies.
            Defaults to 16.
        final_norm (bool): Apply ``norm`` before ``head`` (EVA-CLIP's own
            image encoder does; BarLeRIa does not). Defaults to False.
        norm_eps (float): LayerNorm epsilon. Defaults to 1e-6.
        pretrained (str, optional): Local EVA02-CLIP file (EVA-CLIP layout,
            e.g. ``EVA02_CLIP_B_psz16_s8B.pt``, or open_clip/timm's);
            its image-tower tensors are loaded strictly into the tower's own
            keys. Defaults to None.
        init_cfg (dict, optional): Defaults to None.
    """

    num_prefix_tokens = 1
    #: EVA-CLIP's ``norm``: in the files, not used by BarLeRIa by default.
    not_used_by_default = ('norm.weight', 'norm.bias')

    def __init__(self,
                 img_size: int = 224,
                 patch_size: int = 16,
                 width: int = 768,
                 layers: int = 12,
                 heads: int = 12,
                 mlp_ratio: float = 2.6667,
                 output_dim: int = 512,
                 rope_ref_grid: int = 16,
                 final_norm: bool = False,
                 norm_eps: float = 1e-6,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.patch_size = patch_size
        self.embed_dims = width
        self.output_dim = output_dim
        self.final_norm = final_norm
        self.pretrained = pretrained
        grid = img_size // patch_size
        # Registration order = EVA-CLIP's state-dict order.
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, width))
        self.patch_embed = EVA02PatchEmbed(width, patch_size)
        self.blocks = nn.ModuleList(
            EVA02Block(width, heads, mlp_ratio, rope_ref_grid, norm_eps)
            for _ in range(layers))
        self.norm = nn.LayerNorm(width, eps=norm_eps)
        self.head = nn.Linear(width, output_dim)
        self._default_init()

    @property
    def unused_parameters(self) -> Tuple[str, ...]:
        return () if self.final_norm else self.not_used_by_default

    @property
    def blocks(self) -> nn.ModuleList:
        return self._modules['blocks']

    def _default_init(self) -> None:
        # EVA's initialisation (used when no weights are loaded).
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def load_eva_clip_state_dict(self, state: Dict[str, Tensor],
                                 source: str) -> None:
        """Load an EVA02-CLIP state dict (EVA-CLIP or open_clip/timm layout)
        strictly into the tower's own keys."""
        self.load_pretrained_state_dict(
            {
                k: v.float() if v.is_floating_point() else v
                for k, v in eva_clip_visual_state(state).items()
            }, source)

    def init_weights(self) -> None:
        if self.pretrained is None:
            return super().init_weights()
        state = load_state_dict_file(
            self.pretrained, 'an EVA02-CLIP file such as '
            'EVA02_CLIP_B_psz16_s8B.pt',
            nested=('model', 'module', 'state_dict'))
        state = {
            k[len('module.'):] if k.startswith('module.') else k: v
            for k, v in state.items()
        }
        self.load_eva_clip_state_dict(state, self.pretrained)

    # -- encoder interface ----------------------------------------------------
    def embed(self, img: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        x, grid = self.patch_embed(img.to(self.patch_embed.proj.weight.dtype))
        cls = self.cls_token.to(x.dtype).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        pos = resize_pos_embed(self.pos_embed[0], grid)
        return x + pos.to(x.dtype), grid

    def final_map(self,
                  x: Tensor,
                  grid: Tuple[int, int],
                  num_extra: int = 0) -> Tensor:
        """``head`` (after ``norm`` when ``final_norm``) of the patch
        tokens, as a map (B, output_dim, h, w)."""
        patches = x[:, self.num_prefix_tokens + num_extra:]
        if self.final_norm:
            patches = self.norm(patches)
        out = self.head(patches)
        return out.transpose(1, 2).reshape(x.shape[0], -1, *grid)
