# Copyright (c) mmris contributors. All rights reserved.
"""Build a referring segmentor from a config and segment images by text."""
import copy
import logging
import math
import numbers
import warnings
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

ImageType = Union[str, Path, np.ndarray]

#: Transforms of a test pipeline that inference drops: the image is loaded
#: here (path or array) and there is no ground-truth mask.
_SKIPPED = ('LoadRefImage', 'LoadRefMask', 'LoadAnnotations',
            'LoadImageFromFile')


def find_ref_dataset(dataset_cfg) -> Optional[dict]:
    """First dataset config with ``img_size``/``word_len`` (unwraps
    ``ConcatDataset``/``RepeatDataset`` style wrappers)."""
    if dataset_cfg is None:
        return None
    if 'img_size' in dataset_cfg or 'word_len' in dataset_cfg:
        return dataset_cfg
    for key in ('dataset', 'datasets'):
        inner = dataset_cfg.get(key)
        if isinstance(inner, (list, tuple)):
            inner = inner[0] if inner else None
        found = find_ref_dataset(inner)
        if found is not None:
            return found
    return dataset_cfg if 'pipeline' in dataset_cfg else None


def _inference_settings(cfg: Config) -> dict:
    """``pipeline``, ``img_size`` and ``word_len`` of the test dataset."""
    dataset_cfg = None
    for key in ('test_dataloader', 'val_dataloader'):
        loader = cfg.get(key)
        if loader is not None and loader.get('dataset') is not None:
            dataset_cfg = find_ref_dataset(loader['dataset'])
            if dataset_cfg is not None:
                break
    if dataset_cfg is None:
        raise ValueError('The config has no test_dataloader.dataset: cannot '
                         'tell the input size / text length for inference')
    pipeline = dataset_cfg.get('pipeline') or cfg.get('test_pipeline')
    if not pipeline:
        raise ValueError('The test dataset config has no pipeline')
    return dict(
        pipeline=copy.deepcopy(list(pipeline)),
        img_size=dataset_cfg.get('img_size'),
        word_len=dataset_cfg.get('word_len'))


def init_model(config: Union[str, Path, Config],
               checkpoint: Optional[str] = None,
               device: str = 'cpu',
               cfg_options: Optional[dict] = None,
               strict: Optional[bool] = None) -> nn.Module:
    """Build a referring segmentor from a config and load a checkpoint.

    The checkpoint is read by :func:`mmris.checkpoint.safe_torch_load`
    (weights-only allow-list, zip CRC check) and loaded strictly, like the
    runner's ``load_from``: a file of another config (method, width, depth)
    raises :class:`mmris.engine.CheckpointMismatchError` listing the
    missing, unexpected and shape-mismatched keys instead of giving a
    partly random model.

    Args:
        config (str | Path | Config): Config file path or object.
        checkpoint (str, optional): Checkpoint path (an mmris / MMEngine
            checkpoint, or a plain state dict). Defaults to None: randomly
            initialised weights (``init_weights()``, which also reads the
            frozen encoders' ``pretrained`` files when the config sets them).
        device (str): Device, e.g. 'cpu' or 'cuda:0'. Defaults to 'cpu'.
        cfg_options (dict, optional): Overrides merged into the config.
            Defaults to None.
        strict (bool, optional): Raise on any key / shape mismatch. Defaults
            to None: the config's ``strict_load`` (True when unset).
            ``False`` loads the matching tensors and logs the rest.

    Returns:
        nn.Module: The model in eval mode on ``device``, with ``model.cfg``
        (the config) and ``model.dataset_meta``.
    """
    if isinstance(config, (str, Path)):
        config = Config.fromfile(str(config))
    elif not isinstance(config, Config):
        raise TypeError('config must be a filename or a Config object, got '
                        f'{type(config)}')
    else:
        config = copy.deepcopy(config)
    if cfg_options is not None:
        config.merge_from_dict(cfg_options)
    if config.get('model') is None:
        raise KeyError('The config has no `model`')
    init_default_scope(config.get('default_scope', 'mmseg'))
    import mmris  # noqa: F401  (registers the components)

    model = MODELS.build(copy.deepcopy(config.model))
    if checkpoint is None or str(checkpoint).lower() == 'none':
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel(logging.WARNING)  # no per-parameter init dump
        try:
            model.init_weights()
        finally:
            logger.setLevel(level)
    else:
        from mmris.checkpoint import load_ris_checkpoint
        if strict is None:
            strict = bool(config.get('strict_load', True))
        ckpt = load_ris_checkpoint(
            model, str(checkpoint), strict=strict, map_location='cpu')
        meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
        if isinstance(meta, dict) and 'dataset_meta' in meta:
            model.dataset_meta = meta['dataset_meta']
    if not hasattr(model, 'dataset_meta'):
        model.dataset_meta = dict(
            classes=('background', 'object'), palette=[[0, 0, 0], [255, 0, 0]])
    model.cfg = config
    model.to(device)
    model.eval()
    return model


