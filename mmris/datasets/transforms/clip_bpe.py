# Copyright (c) mmris contributors. All rights reserved.
"""CLIP's byte-pair-encoding tokenizer without torch.

The same tokenization as OpenAI CLIP's ``SimpleTokenizer``
(openai/CLIP, clip/simple_tokenizer.py; open_clip's copy with
``clean='lower'``), which the official RIS code calls through ``tokenize``
(kkakkkka/ETRIS, utils/simple_tokenizer.py and utils/dataset.py), written
on the standard library, ``ftfy``, ``regex`` and numpy only. This module
imports nothing of mmris (or torch), so the ONNX runtime
(:mod:`mmris.deployment.ort_inference`) loads it by file path in an
environment without torch, and :mod:`.tokenizer` uses it for training and
evaluation: both sides produce the same ids by construction.

The vocabulary is OpenAI's ``bpe_simple_vocab_16e6.txt.gz``; it ships in the
``open_clip`` wheel (found without importing ``open_clip``, which needs
torch) and ``tools/deployment/pytorch2onnx.py`` copies it next to an
exported model.
"""
import gzip
import html
import importlib.util
import os.path as osp
from functools import lru_cache
from typing import Dict, List, Optional, Tuple

import ftfy
import numpy as np
import regex

#: File name of the CLIP BPE vocabulary (the merges list).
BPE_VOCAB_NAME = 'bpe_simple_vocab_16e6.txt.gz'
#: Id of ``<start_of_text>``.
SOT_TOKEN_ID = 49406
#: Id of ``<end_of_text>``.
EOT_TOKEN_ID = 49407
#: Merges used by CLIP: the vocabulary has 256 byte symbols, their 256
#: word-final forms, these merges and the two special tokens (49408 ids).
_NUM_MERGES = 49152 - 256 - 2
_SPECIAL = ('<start_of_text>', '<end_of_text>')


def default_bpe_path() -> str:
    """Path of the vocabulary inside the installed ``open_clip`` package.

    ``importlib.util.find_spec`` locates the package without running it
    (importing ``open_clip`` would import torch).

    Returns:
        str: The path.

    Raises:
        FileNotFoundError: When ``open_clip`` is not installed or lacks the
            file.
    """
    spec = importlib.util.find_spec('open_clip')
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = osp.join(folder, BPE_VOCAB_NAME)
        if osp.isfile(path):
            return path
    raise FileNotFoundError(
        f'the CLIP BPE vocabulary {BPE_VOCAB_NAME} was not found: install '
        'open_clip_torch, or pass the file (tools/deployment/pytorch2onnx.py '
        'writes it next to the exported model)')


def _bytes_to_unicode() -> Dict[int, str]:
    """CLIP's reversible map of the 256 byte values to printable
    characters: printable Latin-1 bytes map to themselves, the others to
    code points from 256 on. The order of the entries (printable bytes
    first, then the others) is the order of the first 256 vocabulary
    ids."""
    keep = (
        list(range(ord('!'),
                   ord('~') + 1)) +
        list(range(ord('\u00a1'),
                   ord('\u00ac') + 1)) +
        list(range(ord('\u00ae'),
                   ord('\u00ff') + 1)))
    table = {b: chr(b) for b in keep}
    others = [b for b in range(256) if b not in table]
    table.update({b: chr(256 + n) for n, b in enumerate(others)})
    return table


def clean_text(text: str) -> str:
    """CLIP's text cleaning (``clean='lower'``): ftfy repair, HTML
    entities unescaped twice, runs of whitespace collapsed, lower case."""
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return ' '.join(text.split()).strip().lower()


