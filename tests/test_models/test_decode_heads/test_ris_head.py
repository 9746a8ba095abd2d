# Copyright (c) mmris contributors. All rights reserved.
import math

import pytest
import torch

from mmris.models.decode_heads import RISDecodeHead


def _head(**kwargs) -> RISDecodeHead:
    return RISDecodeHead(
        num_layers=1,
        d_model=16,
        nhead=2,
        dim_ffn=16,
        text_channels=8,
        **kwargs)


def _bce(logit: float, target: float) -> float:
    p = 1 / (1 + math.exp(-logit))
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


def test_bce_uses_nearest_resized_target():
    head = _head(loss_weight=2.0)
    logits = torch.tensor([[[[0.5, -1.0], [2.0, 0.0]]]])
    # 4x4 target, nearest to 2x2 keeps rows/cols 0 and 2
    target = torch.zeros(1, 1, 4, 4)
    target[0, 0, 0, 0] = 1.0
    target[0, 0, 2, 2] = 0.25  # soft values pass through
    target[0, 0, 1, 1] = 1.0  # dropped by the resize
    losses = head.loss_by_feat(logits, target)
    expected = (_bce(0.5, 1.0) + _bce(-1.0, 0.0) + _bce(2.0, 0.0) +
                _bce(0.0, 0.25)) / 4
    assert set(losses) == {'loss_bce'}
    assert losses['loss_bce'].item() == pytest.approx(2 * expected, rel=1e-6)


def test_dice_term_per_sample():
    head = _head(dice_weight=0.5)
    logits = torch.tensor([[[[0.0, 10.0], [-10.0, 0.0]]],
                           [[[-10.0, -10.0], [-10.0, -10.0]]]])
    target = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]],
                           [[[0.0, 0.0], [0.0, 1.0]]]])
    losses = head.loss_by_feat(logits, target)
    dices = []
    for lg, tg in zip(logits, target):
        p = [1 / (1 + math.exp(-v)) for v in lg.flatten().tolist()]
        t = tg.flatten().tolist()
        inter = sum(a * b for a, b in zip(p, t))
        dices.append(1 - (2 * inter + 1) / (sum(p) + sum(t) + 1))
    assert set(losses) == {'loss_bce', 'loss_dice'}
    assert losses['loss_dice'].item() == pytest.approx(
        0.5 * sum(dices) / 2, rel=1e-5)
    # a perfect prediction of an empty mask costs (almost) nothing
    empty = head.loss_by_feat(
        torch.full((1, 1, 2, 2), -30.0), torch.zeros(1, 1, 2, 2))
    assert empty['loss_dice'].item() < 1e-6


def test_dice_weight_must_be_non_negative():
    with pytest.raises(ValueError, match='dice_weight'):
        _head(dice_weight=-1.0)


@pytest.mark.parametrize('size', [6, 13])
def test_forward_shape_is_four_times_the_map(size):
    head = _head()
    fq = torch.randn(2, 16, size, size)
    word = torch.randn(2, 5, 16)
    state = torch.randn(2, 8)
    pad = torch.zeros(2, 5, dtype=torch.bool)
    pad[0, 3:] = True
    assert head(fq, word, state, pad).shape == (2, 1, 4 * size, 4 * size)