def build_inference_pipeline(cfg: Config) -> Compose:
    """The test pipeline of ``cfg`` without image/mask loading.

    ``LetterboxAffine`` and ``CLIPTokenize`` get the test dataset's
    ``img_size`` and ``word_len`` when they set no size themselves (the
    same values the dataset hands them at test time), so an image is
    letterboxed and tokenised exactly as in evaluation.

    Args:
        cfg (Config): A model config with a test dataloader.

    Returns:
        Compose: Transforms taking ``dict(img=RGB uint8 (h, w, 3),
        text=str)``.
    """
    settings = _inference_settings(cfg)
    transforms = []
    for t in settings['pipeline']:
        t = dict(t)
        if t.get('type') in _SKIPPED:
            continue
        if t.get('type') == 'LetterboxAffine':
            t['warp_mask'] = False
            if t.get('size') is None:
                if settings['img_size'] is None:
                    raise ValueError('Neither LetterboxAffine nor the test '
                                     'dataset sets the input size '
                                     '(`img_size`)')
                t['size'] = settings['img_size']
        if t.get('type') == 'CLIPTokenize' and \
                t.get('context_length') is None:
            t['context_length'] = settings['word_len'] or 17
        transforms.append(t)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    return Compose(transforms)


def _to_uint8(img: np.ndarray) -> np.ndarray:
    """Apply the dtype rule of :func:`load_image` to an (h, w, 3) array."""
    dtype = img.dtype
    if dtype == np.uint8:
        return img
    if dtype == np.uint16:
        return (img >> 8).astype(np.uint8)
    if dtype == np.bool_ or not (np.issubdtype(dtype, np.integer)
                                 or np.issubdtype(dtype, np.floating)):
        raise TypeError(f'image array has dtype {dtype}; use uint8, uint16, '
                        'another integer type or a float type')
    if np.issubdtype(dtype, np.floating):
        bad = ~np.isfinite(img)
        if bad.any():
            pos = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f'image array is not finite: {int(bad.sum())} '
                             f'NaN/inf value(s), first at {pos}')
    low, high = img.min(), img.max()
    if low < 0 or high > 255:
        raise ValueError(f'image array ({dtype}) values must be in [0, 255], '
                         f'got min {low} and max {high}')
    if np.issubdtype(dtype, np.floating):
        if high <= 1:
            warnings.warn(
                'float image has all values in [0, 1], but float images are '
                'read as 0..255; multiply it by 255 if it is a [0, 1] image')
        img = np.round(img)
    return img.astype(np.uint8)


def load_image(image: ImageType,
               channel_order: str = 'rgb',
               max_pixels: Optional[int] = None) -> dict:
    """Load ``image`` like ``LoadRefImage`` (OpenCV decoding, EXIF
    orientation applied, RGB uint8).

    A file's size is read from its header first: an image of more than
    ``max_pixels`` pixels raises
    :class:`mmris.datasets.transforms.ImageTooLargeError` before anything
    is decoded (arrays are held to the same limit).

    Pixel values, one rule for files and arrays:

    * ``uint8``: as is.
    * ``uint16`` (an array, or a 16-bit PNG / TIFF file, which OpenCV's
      ``IMREAD_COLOR`` decodes the same way, as the dataset pipeline does):
      the high byte, ``v >> 8``.
    * float arrays: the 0..255 scale (no [0, 1] detection; a [0, 1] image
      must be multiplied by 255 first, a warning says so), rounded; every
      value must be finite and in [0, 255].
    * other integer arrays: values must be in [0, 255].

    Args:
        image (str | Path | np.ndarray): A file path, or an (h, w),
            (h, w, 3) or (h, w, 4) array (alpha dropped).
        channel_order (str): Channel order of an array: 'rgb' (PIL,
            scikit-image, matplotlib) or 'bgr' (OpenCV, ``mmcv.imread``).
            Defaults to 'rgb'.
        max_pixels (int, optional): Largest width x height. Defaults to
            None: ``$MMRIS_MAX_IMAGE_PIXELS`` or 2**26 (see
            :func:`mmris.datasets.transforms.max_image_pixels`).

    Returns:
        dict: ``img``, ``img_path``, ``ori_shape`` and ``img_shape``.

    Raises:
        TypeError: For another image type or array dtype (bool, complex,
            object).
        ValueError: For a bad shape, NaN / inf values or values outside
            [0, 255]; ``ImageTooLargeError`` (a ``ValueError``) over the
            pixel limit.
        OSError: For a missing or undecodable file (naming it).
    """
    from mmris.datasets.transforms import LoadRefImage
    from mmris.datasets.transforms.image_size import check_pixel_count
    if isinstance(image, (str, Path)):
        return LoadRefImage(max_pixels=max_pixels).transform(
            dict(img_path=str(image)))
    if not isinstance(image, np.ndarray):
        raise TypeError('image must be a path or a numpy array, got '
                        f'{type(image)}')
    if channel_order not in ('rgb', 'bgr'):
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got "
                         f'{channel_order!r}')
    img = image
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4) or 0 in img.shape:
        raise ValueError(f'image array must be (h, w), (h, w, 3) or '
                         f'(h, w, 4) with h, w > 0, got {image.shape}')
    check_pixel_count(img.shape[1], img.shape[0], 'image array', max_pixels)
    img = _to_uint8(img[..., :3])
    if channel_order == 'bgr':
        img = img[..., ::-1]
    img = np.ascontiguousarray(img)
    return dict(
        img=img,
        img_path=None,
        ori_shape=img.shape[:2],
        img_shape=img.shape[:2])


