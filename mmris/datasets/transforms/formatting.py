# Copyright (c) mmris contributors. All rights reserved.
"""Pack a referring-segmentation sample into model inputs."""
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import PixelData
from mmseg.registry import TRANSFORMS
from mmseg.structures import SegDataSample

DEFAULT_META_KEYS = ('img_path', 'ori_shape', 'img_shape', 'affine',
                     'inv_affine', 'scale_factor', 'text', 'ref_id', 'sent_id',
                     'ann_id', 'image_id', 'sample_idx', 'split', 'dataset',
                     'no_target', 'num_targets', 'segmentation')


@TRANSFORMS.register_module()
class PackRISInputs(BaseTransform):
    """Pack image, text ids and masks into ``inputs`` + ``SegDataSample``.

    The image stays uint8: CLIP normalisation is done by the model's data
    preprocessor.

    Output::

        dict(
            inputs=torch.uint8 tensor (3, S_h, S_w),
            data_samples=SegDataSample(
                text_ids=torch.int64 tensor (L,),              # data field
                gt_mask=PixelData(data=float32 (1, S_h, S_w)),  # if present
                gt_sem_seg=PixelData(data=uint8 (1, h, w)),     # if present
                metainfo={k: results[k] for k in meta_keys if k in results}))

    ``gt_mask`` (soft, letterboxed) comes from ``LetterboxAffine`` in
    training; ``gt_sem_seg`` is the original-resolution {0, 1} mask
    ``gt_seg_map`` kept for evaluation.

    Args:
        meta_keys (Sequence[str]): Keys copied to the metainfo when present.
            Defaults to ``('img_path', 'ori_shape', 'img_shape', 'affine',
            'inv_affine', 'scale_factor', 'text', 'ref_id', 'sent_id',
            'ann_id', 'image_id', 'sample_idx', 'split', 'dataset',
            'no_target', 'num_targets', 'segmentation')`` (``no_target``
            and ``num_targets`` from ``GRefCOCODataset``: gRefCOCO's
            no-target flag and number of targets; ``segmentation``, the
            annotation, lets ``GRISMetric(resolution='rela')`` rasterise
            the ground truth at ReLA's input size).
    """

    def __init__(self, meta_keys: Sequence[str] = DEFAULT_META_KEYS) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        packed = dict()
        if 'img' in results:
            img = results['img']
            if img.ndim < 3:
                img = img[..., None]
            packed['inputs'] = torch.from_numpy(
                np.ascontiguousarray(img.transpose(2, 0, 1)))

        data_sample = SegDataSample()
        if 'text_ids' in results:
            data_sample.text_ids = torch.as_tensor(
                np.asarray(results['text_ids'], dtype=np.int64))
        if results.get('gt_mask') is not None:
            gt_mask = np.asarray(results['gt_mask'], dtype=np.float32)
            data_sample.gt_mask = PixelData(
                data=torch.from_numpy(np.ascontiguousarray(gt_mask[None])))
        if results.get('gt_seg_map') is not None:
            seg = (np.asarray(results['gt_seg_map']) > 0).astype(np.uint8)
            data_sample.gt_sem_seg = PixelData(
                data=torch.from_numpy(np.ascontiguousarray(seg[None])))
        metainfo = {k: results[k] for k in self.meta_keys if k in results}
        data_sample.set_metainfo(metainfo)
        packed['data_samples'] = data_sample
        return packed

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
