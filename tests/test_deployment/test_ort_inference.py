# Copyright (c) mmris contributors. All rights reserved.
"""The torch-free runtime of exported models (pre-processing, tokenizer,
post-processing) against ``inference_model``, with the graph stood in by the
PyTorch module it is exported from (no export: fast)."""
import json
import os.path as osp
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mmris.apis import inference_model, init_model
from mmris.deployment import RISOnnxModel
from mmris.deployment.onnx_export import build_metadata
from mmris.deployment.ort_inference import ORTReferringSegmenter

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
GREF = osp.join(ROOT, 'configs', 'quickstart', 'etris-tiny_grefcoco.py')
ETRIS = osp.join(ROOT, 'configs', 'quickstart', 'etris-tiny_synthetic.py')


class TorchSession:
    """onnxruntime's ``InferenceSession`` interface over the module that
    :func:`export_onnx` exports."""

    def __init__(self, model, meta=None):
        self.wrapper = RISOnnxModel(model).eval()
        self.meta = meta or build_metadata(model, self.wrapper, 'test.py')
        self.feeds = []

    def get_modelmeta(self):
        return SimpleNamespace(
            custom_metadata_map={'mmris': json.dumps(self.meta)})

    def get_outputs(self):
        return [SimpleNamespace(name=n) for n in self.wrapper.output_names]

    def run(self, names, feeds):
        assert names is None and set(feeds) == {'image', 'text_ids'}
        self.feeds.append(feeds)
        with torch.no_grad():
            outs = self.wrapper(
                torch.from_numpy(feeds['image']),
                torch.from_numpy(feeds['text_ids']))
        return [o.numpy() for o in outs]


@pytest.mark.parametrize('config', [ETRIS, GREF])
def test_runtime_equals_inference_model(config):
    torch.manual_seed(0)
    model = init_model(config)
    # a non-square image, so the letterbox and its inverse matter
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (70, 123, 3), dtype=np.uint8)
    sentences = [
        'the red circle', 'the big green square on the left',
        'two!! things ' * 6
    ]
    expected = inference_model(model, image, sentences, batch_size=2)
    prob0 = expected[0].seg_logits.data[0].numpy()
    thr = float(np.quantile(prob0, 0.5)) + 1e-4  # about half the image
    expected = inference_model(
        model, image, sentences, batch_size=2, threshold=thr)
    session = TorchSession(model)
    runner = ORTReferringSegmenter(session)
    got = runner(image, sentences, threshold=thr, batch_size=2)
    assert [f['image'].shape[0] for f in session.feeds] == [2, 1]
    assert session.feeds[0]['image'].dtype == np.float32
    assert session.feeds[0]['text_ids'].dtype == np.int64
    for exp, res in zip(expected, got):
        np.testing.assert_array_equal(res['mask'],
                                      exp.pred_sem_seg.data[0].numpy())
        np.testing.assert_array_equal(res['prob'],
                                      exp.seg_logits.data[0].numpy())
        assert res['mask'].shape == image.shape[:2]
        assert res['no_target'] == bool(
            exp.metainfo.get('pred_no_target', False))
        if 'no_target_score' in exp.metainfo:
            assert res['no_target_score'] == pytest.approx(
                exp.metainfo['no_target_score'], abs=1e-7)
        else:
            assert np.isnan(res['no_target_score'])
    assert 0 < got[0]['mask'].sum(
    ) < got[0]['mask'].size or got[0]['no_target']


def test_no_target_empties_the_mask():
    torch.manual_seed(0)
    model = init_model(GREF)
    session = TorchSession(model)
    image = np.full((40, 50, 3), 200, np.uint8)
    for nt_thr, empty in ((0.0, True), (1.0, False)):
        session.meta['no_target_threshold'] = nt_thr
        res = ORTReferringSegmenter(session)(image, 'a cat', threshold=0.0)
        assert res[0]['no_target'] is empty
        assert bool(res[0]['mask'].sum() == 0) is empty


def test_bad_inputs_are_named():
    model = init_model(ETRIS)
    session = TorchSession(model)
    runner = ORTReferringSegmenter(session)
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match='texts is empty'):
        runner(image, [])
    with pytest.raises(ValueError, match=r'texts\[1\]'):
        runner(image, ['ok', '  '])
    with pytest.raises(ValueError, match='threshold'):
        runner(image, 'ok', threshold=1.5)
    with pytest.raises(ValueError, match='uint8'):
        runner(image.astype(np.float32), 'ok')
    session.meta = {}
    with pytest.raises(ValueError, match='no mmris metadata'):
        ORTReferringSegmenter(
            SimpleNamespace(
                get_modelmeta=lambda: SimpleNamespace(custom_metadata_map={}),
                get_outputs=lambda: []),
            name='x.onnx')
    meta = dict(TorchSession(model).meta, format=99)
    with pytest.raises(ValueError, match='metadata format 99'):
        ORTReferringSegmenter(TorchSession(model, meta))


def test_runtime_module_imports_without_torch():
    """The runtime file, loaded by path with ``import torch`` failing,
    imports no torch and no mmris package (only its torch-free files)."""
    import mmris.deployment.ort_inference as mod
    code = (
        'import sys, importlib.util\n'
        "sys.modules['torch'] = None\n"
        "spec = importlib.util.spec_from_file_location('rt', sys.argv[1])\n"
        'rt = importlib.util.module_from_spec(spec)\n'
        'spec.loader.exec_module(rt)\n'
        "ids = rt.clip_bpe.encode_text('the man on the left', 8)\n"
        'img, inv = rt.letterbox_geometry.letterbox_image(\n'
        "    __import__('numpy').zeros((10, 20, 3), 'uint8'), 16)[::2]\n"
        'print(ids.tolist(), img.shape)\n'
        "heavy = [m for m in sys.modules if m.split('.')[0] in\n"
        "         ('mmris', 'mmseg', 'mmengine', 'mmcv', 'open_clip')]\n"
        'assert not heavy, heavy\n')
    out = subprocess.run([sys.executable, '-c', code, mod.__file__],
                         capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [
        '[49406,', '518,', '786,', '525,', '518,', '1823,', '49407,', '0]',
        '(16,', '16,', '3)'
    ]
