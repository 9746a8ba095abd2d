# Copyright (c) mmris contributors. All rights reserved.
from .checkpoint_convert import KEY_MAPS, convert_official_state_dict
from .param_count import count_parameters, format_parameter_table

__all__ = [
    'KEY_MAPS', 'convert_official_state_dict', 'count_parameters',
    'format_parameter_table'
]
