# Copyright (c) mmris contributors. All rights reserved.
from .ris_visualizer import (GT_COLOR, PRED_COLOR, RISLocalVisualizer,
                             draw_referring_mask, draw_text_banner)

__all__ = [
    'RISLocalVisualizer', 'draw_referring_mask', 'draw_text_banner',
    'GT_COLOR', 'PRED_COLOR'
]
