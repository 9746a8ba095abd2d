# Copyright (c) mmris contributors. All rights reserved.
from .grefcoco import GRefCOCODataset, gref_paths, load_grefs
from .refcoco import (OFFICIAL_SPLIT_SIZES, REFER_DATASETS, RefCOCODataset,
                      load_instances, load_refs, refer_paths)
from .samplers import RISEpochSampler, SampleKey
from .transforms import (CLIP_MEAN, CLIP_STD, CLIPTokenize, LetterboxAffine,
                         LoadRefImage, LoadRefMask, PackRISInputs, tokenize)

__all__ = [
    'RefCOCODataset', 'GRefCOCODataset', 'RISEpochSampler', 'SampleKey',
    'load_grefs', 'gref_paths', 'OFFICIAL_SPLIT_SIZES', 'REFER_DATASETS',
    'load_refs', 'load_instances', 'refer_paths', 'LoadRefImage',
    'LoadRefMask', 'LetterboxAffine', 'CLIPTokenize', 'PackRISInputs',
    'tokenize', 'CLIP_MEAN', 'CLIP_STD'
]
