# Copyright (c) mmris contributors. All rights reserved.
from .param_count import count_parameters, format_parameter_table

__all__ = ['count_parameters', 'format_parameter_table']
