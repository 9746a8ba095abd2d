# Copyright (c) mmris contributors. All rights reserved.
"""DINOv2 ViT with register tokens (Meta layout) as a steppable frozen
encoder, the DETRIS visual backbone (jiaqihuang01/DETRIS, model/dinov2/).

Parameter names follow Meta's checkpoints (``dinov2_vit{s,b,l,g}14_reg4_
pretrain.pth``): ``cls_token``, ``pos_embed``, ``register_tokens``,
``mask_token``, ``patch_embed.proj``, ``blocks.{i}.{norm1, attn.qkv,
attn.proj, ls1.gamma, norm2, mlp.fc1, mlp.fc2 (mlp.w12, mlp.w3 for ViT-g),
ls2.gamma}``, ``norm``. Attention runs on PyTorch's fused
``scaled_dot_product_attention``.
"""
import math
from typing import Dict, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor

from mmris.checkpoint import load_state_dict_file
from ..utils.step_context import StepContext
from .base_block import AdaptableBlock
from .base_encoder import VisualEncoder


def interpolate_pos_embed(pos_embed: Tensor,
                          grid: Tuple[int, int],
                          offset: float = 0.1,
                          antialias: bool = False) -> Tensor:
    """DINOv2's positional-table interpolation
    (``DinoVisionTransformer.interpolate_pos_encoding``).

    The square patch table (M x M) is resized bicubically to ``grid`` with
    ``scale_factor = ((h + offset) / M, (w + offset) / M)`` (or to
    ``size=grid`` when ``offset`` is 0); the class row is kept. A grid equal
    to the table is returned unchanged.

    Args:
        pos_embed (Tensor): (1, 1 + M*M, C).
        grid (tuple[int, int]): Target patch grid (h, w).
        offset (float): Defaults to 0.1.
        antialias (bool): Defaults to False.

    Returns:
        Tensor: (1, 1 + h*w, C) in the dtype of ``pos_embed``.
    """
    h, w = (int(g) for g in grid)
    num = pos_embed.shape[1] - 1
    side = int(math.sqrt(num))
    if side * side != num:
        raise ValueError(f'positional table with {num} patch rows is not '
                         'square')
    if (h, w) == (side, side):
        return pos_embed
    dtype = pos_embed.dtype
    pos_embed = pos_embed.float()
    dim = pos_embed.shape[-1]
    table = pos_embed[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
    if offset:
        kwargs = dict(
            scale_factor=(float(h + offset) / side, float(w + offset) / side))
    else:
        kwargs = dict(size=(h, w))
    table = F.interpolate(table, mode='bicubic', antialias=antialias, **kwargs)
    if tuple(table.shape[-2:]) != (h, w):
        raise RuntimeError(f'interpolated table is {tuple(table.shape[-2:])}'
                           f', expected {(h, w)}')
    table = table.permute(0, 2, 3, 1).reshape(1, h * w, dim)
    return torch.cat([pos_embed[:, :1], table], dim=1).to(dtype)


class LayerScale(nn.Module):
    """Per-channel scaling ``x * gamma`` (key ``gamma``).

    Args:
        dim (int): Channels.
        init_value (float): Initial gamma. Defaults to 1.0.
    """

    def __init__(self, dim: int, init_value: float = 1.0):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim, ), float(init_value)))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class DINOv2Attention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection (keys
    ``qkv``, ``proj``) on ``scaled_dot_product_attention``.

    Args:
        dim (int): Width.
        num_heads (int): Heads.
        qkv_bias (bool): Defaults to True.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'width {dim} not divisible by {num_heads} heads')
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, attn_mask: Optional[Tensor] = None) -> Tensor:
        return self.proj(self.attend(x, attn_mask))

    def attend(self, x: Tensor, attn_mask: Optional[Tensor] = None) -> Tensor:
        """The heads' outputs, concatenated, before ``proj``."""
        return self.attend_projected(self.qkv(x), attn_mask)

    def attend_projected(self,
                         qkv: Tensor,
                         attn_mask: Optional[Tensor] = None) -> Tensor:
        """Attention of the (possibly adapted) ``qkv(x)`` (B, N, 3C)."""
        b, n, c3 = qkv.shape
        c = c3 // 3
        qkv = qkv.reshape(b, n, 3, self.num_heads,
                          c // self.num_heads).permute(2, 0, 3, 1, 4)
        if attn_mask is not None:
            attn_mask = attn_mask.to(qkv.dtype)
        x = F.scaled_dot_product_attention(
            qkv[0], qkv[1], qkv[2], attn_mask=attn_mask)
        return x.transpose(1, 2).reshape(b, n, c)


class Mlp(nn.Module):
    """``fc2(GELU(fc1(x)))``.

    Args:
        dim (int): Width.
        hidden_dim (int): Hidden width.
    """

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.project(self.hidden(x))

    def hidden(self, x: Tensor) -> Tensor:
        """The activations before the output layer ``fc2``."""
        return self.act(self.fc1(x))

    def project(self, x: Tensor) -> Tensor:
        return self.fc2(x)


class SwiGLUFFN(nn.Module):
    """DINOv2's fused SwiGLU FFN (ViT-g): ``w3(SiLU(x1) * x2)`` with
    ``[x1, x2] = w12(x)`` and the hidden width rounded as Meta's
    ``SwiGLUFFNFused`` (2/3 of ``hidden_dim``, up to a multiple of 8).

    Args:
        dim (int): Width.
        hidden_dim (int): Nominal hidden width (``mlp_ratio * dim``).
    """

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        hidden_dim = (int(hidden_dim * 2 / 3) + 7) // 8 * 8
        self.w12 = nn.Linear(dim, 2 * hidden_dim)
        self.w3 = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.project(self.hidden(x))

    def hidden(self, x: Tensor) -> Tensor:
        """The activations before the output layer ``w3``."""
        x1, x2 = self.w12(x).chunk(2, dim=-1)
        return F.silu(x1) * x2

    def project(self, x: Tensor) -> Tensor:
        return self.w3(x)


class DINOv2Block(AdaptableBlock):
    """DINOv2's pre-norm block with LayerScale::

        x <- x + ls1(attn(norm1(x)))
        x <- x + ls2(mlp(norm2(x)) + scale * adapter(a, ctx))

    Args:
        embed_dims (int): Width.
        num_heads (int): Heads.
        mlp_ratio (float): FFN hidden width / width. Defaults to 4.
        qkv_bias (bool): Defaults to True.
        ffn_type (str): 'mlp' (GELU) or 'swiglu'. Defaults to 'mlp'.
        layer_scale_init_value (float): Initial LayerScale gamma; 0 or None
            disables LayerScale. Defaults to 1.0.
        norm_eps (float): LayerNorm epsilon. Defaults to 1e-6.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 mlp_ratio: float = 4.0,
                 qkv_bias: bool = True,
                 ffn_type: str = 'mlp',
                 layer_scale_init_value: Optional[float] = 1.0,
                 norm_eps: float = 1e-6):
        super().__init__()
        hidden = int(embed_dims * mlp_ratio)
        if ffn_type == 'mlp':
            mlp = Mlp(embed_dims, hidden)
        elif ffn_type == 'swiglu':
            mlp = SwiGLUFFN(embed_dims, hidden)
        else:
            raise ValueError(f"ffn_type must be 'mlp' or 'swiglu', got "
                             f'{ffn_type!r}')

        def layer_scale():
            if not layer_scale_init_value:
                return nn.Identity()
            return LayerScale(embed_dims, layer_scale_init_value)

        # Registration order = Meta's state-dict order.
        self.norm1 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.attn = DINOv2Attention(embed_dims, num_heads, qkv_bias)
        self.ls1 = layer_scale()
        self.norm2 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.mlp = mlp
        self.ls2 = layer_scale()

    def norm_attn(self, x: Tensor) -> Tensor:
        return self.norm1(x)

    def proj_qkv(self, h: Tensor) -> Tensor:
        return self.attn.qkv(h)

    def attend(self, qkv: Tensor, attn_mask: Optional[Tensor],
               ctx: Optional[StepContext]) -> Tensor:
        return self.attn.attend_projected(qkv, attn_mask)

    def attn_proj(self, x: Tensor) -> Tensor:
        return self.attn.proj(x)

    def norm_ffn(self, x: Tensor) -> Tensor:
        return self.norm2(x)

    def ffn_inner(self, x: Tensor) -> Tensor:
        return self.mlp.hidden(x)

    def ffn_proj(self, x: Tensor) -> Tensor:
        return self.mlp.project(x)

    def scale_attn(self, x: Tensor) -> Tensor:
        return self.ls1(x)

    def scale_ffn(self, x: Tensor) -> Tensor:
        return self.ls2(x)


class DINOv2PatchEmbed(nn.Module):
    """Non-overlapping patch projection (key ``proj``).

    Args:
        in_channels (int): Image channels.
        embed_dims (int): Width.
        patch_size (int): Patch side.
    """

    def __init__(self, in_channels: int, embed_dims: int, patch_size: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(
            in_channels, embed_dims, kernel_size=patch_size, stride=patch_size)

    def forward(self, img: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        """(B, 3, H, W) -> tokens (B, h*w, C), grid (h, w)."""
        h, w = img.shape[-2:]
        p = self.patch_size
        if h % p or w % p:
            raise ValueError(f'input size {h}x{w} is not a multiple of the '
                             f'patch size {p}')
        x = self.proj(img)
        grid = (x.shape[2], x.shape[3])
        return x.flatten(2).transpose(1, 2), grid


@MODELS.register_module()
class DINOv2(VisualEncoder):
    """DINOv2 ViT (optionally with registers), the DETRIS visual backbone.

    Tokens are laid out as ``[CLS, registers, patches]``: the positional
    table (CLS row + M x M patch rows) is added to ``[CLS, patches]`` first,
    interpolated to the input grid as in DINOv2 (bicubic, no antialiasing,
    ``scale_factor = ((h + 0.1) / M, (w + 0.1) / M)``, computed on every
    forward), and the registers (no positional embedding) are inserted after
    the CLS token. A 448 x 448 input gives 32 x 32 patches and 1029 tokens;
    non-square inputs work. :meth:`head` applies the final ``norm`` and
    returns the patch map; taps of :class:`AdaptedEncoderPair` are the raw
    (un-normalised) residual streams.

    Hooks of the blocks receive the patch grid in their
    :class:`~mmris.models.utils.StepContext`, so the Dense Aligner reshapes
    non-square grids.

    Stochastic depth and Meta's nested-tensor/xFormers paths are not
    implemented (DETRIS uses neither).

    Args:
        arch (str | dict): 'vit-s', 'vit-b', 'vit-l', 'vit-g' (or 'small',
            'base', 'large', 'giant'), or a dict with ``embed_dims``,
            ``num_layers``, ``num_heads`` and optionally ``ffn_type``
            ('mlp' | 'swiglu'). Defaults to 'vit-b'.
        img_size (int): Resolution the positional table is built for
            (grid ``img_size // patch_size``; 518 and DETRIS' 526 both give
            Meta's 37 x 37 table). Defaults to 518.
        patch_size (int): Defaults to 14.
        in_channels (int): Defaults to 3.
        num_register_tokens (int): Defaults to 4.
        mlp_ratio (float): Defaults to 4.
        qkv_bias (bool): Defaults to True.
        layer_scale_init_value (float): Initial LayerScale gamma (0/None: no
            LayerScale). Defaults to 1.0.
        interpolate_offset (float): Offset of the positional interpolation
            (0 interpolates to the exact size). Defaults to 0.1.
        interpolate_antialias (bool): Defaults to False.
        norm_eps (float): LayerNorm epsilon. Defaults to 1e-6.
        pretrained (str, optional): Local Meta checkpoint (a plain state
            dict, e.g. ``dinov2_vitb14_reg4_pretrain.pth``), loaded strictly
            by :meth:`init_weights` (keys of attached adapters excepted).
            Defaults to None.
        init_cfg (dict, optional): Defaults to None.
    """

    #: Meta's masked-image-modelling token: in the file, unused here.
    unused_parameters = ('mask_token', )

    arch_zoo: Dict[str, dict] = {
        **dict.fromkeys(['s', 'small', 'vit-s'],
                        dict(
                            embed_dims=384,
                            num_layers=12,
                            num_heads=6,
                            ffn_type='mlp')),
        **dict.fromkeys(['b', 'base', 'vit-b'],
                        dict(
                            embed_dims=768,
                            num_layers=12,
                            num_heads=12,
                            ffn_type='mlp')),
        **dict.fromkeys(['l', 'large', 'vit-l'],
                        dict(
                            embed_dims=1024,
                            num_layers=24,
                            num_heads=16,
                            ffn_type='mlp')),
        **dict.fromkeys(['g', 'giant', 'vit-g'],
                        dict(
                            embed_dims=1536,
                            num_layers=40,
                            num_heads=24,
                            ffn_type='swiglu')),
    }

    def __init__(self,
                 arch: Union[str, dict] = 'vit-b',
                 img_size: int = 518,
                 patch_size: int = 14,
                 in_channels: int = 3,
                 num_register_tokens: int = 4,
                 mlp_ratio: float = 4.0,
                 qkv_bias: bool = True,
                 layer_scale_init_value: Optional[float] = 1.0,
                 interpolate_offset: float = 0.1,
                 interpolate_antialias: bool = False,
                 norm_eps: float = 1e-6,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if isinstance(arch, str):
            if arch.lower() not in self.arch_zoo:
                raise ValueError(f'unknown DINOv2 arch {arch!r}; choose from '
                                 f'{sorted(self.arch_zoo)} or pass a dict')
            arch = self.arch_zoo[arch.lower()]
        else:
            missing = {'embed_dims', 'num_layers', 'num_heads'} - set(arch)
            if missing:
                raise ValueError(f'custom arch lacks {sorted(missing)}')
        if num_register_tokens < 0:
            raise ValueError('num_register_tokens must be >= 0')
        self.embed_dims = arch['embed_dims']
        self.num_layers = arch['num_layers']
        self.patch_size = patch_size
        self.num_register_tokens = num_register_tokens
        self.num_prefix_tokens = 1 + num_register_tokens
        self.interpolate_offset = interpolate_offset
        self.interpolate_antialias = interpolate_antialias
        self.pretrained = pretrained
        dims = self.embed_dims
        grid = img_size // patch_size

        # Registration order = Meta's state-dict order.
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dims))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, dims))
        self.register_tokens = (
            nn.Parameter(torch.zeros(1, num_register_tokens, dims))
            if num_register_tokens else None)
        self.mask_token = nn.Parameter(torch.zeros(1, dims))  # unused
        self.patch_embed = DINOv2PatchEmbed(in_channels, dims, patch_size)
        self.blocks = nn.ModuleList(
            DINOv2Block(
                dims,
                arch['num_heads'],
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                ffn_type=arch.get('ffn_type', 'mlp'),
                layer_scale_init_value=layer_scale_init_value,
                norm_eps=norm_eps) for _ in range(self.num_layers))
        self.norm = nn.LayerNorm(dims, eps=norm_eps)
        self._default_init()

    @property
    def blocks(self) -> nn.ModuleList:
        return self._modules['blocks']

    def _default_init(self) -> None:
        # DINOv2's initialisation (used when no weights are loaded).
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        if self.register_tokens is not None:
            nn.init.normal_(self.register_tokens, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    # -- weights --------------------------------------------------------------
    def load_meta_state_dict(self,
                             state: Dict[str, Tensor],
                             source: Optional[str] = None) -> None:
        """Load a Meta-format DINOv2 state dict strictly into the encoder's
        own keys (adapters/shortcuts attached to the blocks excluded; they
        keep their initialisation).

        A positional table of another grid is resized to this model's table
        (bicubic, DINOv2's ``interpolate_pos_encoding`` without offset).

        Args:
            state (dict): Meta key names (a ``dinov2.`` prefix is stripped).
            source (str, optional): Where ``state`` comes from, for error
                messages. Defaults to None = ``pretrained``.

        Raises:
            RuntimeError: Naming ``source`` and the missing, unexpected or
                shape-mismatched keys.
        """
        if any(k.startswith('dinov2.') for k in state):
            state = {
                k[len('dinov2.'):]: v
                for k, v in state.items() if k.startswith('dinov2.')
            }
        state = dict(state)
        pos = state.get('pos_embed')
        if pos is not None and pos.shape != self.pos_embed.shape:
            side = int(math.sqrt(self.pos_embed.shape[1] - 1))
            state['pos_embed'] = interpolate_pos_embed(
                pos, (side, side), offset=0.0)
        self.load_pretrained_state_dict(
            state, source or self.pretrained or 'the DINOv2 state dict')

    def init_weights(self) -> None:
        if self.pretrained is None:
            return super().init_weights()
        state = load_state_dict_file(
            self.pretrained, 'a Meta DINOv2 state dict such as '
            'dinov2_vitb14_reg4_pretrain.pth')
        self.load_meta_state_dict(state)

    # -- encoder interface ----------------------------------------------------
    def interpolate_pos_encoding(self, grid: Tuple[int, int]) -> Tensor:
        """Positional table (1, 1 + h*w, C) for the patch grid (h, w)."""
        return interpolate_pos_embed(self.pos_embed, grid,
                                     self.interpolate_offset,
                                     self.interpolate_antialias)

    def embed(self, img: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        x, grid = self.patch_embed(img.to(self.patch_embed.proj.weight.dtype))
        cls = self.cls_token.to(x.dtype).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        x = x + self.interpolate_pos_encoding(grid).to(x.dtype)
        if self.register_tokens is not None:
            reg = self.register_tokens.to(x.dtype).expand(x.shape[0], -1, -1)
            x = torch.cat([x[:, :1], reg, x[:, 1:]], dim=1)
        return x, grid

    def final_map(self,
                  x: Tensor,
                  grid: Tuple[int, int],
                  num_extra: int = 0) -> Tensor:
        return self.patch_map(self.norm(x), grid, num_extra)
