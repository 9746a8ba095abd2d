# Copyright (c) mmris contributors. All rights reserved.
"""Build a referring segmentor from a config and segment images by text."""
import copy
import logging
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
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
               cfg_options: Optional[dict] = None) -> nn.Module:
    """Build a referring segmentor from a config and load a checkpoint.

    Args:
        config (str | Path | Config): Config file path or object.
        checkpoint (str, optional): Checkpoint path (an mmris / MMEngine
            checkpoint, or a plain state dict). Defaults to None: randomly
            initialised weights (``init_weights()``, which also reads the
            frozen encoders' ``pretrained`` files when the config sets them).
        device (str): Device, e.g. 'cpu' or 'cuda:0'. Defaults to 'cpu'.
        cfg_options (dict, optional): Overrides merged into the config.
            Defaults to None.

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
        ckpt = load_checkpoint(model, str(checkpoint), map_location='cpu')
        meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
        if isinstance(meta, dict) and 'dataset_meta' in meta:
            model.dataset_meta = meta['dataset_meta']
    if not hasattr(model, 'dataset_meta'):
        model.dataset_meta = dict(
            classes=('background', 'object'),
            palette=[[0, 0, 0], [255, 0, 0]])
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


def load_image(image: ImageType, channel_order: str = 'rgb') -> dict:
    """Load ``image`` like ``LoadRefImage`` (OpenCV decoding, EXIF
    orientation applied, RGB uint8).

    Args:
        image (str | Path | np.ndarray): A file path, or an (h, w, 3) /
            (h, w) uint8 array.
        channel_order (str): Channel order of an array: 'rgb' (PIL,
            scikit-image, matplotlib) or 'bgr' (OpenCV, ``mmcv.imread``).
            Defaults to 'rgb'.

    Returns:
        dict: ``img``, ``img_path``, ``ori_shape`` and ``img_shape``.
    """
    from mmris.datasets.transforms import LoadRefImage
    if isinstance(image, (str, Path)):
        return LoadRefImage().transform(dict(img_path=str(image)))
    if not isinstance(image, np.ndarray):
        raise TypeError('image must be a path or a numpy array, got '
                        f'{type(image)}')
    if channel_order not in ('rgb', 'bgr'):
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got "
                         f'{channel_order!r}')
    img = image
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f'image array must be (h, w), (h, w, 3) or '
                         f'(h, w, 4), got {image.shape}')
    img = img[..., :3]
    if img.dtype != np.uint8:
        if np.issubdtype(img.dtype, np.floating) and img.max() <= 1.0:
            img = img * 255.
        img = np.clip(np.round(img), 0, 255).astype(np.uint8)
    if channel_order == 'bgr':
        img = img[..., ::-1]
    img = np.ascontiguousarray(img)
    return dict(
        img=img, img_path=None, ori_shape=img.shape[:2],
        img_shape=img.shape[:2])


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

    The image is letterboxed once (test pipeline of ``model.cfg``) and the
    sentences are run ``batch_size`` at a time.

    Args:
        model (nn.Module): From :func:`init_model`.
        image (str | Path | np.ndarray): Image path or array (see
            :func:`load_image`).
        texts (str | Sequence[str]): One sentence or several.
        batch_size (int): Sentences per forward pass. Defaults to 8.
        threshold (float, optional): Overrides the model's
            ``test_cfg.threshold`` (0.35) for the binary masks.
            Defaults to None.
        channel_order (str): Channel order of an array image.
            Defaults to 'rgb'.

    Returns:
        SegDataSample | list[SegDataSample]: One per sentence (a single one
        when ``texts`` is a str), each with ``pred_sem_seg.data`` (uint8
        {0, 1}, (1, h, w), original resolution), ``seg_logits.data`` (the
        foreground probability map, float32 (1, h, w)) and the sentence in
        ``metainfo['text']``.
    """
    single = isinstance(texts, str)
    sentences = [texts] if single else list(texts)
    if not sentences:
        raise ValueError('texts is empty: give at least one sentence')
    if not all(isinstance(t, str) for t in sentences):
        raise TypeError('texts must be a str or a sequence of str')
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1, got {batch_size}')
    cfg = getattr(model, 'cfg', None)
    if cfg is None:
        raise AttributeError('model has no `cfg`: build it with init_model')

    pipeline = build_inference_pipeline(cfg)
    base = load_image(image, channel_order)
    samples = []
    for text in sentences:
        results = dict(base, img=base['img'], text=text)
        if results.get('img_path') is None:
            results.pop('img_path')
        samples.append(pipeline(results))

    outputs: List[SegDataSample] = []
    for start in range(0, len(samples), batch_size):
        data = pseudo_collate(samples[start:start + batch_size])
        outputs.extend(model.test_step(data))
    if threshold is not None:
        for out in outputs:
            prob = out.seg_logits.data
            out.pred_sem_seg.data = (prob > threshold).to(torch.uint8)
    return outputs[0] if single else outputs
