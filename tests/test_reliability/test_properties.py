# Copyright (c) mmris contributors. All rights reserved.
"""Property-based tests (hypothesis) of the tokenizer and the letterbox."""
import cv2
import numpy as np
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

import mmris  # noqa: F401
from mmris.datasets.transforms import (EOT_TOKEN_ID, SOT_TOKEN_ID,
                                       LetterboxAffine, encode_text)
from mmris.models.backbones.adapted_encoder_pair import text_padding_mask


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=300), length=st.integers(2, 40))
@example(text='!\u00a1', length=5)  # "!" (id 0) inside the sentence
def test_tokenizer_any_unicode(text, length):
    ids = encode_text(text, length)
    assert ids.shape == (length, ) and ids.dtype == np.int64
    assert ids[0] == SOT_TOKEN_ID
    eots = np.flatnonzero(ids == EOT_TOKEN_ID)
    assert len(eots) == 1  # exactly one EOT, also after truncation
    eot = int(eots[0])
    assert (ids[eot + 1:] == 0).all()  # zero padding only after EOT
    assert (ids[1:eot] < SOT_TOKEN_ID).all()
    # 'after_eot' masks exactly the positions after EOT, even when "!"
    # (id 0) occurs inside the sentence; the default 'zero_id' is the
    # official ``ids == 0`` rule, which also masks such a "!".
    tensor = torch.from_numpy(ids)[None]
    mask = text_padding_mask(tensor, mode='after_eot')[0].numpy()
    assert (mask == (np.arange(length) > eot)).all()
    official = text_padding_mask(tensor)[0].numpy()
    assert (official == (ids == 0)).all()


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(16, 640),
    aspect=st.floats(0.5, 2.0),
    size=st.integers(224, 320),
    box=st.tuples(*[st.floats(0.0, 1.0)] * 4))
def test_letterbox_inverse_recovers_mask(h, aspect, size, box):
    # Random image sizes (down- and up-scaling, aspect 1:2 to 2:1) and a
    # rectangle covering 60-100 % of each side. The official affine maps
    # pixel corners, not centres, which shifts edges by up to half an input
    # pixel per output pixel: objects are >= ~65 px in the network input.
    w = max(16, int(round(h * aspect)))
    fy0, fx0, fh, fw = box
    bh, bw = int(h * (0.6 + 0.4 * fh)), int(w * (0.6 + 0.4 * fw))
    y0, x0 = int((h - bh) * fy0), int((w - bw) * fx0)
    mask = np.zeros((h, w), np.uint8)
    mask[y0:y0 + bh, x0:x0 + bw] = 1
    res = LetterboxAffine(size=size)(
        dict(img=np.zeros((h, w, 3), np.uint8), gt_seg_map=mask.copy()))
    soft = res['gt_mask']
    assert soft.shape == (size, size) and 0 <= soft.min() <= soft.max() <= 1
    back = cv2.warpAffine(
        soft, res['inv_affine'], (w, h), flags=cv2.INTER_LINEAR,
        borderValue=0) > 0.5
    inter = np.logical_and(back, mask).sum()
    union = np.logical_or(back, mask).sum()
    assert inter / union >= 0.98, (inter / union, h, w, size)
