# Copyright (c) mmris contributors. All rights reserved.
"""The torch-free CLIP BPE tokenizer against open_clip's ``SimpleTokenizer``
(OpenAI's implementation) and its torch-free import."""
import os.path as osp
import subprocess
import sys
from functools import lru_cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmris.datasets.transforms import clip_bpe

SENTENCES = [
    'the man on the left', 'left &amp; right', '  The   MAN\ton the left ',
    'a "quoted" word, commas; and: colons!', "don't it's we're they'll",
    'the 2nd guy from 1990s', 'caf\u00e9 na\u00efve r\u00e9sum\u00e9',
    '\u4e2d\u6587 \u65e5\u672c\u8a9e \ud55c\uad6d\uc5b4',
    'emoji \U0001F600 ok', '!( !! ?? ...',
    '<start_of_text> inside <end_of_text>', '', 'mojibake Ã©tÃ©', 'x' * 300,
    'antidisestablishmentarianism'
]


@lru_cache(maxsize=1)
def _open_clip_tokenizer():
    from open_clip.tokenizer import SimpleTokenizer
    return SimpleTokenizer()


@pytest.fixture(scope='module')
def reference():
    return _open_clip_tokenizer()


def test_equals_open_clip_on_hard_sentences(reference):
    ours = clip_bpe.get_tokenizer()
    for text in SENTENCES:
        assert ours.encode(text) == reference.encode(text), text


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=40))
def test_equals_open_clip_on_random_text(text):
    assert (clip_bpe.get_tokenizer().encode(text) ==
            _open_clip_tokenizer().encode(text))


def test_default_vocab_is_open_clips_file():
    import open_clip
    assert clip_bpe.default_bpe_path() == osp.join(
        osp.dirname(open_clip.__file__), clip_bpe.BPE_VOCAB_NAME)


def test_not_a_vocab_file_is_refused(tmp_path):
    import gzip
    bad = tmp_path / 'vocab.txt.gz'
    with gzip.open(bad, 'wb') as f:
        f.write(b'#version\na b\n')
    with pytest.raises(ValueError, match='vocab.txt.gz'):
        clip_bpe.ClipBPETokenizer(str(bad))


def test_module_runs_without_torch():
    """Loaded by file path with ``import torch`` failing, it tokenizes."""
    code = (
        'import sys, importlib.util\n'
        "sys.modules['torch'] = None\n"  # any `import torch` now fails
        "spec = importlib.util.spec_from_file_location('bpe', sys.argv[1])\n"
        'mod = importlib.util.module_from_spec(spec)\n'
        'spec.loader.exec_module(mod)\n'
        "print(mod.encode_text('the man on the left', 9).tolist())\n"
        "assert 'mmris' not in sys.modules\n")
    out = subprocess.run([sys.executable, '-c', code, clip_bpe.__file__],
                         capture_output=True,
                         text=True,
                         check=True)
    assert out.stdout.strip() == str(
        [49406, 518, 786, 525, 518, 1823, 49407, 0, 0])


@pytest.mark.parametrize('text', SENTENCES)
def test_count_tokens_is_the_untruncated_length(text):
    """``count_tokens`` = SOT + open_clip's BPE tokens + EOT, the length
    ``encode_text`` cuts to ``context_length``."""
    n = clip_bpe.count_tokens(text)
    assert n == len(_open_clip_tokenizer().encode(text)) + 2
    ids = clip_bpe.encode_text(text, context_length=max(n, 2) + 3)
    assert ids[n - 1] == clip_bpe.EOT_TOKEN_ID and not ids[n:].any()
    if n > 5:
        cut = clip_bpe.encode_text(text, context_length=5)
        assert cut[-1] == clip_bpe.EOT_TOKEN_ID
