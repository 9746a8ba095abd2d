# Copyright (c) mmris contributors. All rights reserved.
from .ris_visualizer import (GT_COLOR, PRED_COLOR, RISLocalVisualizer,
                             count_caption_lines, draw_caption,
                             draw_referring_mask, draw_text_banner,
                             upscale_to)

__all__ = [
    'RISLocalVisualizer', 'draw_referring_mask', 'draw_caption',
    'draw_text_banner', 'count_caption_lines', 'upscale_to', 'GT_COLOR',
    'PRED_COLOR'
]
