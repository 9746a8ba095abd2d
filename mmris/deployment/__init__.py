# Copyright (c) mmris contributors. All rights reserved.
"""Deployment: ONNX export with the sentence as an input
(:mod:`.onnx_export`, needs torch and the ``onnx`` / ``onnxscript``
packages) and a torch-free onnxruntime runner (:mod:`.ort_inference`)."""
from .onnx_export import (INPUT_NAMES, METADATA_KEY, OUTPUT_NAMES,
                          RISOnnxModel, example_inputs, export_onnx,
                          max_relative_error, quantize_int8, runtime_settings,
                          torch_outputs)

__all__ = [
    'RISOnnxModel', 'export_onnx', 'runtime_settings', 'example_inputs',
    'torch_outputs', 'max_relative_error', 'quantize_int8', 'INPUT_NAMES',
    'OUTPUT_NAMES', 'METADATA_KEY'
]
