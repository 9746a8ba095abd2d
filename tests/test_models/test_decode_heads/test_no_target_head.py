# Copyright (c) mmris contributors. All rights reserved.
"""NoTargetHead and its use by RISEncoderDecoder (gRefCOCO)."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import mmris  # noqa: F401
from mmris.models.decode_heads import NoTargetHead
from ..utils import make_ids, make_samples, tiny_etris_cfg

init_default_scope('mmseg')
NT_HEAD = dict(
    type='NoTargetHead', in_channels=32, text_channels=32, hidden_channels=16)


def test_forward_loss_predict():
    torch.manual_seed(0)
    head = NoTargetHead(in_channels=8, text_channels=6, hidden_channels=4)
    fq, state = torch.randn(3, 8, 5, 5), torch.randn(3, 6)
    mask = torch.randn(3, 1, 20, 20)
    logits = head(fq, state, mask)
    assert logits.shape == (3, )
    flags = torch.tensor([True, False, True])
    loss = head.loss_by_feat(logits, flags)['loss_no_target']
    expected = -(flags.float() * F.logsigmoid(logits) +
                 (1 - flags.float()) * F.logsigmoid(-logits)).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    decision, prob = head.predict(torch.tensor([-2.0, 0.0, 0.1]))
    assert decision.tolist() == [False, False, True]
    assert prob[1].item() == pytest.approx(0.5)
    # the mask logits are an input: an empty mask moves the decision
    assert not torch.equal(head(fq, state, mask), head(fq, state, mask - 50))
    no_mask = NoTargetHead(8, 6, 4, use_mask_logits=False)
    assert no_mask(fq, state).shape == (3, )


@pytest.mark.parametrize('kwargs, message', [
    (dict(in_channels=0), 'in_channels must be a positive int'),
    (dict(threshold=1.0), 'threshold must be in (0, 1)'),
    (dict(loss_weight=-1.0), 'loss_weight must be >= 0'),
])
def test_bad_arguments(kwargs, message):
    args = dict(in_channels=8, text_channels=6)
    args.update(kwargs)
    with pytest.raises(
            ValueError, match=message.replace('(', r'\(').replace(')', r'\)')):
        NoTargetHead(**args)
    head = NoTargetHead(8, 6)
    with pytest.raises(ValueError, match=r'fq must be \(B, 8, H, W\)'):
        head(
            torch.randn(2, 7, 3, 3), torch.randn(2, 6),
            torch.randn(2, 1, 4, 4))
    with pytest.raises(ValueError, match='needs the mask logits'):
        head(torch.randn(2, 8, 3, 3), torch.randn(2, 6))


def _models():
    torch.manual_seed(0)
    plain = MODELS.build(tiny_etris_cfg()).eval()
    torch.manual_seed(0)
    with_head = MODELS.build(tiny_etris_cfg(no_target_head=NT_HEAD)).eval()
    return plain, with_head


def test_segmentor_loss_and_parameters():
    plain, model = _models()
    extra = sum(p.numel() for p in model.no_target_head.parameters())
    assert extra == 32 * 32 + 32 + (3 * 32 + 2) * 16 + 16 + 16 + 1
    count = lambda m: sum(p.numel() for p in m.parameters()  # noqa: E731
                          if p.requires_grad)
    assert count(model) == count(plain) + extra
    assert plain.no_target_head is None
    ids = make_ids(2)
    samples = make_samples(ids)
    samples[0].set_metainfo(dict(no_target=True))
    samples[1].set_metainfo(dict(no_target=False))
    img = torch.randn(2, 3, 64, 64)
    model.train()
    losses = model.loss(img, samples)
    assert set(losses) == {'loss_bce', 'loss_no_target'}
    nt_logits = model._forward_heads(img, samples)[2]
    # dropout is active in train mode: check the definition, not the value
    assert nt_logits.shape == (2, )
    losses['loss_no_target'].backward()
    assert model.no_target_head.mlp[-1].weight.grad.abs().sum() > 0
    # classic samples (no flag) count as targets
    plain.train()
    assert set(plain.loss(img, make_samples(ids))) == {'loss_bce'}


def test_segmentor_no_target_decision_empties_the_mask():
    plain, model = _models()
    ids = make_ids(2)
    img = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = plain.predict(img, make_samples(ids, with_mask=False))
        model.no_target_head.mlp[-1].bias.fill_(-100.0)  # never no-target
        got = model.predict(img, make_samples(ids, with_mask=False))
        for e, g in zip(expected, got):
            assert torch.equal(e.seg_logits.data, g.seg_logits.data)
            assert g.pred_no_target is False
            assert 0 <= g.no_target_score < 0.5
            assert 'pred_no_target' not in e.metainfo
        model.no_target_head.mlp[-1].bias.fill_(100.0)  # always no-target
        got = model.predict(img, make_samples(ids, with_mask=False))
    for e, g in zip(expected, got):
        assert g.pred_no_target is True and g.no_target_score > 0.5
        assert int(g.pred_sem_seg.data.sum()) == 0
        assert float(g.seg_logits.data.abs().sum()) == 0.0
        # the mask before the decision is kept for ReLA's cIoU union
        assert torch.equal(g.target_pred_sem_seg.data, e.pred_sem_seg.data)
        assert int(e.pred_sem_seg.data.sum()) > 0
    # samples the head lets through carry no extra mask
    with torch.no_grad():
        model.no_target_head.mlp[-1].bias.fill_(-100.0)
        got = model.predict(img, make_samples(ids, with_mask=False))
    assert all('target_pred_sem_seg' not in g for g in got)
