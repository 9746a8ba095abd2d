# Copyright (c) mmris contributors. All rights reserved.
"""What an adapter receives besides its input: the state of one forward
pass, passed along the calls and never stored on modules (so a module can
serve several calls, batches and threads, and gradient checkpointing
recomputes with exactly the state of the first pass)."""
from dataclasses import dataclass, field, replace
from typing import Any, Dict, Optional, Tuple

from torch import Tensor

__all__ = ['StepContext']


@dataclass(frozen=True)
class StepContext:
    """The per-call context of every hook module.

    :class:`~.adapted_encoder_pair.AdaptedEncoderPair` makes one per forward
    pass and hands each hook a copy with the fields of its call set
    (:meth:`at`).

    Attributes:
        tower (str): 'visual' or 'text' ('' for cross-tower calls).
        layer (int): Block (unit) index of the call in its tower.
        stage (int): Position of ``layer`` in the hook's ``layers``.
        grid (tuple[int, int], optional): Visual patch grid (h, w).
        patch_start (int): Index of the first patch token of the visual
            sequence (prefix tokens + tokens inserted by hooks).
        num_inserted (int): Tokens that hooks inserted into this tower's
            sequence (right after its prefix tokens).
        ids (Tensor, optional): (B, L) token ids.
        pad_mask (Tensor, optional): (B, L) bool, True = padding.
        text_embed (Tensor, optional): (B, L, C_t) text input embeddings
            (token + positional embeddings).
        word (Tensor, optional): (B, L, C_t) word features (``ln_final``
            output), once the text tower has finished (``text_first``).
        visual_tokens (Tensor, optional): The visual sequence, for
            tower-level hooks.
        text_tokens (Tensor, optional): The text sequence, for tower-level
            hooks.
        store (dict, optional): A dict owned by the hook for this forward
            pass (state carried from one stage to the next).
    """
    tower: str = ''
    layer: int = -1
    stage: int = -1
    grid: Optional[Tuple[int, int]] = None
    patch_start: int = 0
    num_inserted: int = 0
    ids: Optional[Tensor] = None
    pad_mask: Optional[Tensor] = None
    text_embed: Optional[Tensor] = None
    word: Optional[Tensor] = None
    visual_tokens: Optional[Tensor] = None
    text_tokens: Optional[Tensor] = None
    store: Optional[Dict[str, Any]] = field(default=None, compare=False)

    def at(self, **fields: Any) -> 'StepContext':
        """A copy with ``fields`` replaced."""
        return replace(self, **fields)
