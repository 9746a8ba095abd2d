# Copyright (c) mmris contributors. All rights reserved.
"""Run an exported mmris model with onnxruntime, without torch.

This module imports numpy, OpenCV and onnxruntime only, and nothing of
mmris at module level: ``tools/deployment/onnx_demo.py`` loads it by file
path in an environment without torch. The two pieces of mmris it needs are
torch-free files it loads by path too: the letterbox geometry
(``datasets/transforms/letterbox_geometry.py``) and the CLIP BPE tokenizer
(``datasets/transforms/clip_bpe.py``), the very files the PyTorch pipeline
uses. The steps are those of :func:`mmris.apis.inference_model`: OpenCV
decoding (EXIF orientation applied), letterbox, tokenization, the graph
(normalisation, network, sigmoid, upsampling), an empty mask for a
no-target decision, the inverse letterbox warp (cubic, border 0), clipping
to [0, 1] and the threshold.
"""
import importlib.util
import json
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence, Union

import cv2
import numpy as np

_PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_module_from_file(name: str, path: str):
    """Import the Python file ``path`` as module ``name`` (cached in
    ``sys.modules``) without importing the package it lies in."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f'cannot load {path}')
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _transforms_module(name: str):
    return load_module_from_file(
        f'_mmris_torch_free_{name}',
        osp.join(_PACKAGE_DIR, 'datasets', 'transforms', f'{name}.py'))


clip_bpe = _transforms_module('clip_bpe')
letterbox_geometry = _transforms_module('letterbox_geometry')

#: Metadata key written by :func:`mmris.deployment.export_onnx`.
METADATA_KEY = 'mmris'
#: Metadata layouts this runtime reads.
SUPPORTED_FORMATS = (1, )


def read_image(path: str) -> np.ndarray:
    """Decode an image file as ``inference_model`` does (OpenCV
    ``IMREAD_COLOR``, EXIF orientation applied, 16-bit to 8-bit), RGB.

    Raises:
        FileNotFoundError / OSError: Naming the file.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Image file not found: {path}')
    buf = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    if img is None:
        raise OSError(f'Cannot decode image file {path} (corrupt or '
                      'unsupported format)')
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


