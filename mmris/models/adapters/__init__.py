# Copyright (c) mmris contributors. All rights reserved.
from .adapt_mlp import AdaptMLP
from .bridger import Bridger, BridgerRN, BridgerViT
from .cross_modal_attention import CrossModalAttention
from .dense_aligner import DenseAligner
from .dense_conv import DenseConvAdapter, conv_bn_relu
from .intertwiner import Intertwiner
from .lora import LoRAQKV
from .shortcut_flow import ShortcutNormalizingFlow
from .side_network import BarLeRIaSideNetwork, SideAdapterNetwork
from .text_adapter import TextAdapter
from .visual_prompts import DeepVisualPrompts

__all__ = [
    'AdaptMLP',
    'DeepVisualPrompts',
    'LoRAQKV',
    'BarLeRIaSideNetwork',
    'Bridger',
    'BridgerRN',
    'BridgerViT',
    'conv_bn_relu',
    'CrossModalAttention',
    'DenseAligner',
    'DenseConvAdapter',
    'Intertwiner',
    'ShortcutNormalizingFlow',
    'SideAdapterNetwork',
    'TextAdapter',
]