def _check_texts(texts: Union[str, Sequence[str]],
                 name: str = 'texts') -> List[str]:
    """``texts`` as a list of non-empty sentences, or a clear error naming
    the argument ``name``."""
    if isinstance(texts, str):
        sentences, names = [texts], [name]
    elif isinstance(texts, (list, tuple)):
        sentences = list(texts)
        names = [f'{name}[{i}]' for i in range(len(sentences))]
        if not sentences:
            raise ValueError(f'{name} is empty: give at least one sentence')
    else:
        raise TypeError(f'{name} must be a str or a non-empty list of '
                        f'non-empty str, got {type(texts).__name__}')
    for name, text in zip(names, sentences):
        if not isinstance(text, str):
            raise TypeError(f'{name} must be a str, got '
                            f'{type(text).__name__}')
        if not text.strip():
            raise ValueError(f'{name} is an empty sentence ({text!r})')
    return sentences


def _check_threshold(threshold: Optional[float]) -> Optional[float]:
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError('threshold must be a number in [0, 1], got '
                        f'{type(threshold).__name__}')
    threshold = float(threshold)
    if not (math.isfinite(threshold) and 0. <= threshold <= 1.):
        raise ValueError('threshold must be a finite probability in [0, 1], '
                         f'got {threshold}')
    return threshold


@torch.no_grad()
def inference_model(
        model: nn.Module,
        image: ImageType,
        texts: Union[str, Sequence[str]],
        batch_size: int = 8,
        threshold: Optional[float] = None,
        channel_order: str = 'rgb'
) -> Union[SegDataSample, List[SegDataSample]]:
    """Segment what each sentence refers to in one image.

    The image is read once and each sentence goes through the test pipeline
    of ``model.cfg``; the sentences are run ``batch_size`` at a time by
    :class:`mmris.apis.RISInferencer` (which also takes lists of images).

    Args:
        model (nn.Module): From :func:`init_model`.
        image (str | Path | np.ndarray): Image path or array (see
            :func:`load_image` for the dtype / value rule).
        texts (str | list[str]): One non-empty sentence, or a non-empty
            list (or tuple) of them.
        batch_size (int): Sentences per forward pass (>= 1). Defaults to 8.
        threshold (float, optional): Overrides the model's
            ``test_cfg.threshold`` (0.35) for the binary masks; a finite
            value in [0, 1]. Defaults to None.
        channel_order (str): Channel order of an array image.
            Defaults to 'rgb'.

    Returns:
        SegDataSample | list[SegDataSample]: One per sentence (a single one
        when ``texts`` is a str), each with ``pred_sem_seg.data`` (uint8
        {0, 1}, (1, h, w), original resolution), ``seg_logits.data`` (the
        foreground probability map, float32 (1, h, w)) and the sentence in
        ``metainfo['text']``. A model with a ``no_target_head`` (gRefCOCO
        configs) also sets ``metainfo['pred_no_target']`` (True: "there is
        no such object", the mask is then empty) and
        ``metainfo['no_target_score']`` (its probability).

    Raises:
        TypeError / ValueError: For bad ``texts``, ``threshold``,
            ``batch_size`` or image values, naming the argument.
    """
    from .ris_inferencer import RISInferencer
    single = isinstance(texts, str)
    sentences = _check_texts(texts)
    threshold = _check_threshold(threshold)
    if isinstance(image, (list, tuple)):
        raise TypeError('image must be a path or a numpy array, got '
                        f'{type(image).__name__} (RISInferencer takes lists '
                        'of images)')
    inferencer = RISInferencer(model)
    outputs = inferencer(
        image,
        sentences,
        return_datasamples=True,
        batch_size=batch_size,
        threshold=threshold,
        channel_order=channel_order)['predictions']
    return outputs[0] if single else outputs
