# Copyright (c) mmris contributors. All rights reserved.
from .inference import (build_inference_pipeline, find_ref_dataset,
                        inference_model, init_model, load_image)
from .ris_inferencer import RISInferencer, find_config

__all__ = [
    'init_model', 'inference_model', 'build_inference_pipeline', 'load_image',
    'find_ref_dataset', 'RISInferencer', 'find_config'
]