class ClipBPETokenizer:
    """Byte-pair encoder of CLIP (49408 ids, SOT 49406, EOT 49407).

    Args:
        bpe_path (str, optional): The gzipped merges file. Defaults to None:
            :func:`default_bpe_path`.
    """

    def __init__(self, bpe_path: Optional[str] = None) -> None:
        self.bpe_path = bpe_path or default_bpe_path()
        with gzip.open(self.bpe_path) as f:
            lines = f.read().decode('utf-8').split('\n')
        merges = [tuple(line.split()) for line in lines[1:_NUM_MERGES + 1]]
        if len(merges) != _NUM_MERGES or any(len(m) != 2 for m in merges):
            raise ValueError(f'{self.bpe_path} is not the CLIP BPE vocabulary '
                             f'({_NUM_MERGES} merges of two symbols expected)')
        self.byte_encoder = _bytes_to_unicode()
        symbols = list(self.byte_encoder.values())
        vocab = symbols + [s + '</w>' for s in symbols]
        vocab += [''.join(m) for m in merges] + list(_SPECIAL)
        self.encoder = {token: i for i, token in enumerate(vocab)}
        if (self.encoder[_SPECIAL[0]],
                self.encoder[_SPECIAL[1]]) != (SOT_TOKEN_ID, EOT_TOKEN_ID):
            raise ValueError(f'{self.bpe_path}: unexpected special token ids')
        self.ranks = {pair: i for i, pair in enumerate(merges)}
        # A special token written in the text is kept whole (as CLIP does).
        self.pattern = regex.compile(
            '|'.join(_SPECIAL) +
            r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
            regex.IGNORECASE)
        self._cache: Dict[str, Tuple[str, ...]] = {s: (s, ) for s in _SPECIAL}

    def _merge(self, token: str) -> Tuple[str, ...]:
        """Apply the merges to one pre-token (byte symbols): always the
        lowest-ranked adjacent pair, every occurrence left to right."""
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        word = list(token[:-1]) + [token[-1] + '</w>']
        inf = len(self.ranks)
        while len(word) > 1:
            ranks = [self.ranks.get(p, inf) for p in zip(word, word[1:])]
            best = min(ranks)
            if best == inf:
                break
            first, second = word[ranks.index(best)], word[ranks.index(best) +
                                                          1]
            merged, i = [], 0
            while i < len(word):
                if (i + 1 < len(word) and word[i] == first
                        and word[i + 1] == second):
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        result = tuple(word)
        if len(self._cache) < 100000:
            self._cache[token] = result
        return result

    def encode(self, text: str) -> List[int]:
        """BPE ids of ``text`` (cleaned first), without SOT / EOT."""
        ids: List[int] = []
        for piece in self.pattern.findall(clean_text(text)):
            token = ''.join(self.byte_encoder[b]
                            for b in piece.encode('utf-8'))
            ids.extend(self.encoder[s] for s in self._merge(token))
        return ids


@lru_cache(maxsize=4)
def get_tokenizer(bpe_path: Optional[str] = None) -> ClipBPETokenizer:
    """One :class:`ClipBPETokenizer` per vocabulary file and process."""
    return ClipBPETokenizer(bpe_path)


def count_tokens(text: str, bpe_path: Optional[str] = None) -> int:
    """Length of a sentence's CLIP ids before padding or truncation:
    SOT + BPE tokens + EOT (what ``context_length`` must hold for the whole
    sentence to reach the text encoder).

    Args:
        text (str): The sentence.
        bpe_path (str, optional): Vocabulary file. Defaults to None:
            :func:`default_bpe_path`.

    Returns:
        int: The number of ids.
    """
    if not isinstance(text, str):
        raise TypeError(f'text must be a str, got {type(text)}')
    return len(get_tokenizer(bpe_path).encode(text)) + 2


def encode_text(text: str,
                context_length: int = 17,
                truncate: bool = True,
                bpe_path: Optional[str] = None) -> np.ndarray:
    """Tokenize one sentence exactly as the official RIS code.

    ids = ``[SOT] + bpe(clean(text)) + [EOT]``, zero padded to
    ``context_length``. Longer sequences are cut to ``context_length`` and
    their last id is set to EOT.

    Args:
        text (str): The sentence.
        context_length (int): Output length L. Defaults to 17.
        truncate (bool): Truncate long sentences instead of raising.
            Defaults to True.
        bpe_path (str, optional): Vocabulary file. Defaults to None:
            :func:`default_bpe_path`.

    Returns:
        np.ndarray: int64 ids of shape (L,).
    """
    if context_length < 2:
        raise ValueError(
            f'context_length must be >= 2 (SOT + EOT), got {context_length}')
    if not isinstance(text, str):
        raise TypeError(f'text must be a str, got {type(text)}')
    tokens = [SOT_TOKEN_ID
              ] + get_tokenizer(bpe_path).encode(text) + [EOT_TOKEN_ID]
    if len(tokens) > context_length:
        if not truncate:
            raise RuntimeError(
                f'Input "{text}" is too long for context length '
                f'{context_length}')
        tokens = tokens[:context_length]
        tokens[-1] = EOT_TOKEN_ID
    ids = np.zeros(context_length, dtype=np.int64)
    ids[:len(tokens)] = tokens
    return ids
