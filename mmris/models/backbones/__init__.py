# Copyright (c) mmris contributors. All rights reserved.
from .adapted_encoder_pair import (AdaptedEncoderPair, EncoderOutput,
                                   TextContext, text_padding_mask)
from .base_block import AdaptableBlock
from .base_encoder import TextEncoder, VisualEncoder
from .clip_resnet import CLIPModifiedResNet, CRISAttentionPool2d
from .clip_text import CLIPTextTransformer
from .clip_vit import CLIPVisionTransformer
from .dinov2 import DINOv2, DINOv2Block

__all__ = [
    'AdaptedEncoderPair', 'EncoderOutput', 'TextContext', 'text_padding_mask',
    'AdaptableBlock', 'VisualEncoder', 'TextEncoder', 'CLIPModifiedResNet',
    'CRISAttentionPool2d', 'CLIPTextTransformer', 'CLIPVisionTransformer',
    'DINOv2', 'DINOv2Block'
]
