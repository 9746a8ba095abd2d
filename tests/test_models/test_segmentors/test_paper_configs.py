# Copyright (c) mmris contributors. All rights reserved.
"""The paper configs behave like the official code by default.

* training mode: the official scripts call ``model.train()`` on the whole
  model, so every module (the frozen CLIP ResNet BatchNorms included) is in
  training mode, and one training step equals the same step with every
  module forced into training mode by hand (``norm_eval=True`` is the
  documented switch that keeps the frozen BatchNorms in eval mode);
* decoder padding mask: the official ``ids == 0`` (BPE id 0 is "!");
* every trainable parameter gets a gradient (distributed training needs no
  ``find_unused_parameters``), for the quick-start configs too.

Each full-size model is built once (module-scoped, parametrised fixture),
with small inputs.
"""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

import mmris  # noqa: F401
from mmris.datasets.transforms.tokenizer import tokenize
from ..utils import make_samples

init_default_scope('mmseg')
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(__file__))))

# (config, input size): each method, each CLIP visual tower (DETRIS-L only
# differs from DETRIS-B in sizes)
PAPER = [
    ('etris/etris_vit-b16_refcoco.py', 64),
    ('etris/etris_rn50_refcoco.py', 64),
    ('etris/etris_rn101_refcocog_umd.py', 64),
    ('barleria/barleria_vit-b16_refcoco.py', 64),
    ('detris/detris-b_refcoco.py', 56),
]
QUICKSTART = [('quickstart/etris-tiny_synthetic.py', 96),
              ('quickstart/detris-tiny_synthetic.py', 56),
              ('quickstart/barleria-tiny_synthetic.py', 64)]
# "!" is BPE id 0: the official code masks it as padding
BANG = 'the man !; on the left'
PLAIN = 'the man on the left'


def _build(config: str) -> torch.nn.Module:
    cfg = Config.fromfile(osp.join(ROOT, 'configs', config))
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


def _inputs(size: int, word_len: int = 17, with_mask: bool = True):
    ids = tokenize([BANG, PLAIN], word_len)
    assert (ids[0, 1:int(ids[0].argmax())] == 0).any()  # id 0 inside
    g = torch.Generator().manual_seed(1)
    img = torch.randn(2, 3, size, size, generator=g)
    return img, ids, make_samples(ids, size, with_mask=with_mask)


def _all_training(model: torch.nn.Module) -> None:
    """What the official ``model.train()`` does: every module trains."""
    for m in model.modules():
        m.training = True


@pytest.fixture(scope='module', params=PAPER, ids=[c for c, _ in PAPER])
def paper(request):
    config, size = request.param
    model = _build(config)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    img, ids, samples = _inputs(size)

    def step(set_mode):
        model.load_state_dict(initial)
        model.zero_grad(set_to_none=True)
        set_mode(model)
        torch.manual_seed(2)  # same dropout draws in both runs
        losses = model.loss(img, samples)
        loss = sum(losses.values())
        loss.backward()
        grads = {
            n: None if p.grad is None else p.grad.clone()
            for n, p in model.named_parameters() if p.requires_grad
        }
        buffers = {
            n: b.clone()
            for n, b in model.named_buffers() if 'running' in n
        }
        return loss.detach(), grads, buffers

    mmris_step = step(lambda m: m.train())
    modes = {n: m.training for n, m in model.named_modules()}
    official_step = step(_all_training)
    model.load_state_dict(initial)
    model.zero_grad(set_to_none=True)
    return dict(
        config=config,
        model=model,
        size=size,
        modes=modes,
        mmris=mmris_step,
        official=official_step)


def test_train_mode_is_the_official_one(paper):
    """Case 1: after ``model.train()`` no module is left in eval mode (the
    official code trains the frozen ResNet BatchNorms in train mode)."""
    evaluating = [n for n, training in paper['modes'].items() if not training]
    assert evaluating == [], (paper['config'], evaluating[:5])


def test_one_training_step_equals_the_official_recipe(paper):
    """Case 1: loss, gradients and BatchNorm statistics of one step equal
    those of the same step with every module in training mode."""
    loss, grads, buffers = paper['mmris']
    ref_loss, ref_grads, ref_buffers = paper['official']
    assert torch.isfinite(ref_loss)
    torch.testing.assert_close(loss, ref_loss, rtol=0, atol=0)
    assert grads.keys() == ref_grads.keys()
    for n in grads:
        torch.testing.assert_close(
            grads[n], ref_grads[n], rtol=0, atol=0, msg=n)
    for n in buffers:
        torch.testing.assert_close(
            buffers[n], ref_buffers[n], rtol=0, atol=0, msg=n)


