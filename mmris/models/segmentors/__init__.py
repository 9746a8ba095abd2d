# Copyright (c) mmris contributors. All rights reserved.
from .ris_encoder_decoder import RISEncoderDecoder

__all__ = ['RISEncoderDecoder']