class ORTReferringSegmenter:
    """An exported referring segmentor on onnxruntime.

    Build it with :meth:`from_file`; the constructor takes any object with
    onnxruntime's ``InferenceSession`` interface (``run``,
    ``get_outputs``, ``get_modelmeta``).

    Args:
        session: The onnxruntime session of an exported model.
        bpe_path (str, optional): CLIP BPE vocabulary. Defaults to None:
            the one of an installed ``open_clip``.
        name (str): How errors name the model. Defaults to 'the model'.
    """

    def __init__(self,
                 session,
                 bpe_path: Optional[str] = None,
                 name: str = 'the model'):
        self.session = session
        custom = session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in custom:
            raise ValueError(f'{name} has no mmris metadata '
                             f'({METADATA_KEY!r}): export it with '
                             'tools/deployment/pytorch2onnx.py')
        self.meta = json.loads(custom[METADATA_KEY])
        if self.meta.get('format') not in SUPPORTED_FORMATS:
            raise ValueError(f'{name}: metadata format '
                             f'{self.meta.get("format")!r} is not one of '
                             f'{SUPPORTED_FORMATS}')
        self.output_names = [o.name for o in session.get_outputs()]
        self.tokenizer = clip_bpe.get_tokenizer(bpe_path)
        self.bpe_path = self.tokenizer.bpe_path

    @classmethod
    def from_file(
        cls,
        model_file: str,
        bpe_path: Optional[str] = None,
        num_threads: Optional[int] = None,
        providers: Sequence[str] = ('CPUExecutionProvider', )
    ) -> 'ORTReferringSegmenter':
        """Open an exported model.

        Args:
            model_file (str): The ``.onnx`` file of
                ``tools/deployment/pytorch2onnx.py``.
            bpe_path (str, optional): CLIP BPE vocabulary. Defaults to
                None: the copy next to ``model_file`` (written by the
                export), else the one of an installed ``open_clip``.
            num_threads (int, optional): onnxruntime intra-op threads.
                Defaults to None (onnxruntime's choice).
            providers (Sequence[str]): Execution providers. Defaults to
                ``('CPUExecutionProvider', )``.
        """
        import onnxruntime as ort
        if not osp.isfile(model_file):
            raise FileNotFoundError(f'ONNX model not found: {model_file}')
        options = ort.SessionOptions()
        if num_threads is not None:
            options.intra_op_num_threads = int(num_threads)
            options.inter_op_num_threads = 1
        session = ort.InferenceSession(
            model_file, sess_options=options, providers=list(providers))
        if bpe_path is None:
            beside = osp.join(
                osp.dirname(osp.abspath(model_file)), clip_bpe.BPE_VOCAB_NAME)
            bpe_path = beside if osp.isfile(beside) else None
        return cls(session, bpe_path, name=model_file)

    @property
    def has_no_target(self) -> bool:
        return 'no_target_score' in self.output_names

    def preprocess(self, image: np.ndarray):
        """Letterbox an RGB uint8 (h, w, 3) image.

        Returns:
            tuple: float32 (3, S_h, S_w) graph input and the inverse affine.
        """
        if (not isinstance(image, np.ndarray) or image.ndim != 3
                or image.shape[2] != 3 or image.dtype != np.uint8):
            raise ValueError('image must be an RGB uint8 (h, w, 3) array, got '
                             f'{getattr(image, "shape", type(image))} '
                             f'{getattr(image, "dtype", "")}')
        warped, _, inv_affine = letterbox_geometry.letterbox_image(
            image, tuple(self.meta['img_size']), self.meta['border'])
        return warped.transpose(2, 0, 1).astype(np.float32), inv_affine

    def tokenize(self, texts: Sequence[str]) -> np.ndarray:
        """int64 (N, L) ids, as ``CLIPTokenize`` of the config."""
        return np.stack([
            clip_bpe.encode_text(t, self.meta['word_len'],
                                 self.meta['truncate'], self.bpe_path)
            for t in texts
        ])

    def run(self, image: np.ndarray,
            text_ids: np.ndarray) -> Dict[str, np.ndarray]:
        """The graph on a batch: ``image`` float32 (B, 3, S_h, S_w),
        ``text_ids`` int64 (B, L); returns the outputs by name."""
        outs = self.session.run(None, dict(image=image, text_ids=text_ids))
        return dict(zip(self.output_names, outs))

    def __call__(self,
                 image: np.ndarray,
                 texts: Union[str, Sequence[str]],
                 threshold: Optional[float] = None,
                 batch_size: int = 8) -> List[dict]:
        """Segment what each sentence refers to in one RGB uint8 image.

        Args:
            image (np.ndarray): RGB uint8 (h, w, 3) (see :func:`read_image`).
            texts (str | Sequence[str]): One or several non-empty sentences.
            threshold (float, optional): Mask threshold. Defaults to None:
                the model's (``test_cfg.threshold``, 0.35).
            batch_size (int): Sentences per run. Defaults to 8.

        Returns:
            list[dict]: One per sentence: ``mask`` (uint8 {0, 1}, (h, w)),
            ``prob`` (float32 (h, w) in [0, 1]), ``no_target`` (bool) and
            ``no_target_score`` (float, NaN without a no-target head).
        """
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            raise ValueError('texts is empty: give at least one sentence')
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f'texts[{i}] must be a non-empty sentence, '
                                 f'got {text!r}')
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        thr = self.meta['threshold'] if threshold is None else float(threshold)
        if not 0.0 <= thr <= 1.0:
            raise ValueError(f'threshold must be in [0, 1], got {thr}')
        h, w = image.shape[:2]
        pixels, inv_affine = self.preprocess(image)
        ids = self.tokenize(texts)
        results = []
        for start in range(0, len(texts), batch_size):
            chunk = ids[start:start + batch_size]
            batch = np.repeat(pixels[None], len(chunk), axis=0)
            outs = self.run(batch, chunk)
            scores = outs.get('no_target_score')
            for j, prob in enumerate(outs['mask_prob'][:, 0]):
                results.append(
                    self.postprocess(
                        prob, None if scores is None else float(scores[j]),
                        inv_affine, (h, w), thr))
        return results

    def postprocess(self, prob: np.ndarray, no_target_score: Optional[float],
                    inv_affine: np.ndarray, ori_shape: Sequence[int],
                    threshold: float) -> dict:
        """One ``mask_prob`` map (S_h, S_w) back to its original image:
        emptied for a no-target decision, inverse letterbox warp (cubic,
        border 0), clipped to [0, 1] and thresholded (as
        ``RISEncoderDecoder.predict`` with ``postprocess='cv2'``).

        Returns:
            dict: ``mask``, ``prob``, ``no_target``, ``no_target_score``
            (see :meth:`__call__`).
        """
        h, w = int(ori_shape[0]), int(ori_shape[1])
        no_target = (
            no_target_score is not None
            and no_target_score > self.meta['no_target_threshold'])
        if no_target:
            prob = np.zeros_like(prob)
        prob = np.clip(
            cv2.warpAffine(
                prob,
                np.asarray(inv_affine, np.float64), (w, h),
                flags=cv2.INTER_CUBIC,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0), 0, 1)
        return dict(
            mask=(prob > threshold).astype(np.uint8),
            prob=prob,
            no_target=bool(no_target),
            no_target_score=(float('nan') if no_target_score is None else
                             float(no_target_score)))
