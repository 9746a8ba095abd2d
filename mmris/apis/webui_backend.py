# Copyright (c) mmris contributors. All rights reserved.
"""The logic of the web demo (``tools/webui.py``), without Gradio.

:class:`WebUIBackend` builds the model once, segments one image for one or
several sentences (batched as :func:`mmris.apis.inference_model` does),
re-thresholds the kept probability maps without running the model again,
draws the overlays as ``tools/demo.py`` does and writes the downloads (one
mask PNG per sentence and a ``results.json``). Every input problem raises a
:class:`WebUIInputError` whose text is meant for the page.
"""
import html
import json
import os
import os.path as osp
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch.nn as nn

from ..datasets.transforms.image_size import (ImageTooLargeError,
                                              max_image_pixels,
                                              read_image_size)
from ..visualization.overlay import DEFAULT_ALPHA, PRED_COLOR, render_overlay
from .inference import init_model, load_image
from .ris_inferencer import RISInferencer

#: Largest image side the page accepts (pixels); a larger upload is refused
#: with a message instead of being letterboxed from a huge array.
DEFAULT_MAX_SIDE = 4096
#: Most sentences of one request.
DEFAULT_MAX_SENTENCES = 16
#: Longest sentence, in characters. The models read only the first
#: ``word_len`` (17-22) tokens of a sentence, about 70-90 characters; the
#: cap bounds the tokenizer's work per request (it runs before truncation).
DEFAULT_MAX_SENTENCE_CHARS = 250


def escape_markdown(text: str) -> str:
    """``text`` shown literally by a Markdown renderer: HTML special
    characters become entities and Markdown punctuation is backslash
    escaped, so ``<img src=x onerror=...>`` or ``[x](javascript:...)`` in a
    sentence or a file name is displayed as typed, never interpreted."""
    text = html.escape(str(text), quote=True)
    text = re.sub(r'([\\`*_{}\[\]()#+\-.!|~>:])', r'\\\1', text)
    return text.replace('\n', ' ')


def public_message(message: str, path: Optional[str]) -> str:
    """``message`` with the server's path of an upload replaced by the
    uploaded file's name (Gradio keeps uploads under a temporary folder
    whose name the page must not show)."""
    if not path:
        return message
    path = str(path)
    name = osp.basename(path)
    for form in {path, osp.abspath(path), osp.realpath(path)}:
        message = message.replace(form, name)
    return message


class WebUIInputError(ValueError):
    """A bad request (image, sentences, threshold); the text is shown in
    the page."""


@dataclass
class Segmentation:
    """What the model said about one image: kept so that a new threshold
    needs no new forward pass.

    Attributes:
        image (np.ndarray): The RGB uint8 (h, w, 3) input.
        sentences (list[str]): One per result.
        probs (list[np.ndarray]): Foreground probability maps, float32
            (h, w), at the input resolution.
        no_target (list[bool]): gRefCOCO models' "no such object" answer
            (always False for the other models).
        no_target_scores (list[float | None]): Its probability (None when
            the model has no no-target head).
        seconds (float): Wall time of the forward passes.
    """
    image: np.ndarray
    sentences: List[str]
    probs: List[np.ndarray]
    no_target: List[bool]
    no_target_scores: List[Optional[float]]
    seconds: float = 0.


@dataclass
class Rendering:
    """A :class:`Segmentation` thresholded and drawn.

    Attributes:
        overlays (list[tuple[np.ndarray, str]]): Per sentence the overlay
            (:func:`mmris.visualization.render_overlay`: the sentence and
            the answer on its caption strip) and a short gallery caption.
        prob_maps (list[tuple[np.ndarray, str]]): Per sentence the
            probability map as an RGB colour map and its caption.
        masks (list[np.ndarray]): Binary uint8 {0, 1} masks (h, w).
        records (list[dict]): Per sentence the JSON record.
        threshold (float): The threshold used.
    """
    overlays: List[Tuple[np.ndarray, str]] = field(default_factory=list)
    prob_maps: List[Tuple[np.ndarray, str]] = field(default_factory=list)
    masks: List[np.ndarray] = field(default_factory=list)
    records: List[dict] = field(default_factory=list)
    threshold: float = 0.35


