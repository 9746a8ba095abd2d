# Copyright (c) mmris contributors. All rights reserved.
"""Export a referring segmentor to ONNX with the sentence as an input.

The tokenizer stays outside the graph (as deployable Grounding-DINO-style
exports do): the graph takes the letterboxed image batch and the CLIP token
ids, and returns the mask logits, the foreground probability at the input
resolution and, for gRefCOCO models, the no-target probability. Everything
the runtime needs to prepare the inputs and read the outputs (input size,
letterbox border, text length, thresholds) is written into the model's
metadata, and :mod:`mmris.deployment.ort_inference` runs it with
onnxruntime, numpy and OpenCV only.
"""
import json
import os
import os.path as osp
import shutil
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config
from torch import Tensor

from mmris.version import __version__

#: Version of the metadata layout (``metadata_props['mmris']``).
METADATA_FORMAT = 1
#: Key of the JSON metadata in the ONNX model.
METADATA_KEY = 'mmris'
#: Graph input names.
INPUT_NAMES = ('image', 'text_ids')
#: Graph output names (the last one only for models with a no-target head).
OUTPUT_NAMES = ('mask_logits', 'mask_prob', 'no_target_score')
#: Transforms of the test pipeline that the ONNX runtime reproduces; with
#: any other one the export is refused (the runtime would prepare the
#: inputs differently from ``inference_model``).
_RUNTIME_TRANSFORMS = ('LetterboxAffine', 'CLIPTokenize', 'PackRISInputs')


