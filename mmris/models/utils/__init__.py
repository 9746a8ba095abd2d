# Copyright (c) mmris contributors. All rights reserved.
from .affine_warp import warp_affine_cubic
from .attention import MultiheadAttention
from .interactors import GatedCrossAttention, PostNormInteractor
from .layers import CoordConv, conv_layer, deconv_layer, init_linear_conv
from .positional_encoding import sine_encoding_1d, sine_encoding_2d
from .quick_gelu import QuickGELU, quick_gelu
from .step_context import StepContext

__all__ = [
    'MultiheadAttention', 'GatedCrossAttention', 'PostNormInteractor',
    'CoordConv', 'conv_layer', 'deconv_layer', 'init_linear_conv',
    'sine_encoding_1d', 'sine_encoding_2d', 'warp_affine_cubic', 'QuickGELU',
    'quick_gelu', 'StepContext'
]
