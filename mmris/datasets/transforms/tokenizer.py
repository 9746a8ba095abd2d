# Copyright (c) mmris contributors. All rights reserved.
"""CLIP BPE tokenization of referring expressions (as ``tokenize`` in
kkakkkka/ETRIS, utils/simple_tokenizer.py and utils/dataset.py)."""
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

# The tokenizer itself is torch-free (the ONNX runtime uses the same file).
from .clip_bpe import EOT_TOKEN_ID, SOT_TOKEN_ID, count_tokens, encode_text

__all__ = [
    'CLIPTokenize', 'tokenize', 'encode_text', 'count_tokens', 'SOT_TOKEN_ID',
    'EOT_TOKEN_ID'
]


def tokenize(texts: Union[str, Sequence[str]],
             context_length: int = 17,
             truncate: bool = True) -> torch.Tensor:
    """Tokenize one or several sentences into a padded id tensor.

    Args:
        texts (str | Sequence[str]): One sentence or a list of sentences.
        context_length (int): Output length L. Defaults to 17.
        truncate (bool): Truncate long sentences (last id set to EOT).
            Defaults to True.

    Returns:
        torch.Tensor: int64 tensor of shape (N, L) (N = 1 for a str).
    """
    if isinstance(texts, str):
        texts = [texts]
    ids: List[np.ndarray] = [
        encode_text(t, context_length, truncate) for t in texts
    ]
    if not ids:
        return torch.zeros((0, context_length), dtype=torch.long)
    return torch.from_numpy(np.stack(ids, axis=0))


@TRANSFORMS.register_module()
class CLIPTokenize(BaseTransform):
    """Tokenize the referring expression with the CLIP BPE tokenizer.

    Note that the official models use ``ids == 0`` as the padding mask, and
    BPE id 0 is the (non word-final) symbol "!", e.g. in "!(", so the
    official padding mask (kkakkkka/ETRIS, model/segmenter.py) also masks
    such a "!".
    Ids are produced faithfully; the mask convention is the model's concern.

    Required Keys:

    - text (str), or the key given by ``key``

    Added Keys:

    - text_ids (np.ndarray): int64, shape (L,)

    Args:
        context_length (int, optional): Output length L (``word_len`` in the
            official configs). Defaults to None: the ``context_length`` that
            ``RefCOCODataset`` puts in the results (its ``word_len``), else 17.
        key (str): Results key holding the sentence. Defaults to 'text'.
        truncate (bool): Truncate long sentences, last id set to EOT.
            Defaults to True.
    """

    def __init__(self,
                 context_length: Optional[int] = None,
                 key: str = 'text',
                 truncate: bool = True) -> None:
        if context_length is not None and context_length < 2:
            raise ValueError(
                f'context_length must be >= 2, got {context_length}')
        self.context_length = context_length
        self.key = key
        self.truncate = truncate

    def transform(self, results: dict) -> dict:
        if self.key not in results:
            raise KeyError(f'CLIPTokenize: results has no "{self.key}" key')
        length = self.context_length or results.get('context_length') or 17
        results['text_ids'] = encode_text(results[self.key], length,
                                          self.truncate)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(context_length='
                f'{self.context_length}, key={self.key!r}, '
                f'truncate={self.truncate})')