def test_every_trainable_parameter_gets_a_gradient(paper):
    """Case 4: DDP without find_unused_parameters needs a gradient for
    every trainable parameter."""
    _, grads, _ = paper['mmris']
    assert [n for n, g in grads.items() if g is None] == []


def test_norm_eval_switch_keeps_frozen_bn_in_eval(paper):
    """Case 1: the documented fix, ``norm_eval=True``, keeps the frozen
    BatchNorms (and only them) in eval mode."""
    backbone = paper['model'].backbone
    frozen_bn = [
        n for n, m in backbone.named_modules()
        if isinstance(m, _BatchNorm) and not any(p.requires_grad
                                                 for p in m.parameters())
    ]
    if 'rn' in osp.basename(paper['config']):
        assert 'visual.bn1' in frozen_bn
        assert 'visual.attnpool.connect.1' in frozen_bn
    else:
        assert frozen_bn == []  # nothing the switch could change
    try:
        backbone.norm_eval = True
        paper['model'].train()
        modes = {n: m.training for n, m in backbone.named_modules()}
        assert [n for n in frozen_bn if modes[n]] == []
        assert [n for n, t in modes.items() if not t] == frozen_bn
    finally:
        backbone.norm_eval = False
        paper['model'].eval()


@pytest.mark.parametrize('config', [
    'etris/etris_rn50-fixbn_refcoco.py', 'etris/etris_rn101-fixbn_refcoco.py'
])
def test_fixbn_configs_switch_only_norm_eval(config):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', config))
    paper = Config.fromfile(
        osp.join(ROOT, 'configs', config.replace('-fixbn', '')))
    assert cfg.model.backbone.norm_eval is True
    assert paper.model.backbone.norm_eval is False
    cfg.model.backbone.norm_eval = False
    assert cfg.model.to_dict() == paper.model.to_dict()


@pytest.mark.parametrize('config', [c for c, _ in PAPER])
def test_distributed_batchnorm_is_synchronised(config):
    """Case 1: the official scripts train with SyncBatchNorm (``sync_bn:
    True``), so distributed BN statistics cover the global batch."""
    cfg = Config.fromfile(osp.join(ROOT, 'configs', config))
    assert cfg.get('sync_bn') == 'torch'


def test_decoder_padding_mask_is_the_official_one(paper):
    """Case 3: on a sentence containing id 0, the default model equals a
    reference that masks ``ids == 0`` (the official rule) and differs from
    the 'after_eot' rule."""
    model = paper['model'].eval()
    word_len = 22 if 'refcocog_umd' in paper['config'] else 17
    img, ids, samples = _inputs(paper['size'], word_len, with_mask=False)
    assert model.backbone.pad_mask_mode == 'zero_id'
    with torch.no_grad():
        logits = model._forward(img, samples)
        feats = model.backbone(img, ids)
        fq = model.neck(feats.visual, feats.state)
        if model.side_network is not None:
            fq = fq + model.side_network(img, feats.side, feats.word)[0]

        def head(pad_mask):
            return model.decode_head(fq, feats.word, feats.state, pad_mask)

        official = head(ids == 0)
        eot = torch.arange(ids.shape[1])[None] > ids.argmax(-1, keepdim=True)
        after_eot = head(eot)
    torch.testing.assert_close(logits, official, rtol=0, atol=1e-5)
    assert (after_eot[0] - official[0]).abs().max() > 1e-3  # "!" matters
    torch.testing.assert_close(after_eot[1], official[1], rtol=0, atol=1e-5)


@pytest.mark.parametrize('config,size', QUICKSTART)
def test_quickstart_trainable_parameters_all_get_gradients(config, size):
    """Case 4: frozen-but-unused tensors (CLIP ``logit_scale``, DINOv2
    ``mask_token``) are not trainable, so a 2-process run needs no
    ``find_unused_parameters``."""
    model = _build(config).train()
    img, _, samples = _inputs(size)
    sum(model.loss(img, samples).values()).backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert 'backbone.text.logit_scale' not in trainable
    assert 'backbone.visual.mask_token' not in trainable
    assert [
        n for n, p in model.named_parameters()
        if p.requires_grad and p.grad is None
    ] == []
    # the quick-start towers stay trainable otherwise
    if 'detris' not in config:
        assert 'backbone.text.token_embedding.weight' in trainable
