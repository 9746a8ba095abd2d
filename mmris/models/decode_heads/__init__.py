# Copyright (c) mmris contributors. All rights reserved.
from .dynamic_projector import DynamicProjector
from .ris_head import RISDecodeHead
from .ris_transformer_decoder import RISDecoderLayer, RISTransformerDecoder

__all__ = [
    'DynamicProjector', 'RISDecodeHead', 'RISDecoderLayer',
    'RISTransformerDecoder'
]
