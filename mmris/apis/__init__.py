# Copyright (c) mmris contributors. All rights reserved.
from .inference import (build_inference_pipeline, find_ref_dataset,
                        inference_model, init_model, load_image)

__all__ = [
    'init_model', 'inference_model', 'build_inference_pipeline', 'load_image',
    'find_ref_dataset'
]
