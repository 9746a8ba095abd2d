# Copyright (c) mmris contributors. All rights reserved.
from . import adapters, backbones, decode_heads, necks, segmentors  # noqa
from .data_preprocessor import RISDataPreprocessor

__all__ = ['RISDataPreprocessor']
