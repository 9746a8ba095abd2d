# Copyright (c) mmris contributors. All rights reserved.
from .overlay import (DEFAULT_ALPHA, DEFAULT_MIN_SIZE, GT_COLOR, PRED_COLOR,
                      count_caption_lines, draw_caption, draw_referring_mask,
                      draw_text_banner, render_overlay, upscale_to)
from .ris_visualizer import RISLocalVisualizer

__all__ = [
    'RISLocalVisualizer', 'draw_referring_mask', 'draw_caption',
    'draw_text_banner', 'count_caption_lines', 'upscale_to', 'render_overlay',
    'GT_COLOR', 'PRED_COLOR', 'DEFAULT_ALPHA', 'DEFAULT_MIN_SIZE'
]
