# Copyright (c) mmris contributors. All rights reserved.
from .formatting import DEFAULT_META_KEYS, PackRISInputs
from .image_size import (DEFAULT_MAX_IMAGE_PIXELS, ImageHeaderError,
                         ImageTooLargeError, check_image_pixels,
                         max_image_pixels, read_image_size)
from .letterbox import (CLIP_BORDER, CLIP_MEAN, CLIP_STD, LetterboxAffine,
                        get_letterbox_affine)
from .loading import LoadRefImage, LoadRefMask, decode_segmentation
from .tokenizer import (EOT_TOKEN_ID, SOT_TOKEN_ID, CLIPTokenize, encode_text,
                        tokenize)

__all__ = [
    'LoadRefImage', 'LoadRefMask', 'decode_segmentation', 'LetterboxAffine',
    'get_letterbox_affine', 'CLIP_MEAN', 'CLIP_STD', 'CLIP_BORDER',
    'CLIPTokenize', 'tokenize', 'encode_text', 'SOT_TOKEN_ID', 'EOT_TOKEN_ID',
    'PackRISInputs', 'DEFAULT_META_KEYS', 'DEFAULT_MAX_IMAGE_PIXELS',
    'ImageTooLargeError', 'ImageHeaderError', 'check_image_pixels',
    'max_image_pixels', 'read_image_size'
]
