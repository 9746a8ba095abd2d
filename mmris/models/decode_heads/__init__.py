# Copyright (c) mmris contributors. All rights reserved.
from .dynamic_projector import DynamicProjector
from .no_target_head import NoTargetHead
from .ris_head import RISDecodeHead
from .ris_transformer_decoder import RISDecoderLayer, RISTransformerDecoder

__all__ = [
    'DynamicProjector', 'NoTargetHead', 'RISDecodeHead', 'RISDecoderLayer',
    'RISTransformerDecoder'
]