def parse_sentences(text: Optional[str],
                    max_sentences: int = DEFAULT_MAX_SENTENCES,
                    max_chars: int = DEFAULT_MAX_SENTENCE_CHARS) -> List[str]:
    """Sentences of a text box, one per line (blank lines skipped).

    Raises:
        WebUIInputError: When there is no sentence, more than
            ``max_sentences``, or one longer than ``max_chars`` characters
            (a text longer than all of them together is refused before it
            is split).
    """
    if text is None or not isinstance(text, str):
        text = ''
    if len(text) > max_sentences * (max_chars + 2) + 1000:
        raise WebUIInputError(
            f'The text has {len(text):,} characters: the page takes at most '
            f'{max_sentences} sentences of at most {max_chars} characters '
            'each.')
    sentences = [line.strip() for line in text.splitlines()]
    sentences = [s for s in sentences if s]
    if not sentences:
        raise WebUIInputError(
            'No sentence: type at least one referring expression (one per '
            'line), e.g. "the red circle".')
    if len(sentences) > max_sentences:
        raise WebUIInputError(
            f'{len(sentences)} sentences: the page takes at most '
            f'{max_sentences} per request (--max-sentences).')
    for i, sentence in enumerate(sentences):
        if len(sentence) > max_chars:
            raise WebUIInputError(
                f'Sentence {i + 1} has {len(sentence):,} characters: the page '
                f'takes sentences of at most {max_chars} characters '
                '(--max-sentence-chars; the model reads only the first few '
                'words).')
    return sentences


def read_image(image: Union[None, str, Path, np.ndarray],
               max_side: int = DEFAULT_MAX_SIDE,
               max_pixels: Optional[int] = None,
               name: Optional[str] = None) -> np.ndarray:
    """Decode an uploaded image (path or RGB array) like
    :func:`mmris.apis.load_image`, its size checked first.

    A file's size is read from its header and checked against ``max_side``
    and ``max_pixels`` before anything is decoded. Messages name the file
    by ``name`` (the uploaded file's own name; default: the path's base
    name), never by the server's path.

    Raises:
        WebUIInputError: For no image, an unreadable file (naming it) or
            one over ``max_side`` / ``max_pixels``.
    """
    if image is None:
        raise WebUIInputError('No image: upload or paste an image first.')
    path = str(image) if isinstance(image, (str, Path)) else None
    name = name or (osp.basename(path) if path else 'the image')
    limit = max_image_pixels(max_pixels)

    def public(message: str) -> str:
        message = public_message(message, path)
        return message.replace(osp.basename(path), name) if path else message

    def too_large(w: int, h: int) -> WebUIInputError:
        return WebUIInputError(
            f'{name} is {w}x{h} pixels: the page accepts images up to '
            f'{max_side} pixels on the longer side (--max-side) and '
            f'{limit:,} pixels in all (--max-pixels). Resize it and upload '
            'it again.')

    try:
        if path is not None:
            # the size from the header, before anything is decoded
            with open(path, 'rb') as f:
                w, h = read_image_size(f.read(), name)
            if max(w, h) > max_side or w * h > limit:
                raise too_large(w, h)
        img = load_image(image, max_pixels=limit)['img']
    except WebUIInputError:
        raise
    except ImageTooLargeError as err:
        raise WebUIInputError(public(str(err))) from None
    except Exception as err:  # decoding errors of any kind
        raise WebUIInputError(
            f'Cannot read {name}: {public(str(err))}. Upload a JPEG, PNG, '
            'BMP, TIFF or WebP image.') from None
    h, w = img.shape[:2]
    if max(h, w) > max_side or w * h > limit:
        raise too_large(w, h)
    return img


def _colour_prob(prob: np.ndarray) -> np.ndarray:
    """Probability map (h, w) in [0, 1] as an RGB uint8 colour map."""
    u8 = np.clip(np.round(prob * 255), 0, 255).astype(np.uint8)
    return cv2.cvtColor(
        cv2.applyColorMap(u8, cv2.COLORMAP_VIRIDIS), cv2.COLOR_BGR2RGB)


