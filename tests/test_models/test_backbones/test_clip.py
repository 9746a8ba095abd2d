# Copyright (c) mmris contributors. All rights reserved.
"""CLIP towers: OpenAI checkpoint loading (TorchScript and plain), position
resizing, RIS text semantics."""
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import mmris  # noqa: F401
from mmris.models.backbones import (CLIPModifiedResNet, CLIPTextTransformer,
                                    CLIPVisionTransformer)

TXT = dict(width=16, heads=2, layers=2, embed_dim=8)


class _OpenAIHolder(nn.Module):
    """Mimics an OpenAI CLIP module: ``visual.*`` + text tower keys."""

    def __init__(self, visual: nn.Module):
        super().__init__()
        text = CLIPTextTransformer(**TXT)
        self.visual = visual
        for name, child in text.named_children():
            self.add_module(name, child)
        for name, p in text.named_parameters(recurse=False):
            self.register_parameter(name, p)

    def forward(self, x):
        return x + 1


def _save(holder, path, jit):
    if jit:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            torch.jit.save(torch.jit.trace(holder, torch.zeros(1)), path)
    else:
        state = holder.state_dict()
        state['input_resolution'] = torch.tensor(32)
        torch.save(state, path)


@pytest.mark.parametrize('jit', [True, False])
def test_vit_loads_openai_file_and_resizes_positions(tmp_path, jit):
    pre = CLIPVisionTransformer(
        img_size=32, width=16, layers=2, heads=2, output_dim=8)
    holder = _OpenAIHolder(pre)
    path = str(tmp_path / 'clip.pt')
    _save(holder, path, jit)

    vit = CLIPVisionTransformer(
        img_size=64,
        width=16,
        layers=2,
        heads=2,
        output_dim=8,
        pretrained=path)
    vit.init_weights()
    table = pre.positional_embedding.detach()
    grid = table[1:].reshape(1, 2, 2, 16).permute(0, 3, 1, 2)
    expected = F.interpolate(
        grid, size=(4, 4), mode='bicubic', align_corners=False)
    expected = torch.cat(
        [table[:1], expected.permute(0, 2, 3, 1).reshape(16, 16)])
    assert vit.positional_embedding.shape == (17, 16)
    assert torch.allclose(vit.positional_embedding, expected, atol=1e-6)
    assert torch.equal(vit.conv1.weight, pre.conv1.weight)

    text = CLIPTextTransformer(**TXT, pretrained=path)
    text.init_weights()
    for k, v in holder.state_dict().items():
        if not k.startswith('visual.'):
            assert torch.equal(text.state_dict()[k], v), k


def test_missing_checkpoint_names_the_file(tmp_path):
    vit = CLIPVisionTransformer(pretrained=str(tmp_path / 'nope.pt'))
    with pytest.raises(FileNotFoundError, match='nope.pt'):
        vit.init_weights()


def test_text_semantics_sliced_positions_causal_mask_eot_state():
    text = CLIPTextTransformer(**TXT).eval()
    ids = torch.tensor([[49406, 320, 1929, 49407, 0, 0]])
    word, state = text(ids)
    assert word.shape == (1, 6, 16) and state.shape == (1, 8)
    # state = EOT word feature @ text_projection
    assert torch.allclose(state, word[0, 3] @ text.text_projection, atol=1e-6)
    # causal: changing a later token leaves earlier features unchanged
    ids2 = ids.clone()
    ids2[0, 4] = 555
    word2, _ = text(ids2)
    assert torch.allclose(word[0, :4], word2[0, :4], atol=1e-6)
    assert text.positional_embedding.shape[0] == 77


def test_resnet_attnpool_keeps_spatial_map():
    rn = CLIPModifiedResNet(
        layers=(1, 1, 1, 1), width=8, output_dim=16, heads=2).eval()
    maps = rn(torch.randn(2, 3, 128, 128))
    assert maps[0].shape == (2, 16, 4, 4)
    assert (maps[0] >= 0).all()  # ReLU(attn + connect)
    assert 'attnpool.connect.0.weight' in rn.state_dict()


def test_pretrained_load_is_strict_on_own_keys_and_skips_adapters(tmp_path):
    """Adapters attached to the blocks are not expected in the file; any
    other missing, unexpected or mis-shaped key names the file."""
    from mmris.models.backbones import AdaptedEncoderPair
    holder = _OpenAIHolder(
        CLIPVisionTransformer(
            img_size=32, width=16, layers=2, heads=2, output_dim=8))
    state = holder.state_dict()
    path = str(tmp_path / 'clip.pt')
    torch.save(state, path)
    pair = AdaptedEncoderPair(
        visual=dict(
            type='CLIPVisionTransformer',
            img_size=32,
            width=16,
            layers=2,
            heads=2,
            output_dim=8,
            pretrained=path),
        text=dict(type='CLIPTextTransformer', **TXT, pretrained=path),
        adapters=[
            dict(
                point='ffn_parallel',
                tower='text',
                layers=[1],
                scale=0.2,
                input='residual',
                module=dict(
                    type='TextAdapter', in_channels=16, hidden_channels=16)),
            dict(
                point='attn_shortcut',
                tower='visual',
                name='flow',
                module=dict(type='ShortcutNormalizingFlow', dim=16))
        ])
    adapter = {
        k: v.clone()
        for k, v in pair.state_dict().items()
        if '.adapter.' in k or '.flow' in k
    }
    pair.init_weights()
    own = pair.state_dict()
    assert torch.equal(own['text.transformer.resblocks.1.ln_1.weight'],
                       state['transformer.resblocks.1.ln_1.weight'])
    for k, v in adapter.items():
        assert torch.equal(own[k], v), k
    assert 'transformer.resblocks.1.adapter.D_fc1.weight' not in \
        pair.text.own_state_keys()

    text = pair.text
    bad = {k: v for k, v in state.items() if not k.startswith('visual.')}
    with pytest.raises(
            RuntimeError, match=r"clip\.pt.*unexpected keys "
            r"\['extra'\]"):
        text.load_pretrained_state_dict(dict(bad, extra=torch.zeros(1)), path)
    with pytest.raises(RuntimeError, match=r"missing keys \['ln_final"):
        text.load_pretrained_state_dict(
            {
                k: v
                for k, v in bad.items() if not k.startswith('ln_final')
            }, path)
    with pytest.raises(RuntimeError, match='text_projection: file'):
        text.load_pretrained_state_dict(
            dict(bad, text_projection=torch.zeros(3, 3)), path)
