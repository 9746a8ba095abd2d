# Copyright (c) mmris contributors. All rights reserved.
from ..utils.step_context import StepContext
from .adapted_encoder_pair import (AdaptedEncoderPair, EncoderOutput,
                                   text_padding_mask)
from .base_block import HOOK_POINTS, AdaptableBlock
from .base_encoder import TextEncoder, VisualEncoder
from .clip_resnet import CLIPModifiedResNet, CRISAttentionPool2d
from .clip_text import CLIPTextTransformer
from .clip_vit import CLIPVisionTransformer
from .dinov2 import DINOv2, DINOv2Block
from .eva02 import EVA02Block, EVA02VisionTransformer

__all__ = [
    'AdaptedEncoderPair', 'EncoderOutput', 'StepContext', 'HOOK_POINTS',
    'text_padding_mask', 'AdaptableBlock', 'VisualEncoder', 'TextEncoder',
    'CLIPModifiedResNet', 'CRISAttentionPool2d', 'CLIPTextTransformer',
    'CLIPVisionTransformer', 'DINOv2', 'DINOv2Block', 'EVA02Block',
    'EVA02VisionTransformer'
]
