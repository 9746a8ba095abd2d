# Copyright (c) mmris contributors. All rights reserved.
"""``RISInferencer``: MMEngine's ``BaseInferencer`` for referring
segmentation (the pattern of MMSegmentation's ``MMSegInferencer``)."""
import glob
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config, ConfigDict
from mmengine.dataset import pseudo_collate
from mmengine.infer import BaseInferencer
from mmseg.structures import SegDataSample

from ..visualization.overlay import (DEFAULT_ALPHA, DEFAULT_MIN_SIZE,
                                     PRED_COLOR, render_overlay)
from .inference import (ImageType, _check_texts, _check_threshold,
                        build_inference_pipeline, init_model, load_image)

TextsType = Union[str, Sequence[str], Sequence[Sequence[str]]]


def repo_or_package_dir() -> str:
    """The checkout (with ``configs/`` and ``model-index.yml``) or, for an
    installed wheel, the package's ``.mim`` folder."""
    package = osp.dirname(osp.dirname(osp.abspath(__file__)))
    checkout = osp.dirname(package)
    if osp.isdir(osp.join(checkout, 'configs')):
        return checkout
    return osp.join(package, '.mim')


def find_config(name: str) -> str:
    """The config file of a model name.

    A name of ``model-index.yml`` (e.g. ``etris_vit-b16_refcoco``, case
    insensitive), or the stem of any config under ``configs/`` (e.g.
    ``etris-tiny_synthetic``).

    Args:
        name (str): The model name.

    Returns:
        str: The config path.

    Raises:
        ValueError: For an unknown name, listing a few known ones.
    """
    import yaml
    root = repo_or_package_dir()
    known = {}
    index = osp.join(root, 'model-index.yml')
    if osp.isfile(index):
        with open(index, encoding='utf-8') as f:
            files = (yaml.safe_load(f) or {}).get('Import', [])
        for rel in files:
            with open(osp.join(root, rel), encoding='utf-8') as f:
                meta = yaml.safe_load(f) or {}
            for entry in meta.get('Models', []):
                known[str(entry['Name']).lower()] = osp.join(
                    root, entry['Config'])
    for path in glob.glob(
            osp.join(root, 'configs', '**', '*.py'), recursive=True):
        if '_base_' not in path.split(os.sep):
            known.setdefault(osp.splitext(osp.basename(path))[0].lower(), path)
    found = known.get(name.lower())
    if found is None:
        raise ValueError(
            f'Unknown model {name!r}: give a config file, or a name of '
            f'model-index.yml or of a config under {osp.join(root, "configs")}'
            f' (e.g. {", ".join(sorted(known)[:4])}, ...)')
    return found


