# Copyright (c) mmris contributors. All rights reserved.
from .bridger import Bridger, BridgerRN, BridgerViT
from .cross_modal_attention import CrossModalAttention
from .dense_aligner import DenseAligner
from .dense_conv import ConvBNReLU, DenseConvAdapter
from .intertwiner import Intertwiner
from .shortcut_flow import ShortcutNormalizingFlow
from .side_network import BarLeRIaSideNetwork, SideAdapterNetwork
from .text_adapter import TextAdapter

__all__ = [
    'BarLeRIaSideNetwork',
    'Bridger',
    'BridgerRN',
    'BridgerViT',
    'ConvBNReLU',
    'CrossModalAttention',
    'DenseAligner',
    'DenseConvAdapter',
    'Intertwiner',
    'ShortcutNormalizingFlow',
    'SideAdapterNetwork',
    'TextAdapter',
]