class RISOnnxModel(nn.Module):
    """What the ONNX graph computes: normalisation, network and the test
    recipe's probability map.

    Inputs:

    - ``image``: float32 (B, 3, S_h, S_w), the letterboxed RGB image on the
      0-255 scale (the data preprocessor's normalisation is in the graph);
    - ``text_ids``: int64 (B, L), CLIP token ids
      (:func:`mmris.datasets.transforms.encode_text`).

    Outputs:

    - ``mask_logits``: (B, 1, h, w) at the head's resolution;
    - ``mask_prob``: (B, 1, S_h, S_w), ``sigmoid`` then upsampling to the
      input size (:meth:`RISEncoderDecoder.probabilities`, the official
      test recipe), before the inverse letterbox warp;
    - ``no_target_score``: (B,) no-target probability (only for a model
      with a ``no_target_head``).

    Args:
        model (nn.Module): A :class:`RISEncoderDecoder` in eval mode with a
            :class:`RISDataPreprocessor`.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        pre = getattr(model, 'data_preprocessor', None)
        if not (hasattr(pre, 'mean') and hasattr(pre, 'std')):
            raise TypeError(
                'ONNX export needs a model whose data_preprocessor '
                'has `mean` and `std` (RISDataPreprocessor), got '
                f'{type(pre).__name__}')
        if not hasattr(model, 'forward_ids'):
            raise TypeError('ONNX export needs a RISEncoderDecoder (with '
                            f'`forward_ids`), got {type(model).__name__}')
        self.model = model
        self.has_no_target = getattr(model, 'no_target_head', None) is not None

    @property
    def output_names(self) -> List[str]:
        return list(OUTPUT_NAMES[:3 if self.has_no_target else 2])

    def forward(self, image: Tensor, text_ids: Tensor):
        pre = self.model.data_preprocessor
        x = (image.float() - pre.mean) / pre.std
        logits, _, nt_logits = self.model.forward_ids(x, text_ids)
        prob = self.model.probabilities(logits, x.shape[-2:])
        if nt_logits is None:
            return logits, prob
        return logits, prob, nt_logits.float().sigmoid()


def runtime_settings(cfg: Config) -> dict:
    """Input size, letterbox border and text length of ``cfg``'s test
    pipeline, exactly as :func:`mmris.apis.inference_model` applies them.

    Args:
        cfg (Config): The model config.

    Returns:
        dict: ``img_size`` ([S_h, S_w]), ``border`` (RGB), ``word_len``
        and ``truncate``.

    Raises:
        ValueError: When the test pipeline has a transform the ONNX runtime
            does not reproduce, or lacks the letterbox / tokenizer.
    """
    from mmris.apis.inference import build_inference_pipeline
    pipeline = build_inference_pipeline(cfg)
    settings = {}
    for t in pipeline.transforms:
        name = type(t).__name__
        if name not in _RUNTIME_TRANSFORMS:
            raise ValueError(
                f'the test pipeline has {name}, which the ONNX runtime does '
                f'not reproduce (it applies {", ".join(_RUNTIME_TRANSFORMS)}'
                ' only)')
        if name == 'LetterboxAffine':
            settings['img_size'] = [int(s) for s in t.size]
            settings['border'] = [float(b) for b in t.border]
        elif name == 'CLIPTokenize':
            if t.key != 'text':
                raise ValueError('the ONNX runtime tokenizes `text`; the '
                                 f'pipeline tokenizes {t.key!r}')
            settings['word_len'] = int(t.context_length)
            settings['truncate'] = bool(t.truncate)
    for key, transform in (('img_size', 'LetterboxAffine'), ('word_len',
                                                             'CLIPTokenize')):
        if key not in settings:
            raise ValueError(f'the test pipeline has no {transform}')
    return settings


def build_metadata(model: nn.Module, wrapper: RISOnnxModel,
                   config_name: Optional[str]) -> dict:
    """The JSON metadata written into the exported model."""
    settings = runtime_settings(model.cfg)
    test_cfg = model.test_cfg
    meta = dict(
        format=METADATA_FORMAT,
        mmris_version=__version__,
        config=config_name,
        inputs=dict(
            image='float32 (B, 3, S_h, S_w) letterboxed RGB, 0-255',
            text_ids='int64 (B, L) CLIP BPE ids'),
        outputs=wrapper.output_names,
        threshold=float(test_cfg['threshold']),
        upsample=test_cfg['upsample'],
        **settings)
    if wrapper.has_no_target:
        meta['no_target_threshold'] = float(model.no_target_head.threshold)
    return meta


def example_inputs(settings: dict,
                   texts: Sequence[str],
                   seed: int = 0) -> Dict[str, np.ndarray]:
    """A batch of random letterboxed images and tokenized ``texts``."""
    from mmris.datasets.transforms import encode_text
    rng = np.random.default_rng(seed)
    s_h, s_w = settings['img_size']
    image = rng.uniform(0, 255, (len(texts), 3, s_h, s_w)).astype(np.float32)
    ids = np.stack([
        encode_text(t, settings['word_len'], settings['truncate'])
        for t in texts
    ])
    return dict(image=image, text_ids=ids)


def export_onnx(model: nn.Module,
                out_file: str,
                opset_version: Optional[int] = None,
                optimize: bool = True,
                config_name: Optional[str] = None,
                copy_vocab: bool = True,
                verbose: bool = False) -> dict:
    """Export ``model`` (from :func:`mmris.apis.init_model`) to ONNX.

    The batch size is dynamic; the image size and text length are those of
    the config's test pipeline (the graph is traced with them), recorded in
    the metadata (``metadata_props['mmris']``, JSON) with the mask and
    no-target thresholds.

    Args:
        model (nn.Module): A :class:`RISEncoderDecoder` with ``cfg``, on the
            CPU.
        out_file (str): The ``.onnx`` file to write (weights over 2 GB go to
            an external data file beside it).
        opset_version (int, optional): ONNX opset. Defaults to None
            (the exporter's default).
        optimize (bool): Let the exporter optimise the graph. Defaults to
            True.
        config_name (str, optional): Recorded in the metadata. Defaults to
            None.
        copy_vocab (bool): Copy the CLIP BPE vocabulary next to
            ``out_file`` (what :mod:`.ort_inference` reads by default), so
            the folder is all a deployment needs. Defaults to True.
        verbose (bool): Print the exporter's progress. Defaults to False.

    Returns:
        dict: The metadata written.
    """
    if getattr(model, 'cfg', None) is None:
        raise AttributeError('model has no `cfg`: build it with init_model')
    wrapper = RISOnnxModel(model).eval()
    meta = build_metadata(model, wrapper, config_name)
    inputs = example_inputs(
        meta, ['the man on the left', 'a red car behind the tree'])
    args = tuple(torch.from_numpy(inputs[k]) for k in INPUT_NAMES)
    batch = torch.export.Dim('batch', min=1, max=4096)
    out_dir = osp.dirname(osp.abspath(out_file))
    os.makedirs(out_dir, exist_ok=True)
    with torch.no_grad():
        program = torch.onnx.export(
            wrapper,
            args,
            dynamo=True,
            input_names=list(INPUT_NAMES),
            output_names=wrapper.output_names,
            dynamic_shapes={
                'image': {
                    0: batch
                },
                'text_ids': {
                    0: batch
                }
            },
            opset_version=opset_version,
            optimize=optimize,
            verbose=verbose)
    meta['opset'] = int(program.model.opset_imports.get('', 0))
    program.model.metadata_props[METADATA_KEY] = json.dumps(meta)
    program.save(out_file)
    if copy_vocab:
        from mmris.datasets.transforms.clip_bpe import (BPE_VOCAB_NAME,
                                                        default_bpe_path)
        dst = osp.join(out_dir, BPE_VOCAB_NAME)
        if not osp.exists(dst):
            shutil.copyfile(default_bpe_path(), dst)
    return meta


def quantize_int8(onnx_file: str, out_file: str) -> dict:
    """Dynamic int8 quantization of an exported model's matrix products.

    The weights of every ``MatMul`` / ``Gemm`` become int8 (signed, per
    tensor) and their inputs are quantized on the fly
    (``onnxruntime.quantization.quantize_dynamic``); everything else stays
    fp32. On the CPU this is the fast path of onnxruntime's int8 kernels; it
    changes the outputs (see the README's deployment section for the
    accuracy on the quick-start model).

    Args:
        onnx_file (str): A model written by :func:`export_onnx`.
        out_file (str): The quantized model to write.

    Returns:
        dict: The metadata, with ``quantization`` added.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    meta = None
    for prop in onnx.load(onnx_file, load_external_data=False).metadata_props:
        if prop.key == METADATA_KEY:
            meta = json.loads(prop.value)
    if meta is None:
        raise ValueError(f'{onnx_file} has no mmris metadata: export it with '
                         'export_onnx first')
    quantize_dynamic(
        onnx_file,
        out_file,
        op_types_to_quantize=['MatMul', 'Gemm'],
        weight_type=QuantType.QInt8,
        use_external_data_format=osp.getsize(onnx_file) > 2**31 - 2**26)
    meta['quantization'] = 'int8 dynamic (MatMul, Gemm weights)'
    model = onnx.load(out_file)
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=METADATA_KEY, value=json.dumps(meta))
    onnx.save(model, out_file)
    return meta


def torch_outputs(model: nn.Module,
                  inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """The eager PyTorch values of the exported graph's outputs."""
    wrapper = RISOnnxModel(model).eval()
    with torch.no_grad():
        outs = wrapper(*(torch.from_numpy(inputs[k]) for k in INPUT_NAMES))
    return {
        name: out.float().cpu().numpy()
        for name, out in zip(wrapper.output_names, outs)
    }


def max_relative_error(reference: Union[np.ndarray, Tensor],
                       value: Union[np.ndarray, Tensor]) -> float:
    """``max |value - reference| / max |reference|``."""
    reference = np.asarray(reference, dtype=np.float64)
    value = np.asarray(value, dtype=np.float64)
    if reference.shape != value.shape:
        raise ValueError(f'shapes differ: {reference.shape} vs {value.shape}')
    scale = max(float(np.abs(reference).max(initial=0.0)), 1e-12)
    return float(np.abs(value - reference).max(initial=0.0)) / scale
