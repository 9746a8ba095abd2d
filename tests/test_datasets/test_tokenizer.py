# Copyright (c) mmris contributors. All rights reserved.
import numpy as np
import pytest
import torch

import mmris  # noqa: F401
from mmris.datasets.transforms import (EOT_TOKEN_ID, SOT_TOKEN_ID,
                                       CLIPTokenize, encode_text, tokenize)


def test_known_ids():
    ids = encode_text('the man on the left', 17)
    expected = [49406, 518, 786, 525, 518, 1823, 49407] + [0] * 10
    assert ids.dtype == np.int64 and ids.shape == (17, )
    assert ids.tolist() == expected
    # cleaning: case, surrounding and repeated whitespace, html entities
    assert encode_text('  The   MAN on the left ', 17).tolist() == expected
    assert (encode_text('left &amp; right',
                        17).tolist() == encode_text('left & right',
                                                    17).tolist())


def test_long_sentence_truncated_with_eot():
    ids = encode_text(' '.join(['word'] * 500), 17)
    assert ids.shape == (17, )
    assert ids[0] == SOT_TOKEN_ID and ids[-1] == EOT_TOKEN_ID
    assert (ids[1:-1] != 0).all() and (ids[1:-1] != EOT_TOKEN_ID).all()
    with pytest.raises(RuntimeError):
        encode_text(' '.join(['word'] * 500), 17, truncate=False)


def test_exclamation_mark_ids():
    # A word-final "!" is "!</w>" (id 256); BPE id 0 is a non-final "!",
    # e.g. in "!(" -- it collides with the zero padding (the official
    # padding mask is ids == 0).
    assert encode_text('!',
                       17)[:3].tolist() == [SOT_TOKEN_ID, 256, EOT_TOKEN_ID]
    ids = encode_text('the man !( left', 17).tolist()
    eot = ids.index(EOT_TOKEN_ID)
    assert 0 in ids[1:eot]


def test_empty_and_unicode():
    assert encode_text('', 5).tolist() == [SOT_TOKEN_ID, EOT_TOKEN_ID, 0, 0, 0]
    for text in ['the 😀 dog', 'café ü naïve', '左边的男人', '\u200b\ttab']:
        ids = encode_text(text, 17)
        n = int((ids != 0).sum())
        assert ids[0] == SOT_TOKEN_ID and ids[n - 1] == EOT_TOKEN_ID
    with pytest.raises(ValueError):
        encode_text('a', 1)
    with pytest.raises(TypeError):
        encode_text(None, 17)


def test_tokenize_batch():
    out = tokenize(['the man on the left', 'dog'], context_length=22)
    assert out.dtype == torch.int64 and out.shape == (2, 22)
    assert out[0, :7].tolist() == [49406, 518, 786, 525, 518, 1823, 49407]
    assert tokenize('dog', 17).shape == (1, 17)
    assert tokenize([], 17).shape == (0, 17)


def test_clip_tokenize_transform():
    t = CLIPTokenize(context_length=17)
    results = t(dict(text='the man on the left'))
    assert results['text'] == 'the man on the left'
    assert results['text_ids'].dtype == np.int64
    assert results['text_ids'].shape == (17, )
    assert results['text_ids'][6] == EOT_TOKEN_ID
    t2 = CLIPTokenize(context_length=8, key='sentence')
    assert t2(dict(sentence='dog'))['text_ids'].shape == (8, )
    with pytest.raises(KeyError):
        t2(dict(text='dog'))
    with pytest.raises(ValueError):
        CLIPTokenize(context_length=1)
    assert 'context_length=8' in repr(t2)