class WebUIBackend:
    """Model + request handling of the web demo.

    Args:
        model (nn.Module): From :func:`mmris.apis.init_model`.
        config_name (str): Config shown in the page.
        checkpoint (str, optional): Checkpoint path shown in the page; None
            means random weights (the page says so).
        batch_size (int): Sentences per forward pass. Defaults to 8.
        max_side (int): Largest accepted image side. Defaults to
            :data:`DEFAULT_MAX_SIDE`.
        max_sentences (int): Most sentences per request. Defaults to
            :data:`DEFAULT_MAX_SENTENCES`.
        max_sentence_chars (int): Longest sentence in characters. Defaults
            to :data:`DEFAULT_MAX_SENTENCE_CHARS`.
        max_pixels (int, optional): Largest image in pixels (read from the
            header before decoding). Defaults to None: see
            :func:`mmris.datasets.transforms.max_image_pixels`.
    """

    def __init__(self,
                 model: nn.Module,
                 config_name: str,
                 checkpoint: Optional[str] = None,
                 batch_size: int = 8,
                 max_side: int = DEFAULT_MAX_SIDE,
                 max_sentences: int = DEFAULT_MAX_SENTENCES,
                 max_sentence_chars: int = DEFAULT_MAX_SENTENCE_CHARS,
                 max_pixels: Optional[int] = None) -> None:
        self.model = model
        self.config_name = config_name
        self.checkpoint = checkpoint
        self.batch_size = batch_size
        self.max_side = max_side
        self.max_sentences = max_sentences
        self.max_sentence_chars = max_sentence_chars
        self.max_pixels = max_image_pixels(max_pixels)
        self.inferencer = RISInferencer(model, max_pixels=self.max_pixels)

    @classmethod
    def build(cls,
              config: str,
              checkpoint: Optional[str] = None,
              device: str = 'cpu',
              cfg_options: Optional[dict] = None,
              **kwargs) -> 'WebUIBackend':
        """Build the model once (:func:`mmris.apis.init_model`).

        Args:
            config (str): Config file.
            checkpoint (str, optional): Checkpoint file; None or 'none'
                gives random weights.
            device (str): e.g. 'cpu', 'cuda:0'. Defaults to 'cpu'.
            cfg_options (dict, optional): Config overrides.
            **kwargs: Passed to the constructor.

        Raises:
            FileNotFoundError: When ``checkpoint`` is not a file (a
                directory is named as one, with the checkpoint it offers).
        """
        if checkpoint is not None and str(checkpoint).lower() == 'none':
            checkpoint = None
        if checkpoint is not None and not osp.isfile(checkpoint):
            if osp.isdir(checkpoint):
                from mmris.utils.tool_env import newest_checkpoint
                offer = newest_checkpoint(checkpoint)
                hint = (f'did you mean {offer}?'
                        if offer else 'it holds no *.pth checkpoint')
                raise FileNotFoundError(
                    f'webui: checkpoint {checkpoint} is a directory, not a '
                    f'checkpoint file: {hint}')
            raise FileNotFoundError(
                f'webui: checkpoint file not found: {checkpoint}')
        model = init_model(
            config, checkpoint, device=device, cfg_options=cfg_options)
        return cls(model, str(config), checkpoint, **kwargs)

    @property
    def default_threshold(self) -> float:
        """The model's ``test_cfg.threshold`` (0.35 when unset)."""
        test_cfg = getattr(self.model, 'test_cfg', None) or {}
        return float(test_cfg.get('threshold', 0.35))

    def describe(self) -> str:
        """Markdown lines: the config, which weights run (random weights
        said loudly) and the config's ``model_note``."""
        lines = [f'**Model:** `{self.config_name}`']
        if self.checkpoint is None:
            lines.append('**Random weights** (no `--checkpoint` given): the '
                         'masks mean nothing.')
        else:
            lines.append(f'**Weights:** `{self.checkpoint}`')
        cfg = getattr(self.model, 'cfg', None)
        note = cfg.get('model_note') if cfg is not None else None
        if note:
            lines.append(f'**Note:** {note}')
        return '  \n'.join(lines)

    def segment(self,
                image: Union[None, str, Path, np.ndarray],
                text: Optional[str],
                name: Optional[str] = None) -> Segmentation:
        """Run the model once for every sentence of ``text`` (one per
        line) on ``image``.

        Args:
            image (str | Path | np.ndarray | None): The upload.
            text (str | None): The sentences, one per line.
            name (str, optional): The uploaded file's own name, for the
                messages. Defaults to None: the path's base name.

        Raises:
            WebUIInputError: For a bad image or text.
        """
        sentences = parse_sentences(text, self.max_sentences,
                                    self.max_sentence_chars)
        img = read_image(image, self.max_side, self.max_pixels, name)
        start = time.perf_counter()
        results = self.inferencer(
            img, sentences, batch_size=self.batch_size)['predictions']
        seconds = time.perf_counter() - start
        probs = [r['prob'].astype(np.float32) for r in results]
        no_target = [r['no_target'] for r in results]
        scores = [r['no_target_score'] for r in results]
        return Segmentation(img, sentences, probs, no_target, scores, seconds)

    def render(self,
               seg: Segmentation,
               threshold: Optional[float] = None,
               alpha: float = DEFAULT_ALPHA) -> Rendering:
        """Threshold the kept probability maps and draw them (no forward
        pass) as ``tools/demo.py`` and ``--show-dir`` draw them
        (:func:`mmris.visualization.render_overlay`: scaled up to a 320 px
        shorter side, light tint, outline, the sentence and the mask area
        on a caption strip). A "no target" answer gives an empty mask at
        any threshold.

        Raises:
            WebUIInputError: For a threshold outside [0, 1].
        """
        if threshold is None:
            threshold = self.default_threshold
        threshold = float(threshold)
        if not 0. <= threshold <= 1.:
            raise WebUIInputError(
                f'threshold must be in [0, 1], got {threshold}')
        out = Rendering(threshold=threshold)
        for i, (sentence, prob, no_target, score) in enumerate(
                zip(seg.sentences, seg.probs, seg.no_target,
                    seg.no_target_scores)):
            mask = np.zeros(prob.shape, np.uint8) if no_target else \
                (prob > threshold).astype(np.uint8)
            area = 100. * float(mask.mean())
            if no_target:
                answer = 'no target'
                if score is not None:
                    answer += f' (p={score:.2f})'
            else:
                answer = f'mask {area:.1f}% of the image'
            # the sentence and the answer are drawn in the caption strip;
            # the gallery's own caption (one line, truncated when long)
            # only numbers the picture and repeats the answer
            overlay = render_overlay(seg.image, mask,
                                     f'{sentence} -> {answer}', PRED_COLOR,
                                     alpha)
            out.overlays.append((overlay, f'#{i}: {answer}'))
            out.prob_maps.append((_colour_prob(prob),
                                  f'#{i}: max prob {float(prob.max()):.3f}'))
            out.masks.append(mask)
            out.records.append(
                dict(
                    sentence=sentence,
                    mask_file=f'mask_{i}.png',
                    mask_area_percent=round(area, 3),
                    mask_pixels=int(mask.sum()),
                    max_prob=round(float(prob.max()), 5),
                    no_target=no_target,
                    no_target_score=score))
        return out

    def summary(self, seg: Segmentation, rendering: Rendering) -> dict:
        """The ``results.json`` content."""
        h, w = seg.image.shape[:2]
        return dict(
            config=self.config_name,
            checkpoint=self.checkpoint,
            threshold=rendering.threshold,
            image_size=dict(height=h, width=w),
            seconds=round(seg.seconds, 4),
            results=rendering.records)

    def export(self, seg: Segmentation, rendering: Rendering,
               out_dir: str) -> List[str]:
        """Write ``mask_<i>.png`` (0 / 255) per sentence and
        ``results.json`` into ``out_dir``; return their paths."""
        os.makedirs(out_dir, exist_ok=True)
        paths = []
        for record, mask in zip(rendering.records, rendering.masks):
            path = osp.join(out_dir, record['mask_file'])
            cv2.imwrite(path, mask * 255)
            paths.append(path)
        path = osp.join(out_dir, 'results.json')
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(self.summary(seg, rendering), f, indent=2)
        paths.append(path)
        return paths

    def timing_text(self, seg: Segmentation) -> str:
        """e.g. '2 sentences in 0.41 s (0.21 s per sentence)'."""
        n = len(seg.sentences)
        return (f'{n} sentence{"s" if n != 1 else ""} in {seg.seconds:.2f} s '
                f'({seg.seconds / max(n, 1):.2f} s per sentence)')


def example_inputs(root: str, cache_dir: str) -> List[List[str]]:
    """Preloaded examples ``[image path, sentences]``: the repository's
    synthetic ``demo/demo.jpg`` (a picture of
    ``tools/dataset_converters/make_synthetic_refer.py``) and, when
    scikit-image is installed, a few of its sample photos (written to
    ``cache_dir``)."""
    examples = []
    demo = osp.join(root, 'demo', 'demo.jpg')
    if osp.isfile(demo):
        examples.append([demo, 'the red circle\nthe big green square'])
    try:
        from skimage import data as skdata
    except ImportError:
        return examples
    photos: Sequence[Tuple[str, str]] = (
        ('astronaut', 'the woman\nthe flag'),
        ('coffee', 'the cup of coffee\nthe spoon'),
        ('chelsea', 'the cat'),
    )
    os.makedirs(cache_dir, exist_ok=True)
    for name, text in photos:
        try:
            img = getattr(skdata, name)()
        except Exception:  # a sample that needs a download: skip it
            continue
        path = osp.join(cache_dir, f'{name}.png')
        cv2.imwrite(path, cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        examples.append([path, text])
    return examples
