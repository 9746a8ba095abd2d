# Copyright (c) mmris contributors. All rights reserved.
"""CLIP residual block: fused attention equals ``nn.MultiheadAttention``
(values, gradients, keys, seeded initialisation) and projects with single
GEMMs."""
import collections
from typing import Optional

import pytest
import torch
import torch.nn as nn
from open_clip.transformer import (LayerNormFp32, QuickGELU,
                                   ResidualAttentionBlock)
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

import mmris  # noqa: F401
from mmris.models.backbones.clip_block import CLIPResidualBlock

WIDTH, HEADS = 32, 4


class _ReferenceBlock(CLIPResidualBlock):
    """The same block with ``torch.nn.MultiheadAttention(batch_first=True)``
    (open_clip's ``ResidualAttentionBlock`` attention)."""

    def __init__(self, width: int, heads: int):
        super().__init__(width, heads)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)

    def attn_inner(self,
                   x: Tensor,
                   attn_mask: Optional[Tensor],
                   ctx=None) -> Tensor:
        if attn_mask is not None:
            attn_mask = attn_mask.to(x.dtype)
        return self.attn(x, x, x, need_weights=False, attn_mask=attn_mask)[0]

    def attn_proj(self, x: Tensor) -> Tensor:
        return x


class _Adapter(nn.Module):
    """A small trainable FFN-parallel adapter."""

    def __init__(self, width: int):
        super().__init__()
        self.fc = nn.Linear(width, 8)
        self.out = nn.Linear(8, width)

    def forward(self, x: Tensor, ctx=None) -> Tensor:
        return self.out(torch.relu(self.fc(x)))


class _Shortcut(nn.Linear):
    """A trainable shortcut replacement."""

    def __init__(self, width: int):
        super().__init__(width, width)

    def forward(self, x: Tensor, ctx=None) -> Tensor:
        return super().forward(x)


def _pair(flows: bool):
    torch.manual_seed(0)
    block = CLIPResidualBlock(WIDTH, HEADS)
    ref = _ReferenceBlock(WIDTH, HEADS)
    ref.load_state_dict(block.state_dict(), strict=True)
    adapter = _Adapter(WIDTH)
    for b in (block, ref):
        for p in b.parameters():
            p.requires_grad_(False)
    ad_ref = _Adapter(WIDTH)
    ad_ref.load_state_dict(adapter.state_dict())
    block.attach('ffn_parallel', 'adapter', adapter, scale=0.5)
    ref.attach('ffn_parallel', 'adapter', ad_ref, scale=0.5)
    if flows:
        f1, f2 = _Shortcut(WIDTH), _Shortcut(WIDTH)
        g1, g2 = _Shortcut(WIDTH), _Shortcut(WIDTH)
        g1.load_state_dict(f1.state_dict())
        g2.load_state_dict(f2.state_dict())
        block.attach('attn_shortcut', 'flow', f1)
        block.attach('ffn_shortcut', 'flow2', f2)
        ref.attach('attn_shortcut', 'flow', g1)
        ref.attach('ffn_shortcut', 'flow2', g2)
    return block, ref


@pytest.mark.parametrize('causal', [False, True])
@pytest.mark.parametrize('flows', [False, True])
@pytest.mark.parametrize('with_cp', [False, True])
def test_outputs_and_gradients_equal_nn_multihead_attention(
        causal, flows, with_cp):
    block, ref = _pair(flows)
    block.train()
    ref.train()
    block.with_cp = ref.with_cp = with_cp
    n = 9
    mask = torch.full((n, n), float('-inf')).triu_(1) if causal else None
    x = torch.randn(3, n, WIDTH)
    outs, grads = [], []
    for b in (block, ref):
        xi = x.clone().requires_grad_(True)
        y = b(xi, attn_mask=mask)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        trainable = [p for p in b.parameters() if p.requires_grad]
        outs.append(y.detach())
        grads.append([xi.grad] + [p.grad for p in trainable])
    torch.testing.assert_close(outs[0], outs[1], atol=1e-5, rtol=1e-5)
    assert len(grads[0]) == len(grads[1]) == 1 + 4 + (4 if flows else 0)
    for g, r in zip(*grads):
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-5)


