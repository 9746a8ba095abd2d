# Copyright (c) mmris contributors. All rights reserved.
from .bridger import Bridger, BridgerRN, BridgerViT
from .cross_modal_attention import CrossModalAttention
from .dense_aligner import DenseAligner
from .dense_conv import ConvBNReLU, DenseConvAdapter
from .text_adapter import TextAdapter

__all__ = [
    'Bridger',
    'BridgerRN',
    'BridgerViT',
    'ConvBNReLU',
    'CrossModalAttention',
    'DenseAligner',
    'DenseConvAdapter',
    'TextAdapter',
]
