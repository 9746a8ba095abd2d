# Copyright (c) mmris contributors. All rights reserved.
from .ris_neck import RISNeck

__all__ = ['RISNeck']