def test_keys_and_seeded_init_equal_open_clip_block():
    torch.manual_seed(3)
    block = CLIPResidualBlock(WIDTH, HEADS)
    after_block = torch.rand(1)
    torch.manual_seed(3)
    oc = ResidualAttentionBlock(
        WIDTH,
        HEADS,
        act_layer=QuickGELU,
        norm_layer=LayerNormFp32,
        batch_first=True)
    after_oc = torch.rand(1)
    sd, osd = block.state_dict(), oc.state_dict()
    assert list(sd) == list(osd) == [
        'ln_1.weight', 'ln_1.bias', 'attn.in_proj_weight', 'attn.in_proj_bias',
        'attn.out_proj.weight', 'attn.out_proj.bias', 'ln_2.weight',
        'ln_2.bias', 'mlp.c_fc.weight', 'mlp.c_fc.bias', 'mlp.c_proj.weight',
        'mlp.c_proj.bias'
    ]
    for k in sd:
        assert torch.equal(sd[k], osd[k]), k
    # Same random draws consumed: what is built after the block is unchanged.
    assert torch.equal(after_block, after_oc)
    x = torch.randn(2, 5, WIDTH)
    torch.testing.assert_close(
        block.eval()(x), oc.eval()(x), atol=1e-5, rtol=1e-5)


class _CountOps(TorchDispatchMode):

    def __init__(self):
        super().__init__()
        self.ops = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def test_frozen_block_projects_with_single_gemms():
    """Every projection is one 2-D GEMM over all tokens: four in the forward
    pass (qkv, out, c_fc, c_proj), no batched matmul over strided views."""
    torch.manual_seed(0)
    block = CLIPResidualBlock(WIDTH, HEADS).train()
    for p in block.parameters():
        p.requires_grad_(False)
    x = torch.randn(2, 7, WIDTH, requires_grad=True)
    with _CountOps() as fwd:
        y = block(x)
    with _CountOps() as bwd:
        y.sum().backward()
    gemms = ('aten.mm', 'aten.addmm', 'aten.bmm', 'aten.baddbmm')
    assert {k: fwd.ops[k] for k in gemms if fwd.ops[k]} == {'aten.addmm': 4}
    assert {k: bwd.ops[k] for k in gemms if bwd.ops[k]} == {'aten.mm': 4}


def test_with_cp_recomputes_only_what_the_backward_reads():
    """Checkpointing recomputes the attention and FFN up to their output
    projections (qkv GEMM, attention, c_fc GEMM) and never the frozen output
    projections, whose backward needs no activation."""
    from mmris.utils.memory_count import SavedTensorCounter, flop_counter
    n, batch = 11, 2
    counts = {}
    for with_cp in (False, True):
        block, _ = _pair(flows=False)
        block.train().with_cp = with_cp
        x = torch.randn(batch, n, WIDTH, requires_grad=True)
        with SavedTensorCounter(exclude=block.parameters()) as saved:
            y = block(x)
        with flop_counter() as bwd:
            y.sum().backward()
        counts[with_cp] = (saved.bytes, bwd.get_total_flops())
    tokens, hidden = batch * n, 4 * WIDTH
    recomputed = (
        2 * tokens * WIDTH * 3 * WIDTH  # qkv projection
        + 2 * 2 * batch * n * n * WIDTH  # q k^T and (.) v
        + 2 * tokens * WIDTH * hidden)  # c_fc
    assert counts[True][1] - counts[False][1] == recomputed
    # Kept only without checkpointing: q, k, v, the attention output and
    # its row log-sum-exp, the c_fc output; only with it: the attention
    # input norm1(x) (the FFN input is kept for the adapter anyway).
    kept_without = (tokens *
                    (3 * WIDTH + WIDTH + hidden) + batch * HEADS * n) * 4
    kept_with = tokens * WIDTH * 4
    assert counts[False][0] - counts[True][0] == kept_without - kept_with