class RISInferencer(BaseInferencer):
    """Segment what sentences refer to in images.

    The MMEngine inferencer of mmris: a model name or config with weights,
    images (paths, arrays, or lists of them) times sentences, batched over
    every (image, sentence) pair. Images are read and checked as
    :func:`mmris.apis.load_image` reads them (header pixel limit, EXIF
    orientation, dtype rules), letterboxed and tokenised as the config's
    test pipeline does, and the masks come back at the original resolution.

    Example:
        >>> inferencer = RISInferencer(
        ...     'configs/quickstart/etris-tiny_synthetic.py',
        ...     weights='work_dirs/quickstart/epoch_4.pth', device='cpu')
        >>> out = inferencer('demo/demo.jpg', ['the red circle',
        ...                  'the big green square'], return_vis=True)
        >>> out['predictions'][0]['mask'].shape   # (h, w) uint8 {0, 1}
        >>> out['visualization'][0].shape          # RGB overlay

    Args:
        model (str | Config | nn.Module): A config file, a model name
            (:func:`find_config`), a ``Config``, or a model built by
            :func:`mmris.apis.init_model` (used as it is).
        weights (str, optional): Checkpoint, loaded strictly by
            :func:`mmris.apis.init_model` (weights-only allow-list, CRC
            check). Defaults to None: random weights.
        device (str, optional): e.g. 'cpu', 'cuda:0'. Defaults to None: CUDA
            when available, else CPU.
        scope (str): Registry scope. Defaults to 'mmseg'.
        show_progress (bool): Progress bar over the batches. Defaults to
            False.
        max_pixels (int, optional): Largest image accepted (width x height,
            read from a file's header before decoding). Defaults to None:
            see :func:`mmris.datasets.transforms.max_image_pixels`.
        cfg_options (dict, optional): Config overrides. Defaults to None.
        strict (bool, optional): Strict checkpoint loading (see
            :func:`mmris.apis.init_model`). Defaults to None.
    """

    preprocess_kwargs: set = {'channel_order'}
    forward_kwargs: set = {'threshold'}
    visualize_kwargs: set = {
        'return_vis', 'show', 'wait_time', 'out_dir', 'alpha', 'min_size'
    }
    postprocess_kwargs: set = set()

    def __init__(self,
                 model: Union[str, Config, ConfigDict, nn.Module],
                 weights: Optional[str] = None,
                 device: Optional[str] = None,
                 scope: Optional[str] = 'mmseg',
                 show_progress: bool = False,
                 max_pixels: Optional[int] = None,
                 cfg_options: Optional[dict] = None,
                 strict: Optional[bool] = None) -> None:
        self._given_model = None
        self._cfg_options = cfg_options
        self._strict = strict
        self.max_pixels = max_pixels
        if isinstance(model, nn.Module):
            if getattr(model, 'cfg', None) is None:
                raise AttributeError('model has no `cfg`: build it with '
                                     'init_model')
            self._given_model = model
            if device is None:
                device = str(next(model.parameters()).device)
            model = model.cfg
        elif isinstance(model, str) and not osp.isfile(model):
            if model.endswith('.py') or os.sep in model:
                raise FileNotFoundError(f'config file not found: {model}')
        super().__init__(
            model=model,
            weights=weights,
            device=device,
            scope=scope,
            show_progress=show_progress)

    # --- building ---------------------------------------------------------
    def _load_model_from_metafile(self, model: str) -> Tuple[Config, None]:
        """A model name -> its config (no published mmris weights yet)."""
        return Config.fromfile(find_config(model)), None

    def _init_model(self,
                    cfg: Config,
                    weights: Optional[str],
                    device: str = 'cpu') -> nn.Module:
        if self._given_model is not None:
            return self._given_model
        if not isinstance(cfg, Config):
            cfg = Config(cfg)
        return init_model(
            cfg,
            weights,
            device=device,
            cfg_options=self._cfg_options,
            strict=self._strict)

    def _init_pipeline(self, cfg: Config):
        # the model's config (cfg_options merged) sets sizes and lengths
        return build_inference_pipeline(self.model.cfg)

    def _init_collate(self, cfg: Config):
        return pseudo_collate

    def _init_visualizer(self, cfg: Config):
        # overlays are drawn by mmris.visualization.overlay.render_overlay
        return None

    # --- running ----------------------------------------------------------
    def __call__(self,
                 inputs: Union[ImageType, Sequence[ImageType]],
                 texts: TextsType,
                 return_datasamples: bool = False,
                 batch_size: int = 8,
                 **kwargs) -> dict:
        """Segment every sentence of ``texts`` in every image of ``inputs``.

        Args:
            inputs (str | Path | np.ndarray | list): One image (path or
                array), a list of them, or a directory (its files).
            texts (str | list[str] | list[list[str]]): One sentence or a
                list, run on every image; or one list per image.
            return_datasamples (bool): Return ``SegDataSample`` objects
                instead of dicts. Defaults to False.
            batch_size (int): (image, sentence) pairs per forward pass.
                Defaults to 8.
            **kwargs: ``channel_order`` ('rgb' or 'bgr' for arrays),
                ``threshold`` (overrides ``test_cfg.threshold``),
                ``return_vis`` (return overlays), ``out_dir`` (write them
                as ``<image stem>_<k>.png``), ``show``, ``wait_time``,
                ``alpha``, ``min_size`` (overlay settings, as
                ``tools/test.py --show-dir`` draws).

        Returns:
            dict: ``predictions``: per image a list with, per sentence, a
            dict ``text``, ``mask`` (uint8 {0, 1} (h, w) at the original
            size), ``prob`` (float32 foreground probability (h, w)),
            ``no_target`` (bool; gRefCOCO models' "no such object", the
            mask is then empty) and ``no_target_score`` (float or None), or
            the ``SegDataSample`` of :func:`mmris.apis.inference_model`;
            ``visualization``: the same nesting of RGB overlays, or None.
            For one image (not a list), both hold that image's list
            directly.
        """
        import numbers
        if isinstance(batch_size,
                      bool) or not isinstance(batch_size, numbers.Integral):
            raise TypeError('batch_size must be an int, got '
                            f'{type(batch_size).__name__}')
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        single = not isinstance(inputs, (list, tuple)) and not (isinstance(
            inputs, str) and osp.isdir(inputs))
        images = self._inputs_to_list(
            str(inputs) if isinstance(inputs, os.PathLike) else inputs)
        if not images:
            raise ValueError('inputs holds no image')
        per_image = self._texts_per_image(texts, len(images))
        (preprocess_kwargs, forward_kwargs, visualize_kwargs,
         postprocess_kwargs) = self._dispatch_kwargs(**kwargs)
        threshold = forward_kwargs.get('threshold')
        if threshold is not None:
            forward_kwargs['threshold'] = _check_threshold(threshold)

        loaded, batches = self.preprocess(
            images, per_image, batch_size=batch_size, **preprocess_kwargs)
        preds: List[SegDataSample] = []
        for data in batches:
            preds.extend(self.forward(data, **forward_kwargs))
        owners = [i for i, sents in enumerate(per_image) for _ in sents]
        visualization = self.visualize(images, loaded, owners, preds,
                                       **visualize_kwargs)
        results = self.postprocess(preds, visualization, return_datasamples,
                                   **postprocess_kwargs)
        for key in ('predictions', 'visualization'):
            flat = results[key]
            if flat is None:
                continue
            nested: List[list] = [[] for _ in images]
            for i, item in zip(owners, flat):
                nested[i].append(item)
            results[key] = nested[0] if single else nested
        return results

    @staticmethod
    def _texts_per_image(texts: TextsType, num: int) -> List[List[str]]:
        """Sentences per image: one list for all, or one list per image."""
        if isinstance(texts, (list, tuple)) and texts and all(
                isinstance(t, (list, tuple)) for t in texts):
            if len(texts) != num:
                raise ValueError(f'texts has {len(texts)} lists of sentences '
                                 f'for {num} images: give one list per '
                                 'image, or one list for all')
            return [
                _check_texts(t, f'texts[{i}]') for i, t in enumerate(texts)
            ]
        return [_check_texts(texts, 'texts')] * num

    def preprocess(self,
                   inputs: list,
                   texts: List[List[str]],
                   batch_size: int = 8,
                   channel_order: str = 'rgb') -> Tuple[list, list]:
        """Load each image once (checked, RGB uint8) and run the test
        pipeline for each of its sentences.

        Returns:
            tuple[list, list]: The loaded RGB images, and the batches
            (collated chunks of ``batch_size`` pairs).
        """
        loaded, samples = [], []
        for image, sentences in zip(inputs, texts):
            base = load_image(image, channel_order, self.max_pixels)
            loaded.append(base['img'])
            for text in sentences:
                results = dict(base, text=text)
                if results.get('img_path') is None:
                    results.pop('img_path')
                samples.append(self.pipeline(results))
        batches = [
            self.collate_fn(samples[start:start + batch_size])
            for start in range(0, len(samples), batch_size)
        ]
        return loaded, batches

    @torch.no_grad()
    def forward(self,
                inputs: dict,
                threshold: Optional[float] = None) -> List[SegDataSample]:
        """``model.test_step``; ``threshold`` re-thresholds the masks."""
        outputs = self.model.test_step(inputs)
        if threshold is not None:
            for out in outputs:
                no_target = bool(out.metainfo.get('pred_no_target', False))
                prob = out.seg_logits.data
                mask = (prob > threshold).to(torch.uint8)
                out.pred_sem_seg.data = mask * 0 if no_target else mask
        return outputs

    def visualize(
            self,
            inputs: list,
            images: List[np.ndarray],
            owners: List[int],
            preds: List[SegDataSample],
            return_vis: bool = False,
            show: bool = False,
            wait_time: float = 0,
            out_dir: str = '',
            alpha: float = DEFAULT_ALPHA,
            min_size: int = DEFAULT_MIN_SIZE) -> Optional[List[np.ndarray]]:
        """One overlay per (image, sentence), as ``--show-dir`` draws it
        (:func:`mmris.visualization.render_overlay`), the sentence as the
        caption ("-> no target" for a no-target answer).

        Returns:
            list[np.ndarray] | None: RGB overlays, or None when none is
            asked for (``return_vis``, ``show`` or ``out_dir``).
        """
        if not (return_vis or show or out_dir):
            return None
        import cv2
        drawn = []
        counts: Dict[int, int] = {}
        for i, pred in zip(owners, preds):
            source = inputs[i]
            stem = (
                osp.splitext(osp.basename(str(source)))[0] if isinstance(
                    source, (str, os.PathLike)) else f'image_{i}')
            k = counts[i] = counts.get(i, -1) + 1
            text = pred.metainfo['text']
            no_target = bool(pred.metainfo.get('pred_no_target', False))
            overlay = render_overlay(
                images[i],
                pred.pred_sem_seg.data[0].cpu().numpy(),
                f'{text} -> no target' if no_target else text,
                PRED_COLOR,
                alpha=alpha,
                min_size=min_size)
            drawn.append(overlay)
            bgr = cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR)
            if out_dir:
                os.makedirs(out_dir, exist_ok=True)
                cv2.imwrite(osp.join(out_dir, f'{stem}_{k}.png'), bgr)
            if show:
                cv2.imshow(stem, bgr)
                cv2.waitKey(int(wait_time * 1000))
        return drawn

    def postprocess(self,
                    preds: List[SegDataSample],
                    visualization: Optional[List[np.ndarray]],
                    return_datasample: bool = False) -> Dict[str, Any]:
        """Predictions as dicts of numpy arrays (or the data samples)."""
        if return_datasample:
            return dict(predictions=preds, visualization=visualization)
        records = []
        for pred in preds:
            score = pred.metainfo.get('no_target_score')
            records.append(
                dict(
                    text=pred.metainfo['text'],
                    mask=pred.pred_sem_seg.data[0].cpu().numpy().astype(
                        np.uint8),
                    prob=pred.seg_logits.data[0].float().cpu().numpy(),
                    no_target=bool(pred.metainfo.get('pred_no_target', False)),
                    no_target_score=None if score is None else float(score)))
        return dict(predictions=records, visualization=visualization)
