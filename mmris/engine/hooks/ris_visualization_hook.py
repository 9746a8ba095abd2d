# Copyright (c) mmris contributors. All rights reserved.
"""Draw ground truth vs prediction of referring samples in val/test."""
import os.path as osp
import re
import warnings
from typing import Optional, Sequence

import cv2
import mmengine.fileio as fileio
import numpy as np
from mmengine.runner import Runner
from mmseg.engine.hooks import SegVisualizationHook
from mmseg.registry import HOOKS
from mmseg.structures import SegDataSample


def sample_name(data_sample: SegDataSample, mode: str = 'test') -> str:
    """A file-name-safe identifier of one sentence: ``<mode>_<image stem>
    _ref<ref_id>_sent<sent_id>`` (falls back to ``sample_idx``)."""
    meta = data_sample.metainfo
    stem = osp.splitext(osp.basename(str(meta.get('img_path', 'image'))))[0]
    parts = [mode, stem]
    if meta.get('ref_id') is not None:
        parts.append(f"ref{meta['ref_id']}")
    if meta.get('sent_id') is not None:
        parts.append(f"sent{meta['sent_id']}")
    elif meta.get('sample_idx') is not None:
        parts.append(f"idx{meta['sample_idx']}")
    return re.sub(r'[^A-Za-z0-9_.+-]', '_', '_'.join(parts))


@HOOKS.register_module()
class RISVisualizationHook(SegVisualizationHook):
    """Store ground truth vs prediction overlays during validation/testing.

    Same switches as mmseg's :class:`SegVisualizationHook`, but every
    *sentence* gets its own picture (named by :func:`sample_name`, so the
    several sentences of one image do not overwrite each other), the image
    is decoded as the RIS pipeline does (OpenCV, EXIF orientation applied,
    RGB) and the picture (drawn by the runner's visualizer, e.g.
    :class:`RISLocalVisualizer`: tinted masks, contours, sentence, IoU) goes
    to all its visual backends (local files, TensorBoard, ...).

    Args:
        draw (bool): Draw at all. Defaults to False.
        interval (int): Draw the samples of every ``interval``-th batch.
            Defaults to 50.
        max_per_batch (int, optional): Samples drawn per selected batch at
            most. Defaults to None (all).
        show (bool): Show in a window instead of storing. Defaults to False.
        wait_time (float): Seconds to show. Defaults to 0.
        backend_args (dict, optional): File backend arguments.
            Defaults to None.
    """

    def __init__(self,
                 draw: bool = False,
                 interval: int = 50,
                 max_per_batch: Optional[int] = None,
                 show: bool = False,
                 wait_time: float = 0.,
                 backend_args: Optional[dict] = None) -> None:
        with warnings.catch_warnings():
            # mmseg warns "The draw is False ..." for the default, silent
            # hook of every config (tools/test.py --show-dir turns it on)
            warnings.filterwarnings('ignore', message='The draw is False')
            super().__init__(
                draw=draw,
                interval=interval,
                show=show,
                wait_time=wait_time,
                backend_args=backend_args)
        if max_per_batch is not None and max_per_batch < 1:
            raise ValueError(f'max_per_batch must be >= 1, got '
                             f'{max_per_batch}')
        self.max_per_batch = max_per_batch

    def _read_image(self, img_path: str) -> np.ndarray:
        from mmris.datasets.transforms.image_size import check_image_pixels
        data = fileio.get(img_path, backend_args=self.backend_args)
        check_image_pixels(data, img_path)  # header first, as LoadRefImage
        buf = np.frombuffer(data, np.uint8)
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if img is None:
            raise OSError(f'Cannot decode image file {img_path}')
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def _after_iter(self,
                    runner: Runner,
                    batch_idx: int,
                    data_batch: dict,
                    outputs: Sequence[SegDataSample],
                    mode: str = 'val') -> None:
        if self.draw is False or mode == 'train':
            return
        if not self.every_n_inner_iters(batch_idx, self.interval):
            return
        samples = list(outputs)
        if self.max_per_batch is not None:
            samples = samples[:self.max_per_batch]
        # In a test run there is no training loop: `runner.iter` would build
        # one (and its dataset), so the test step is the batch index.
        step = batch_idx if mode == 'test' else runner.iter
        for output in samples:
            img = self._read_image(output.img_path)
            self._visualizer.add_datasample(
                sample_name(output, mode),
                img,
                data_sample=output,
                show=self.show,
                wait_time=self.wait_time,
                step=step)
