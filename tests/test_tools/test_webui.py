# Copyright (c) mmris contributors. All rights reserved.
"""The web demo's logic (mmris.apis.webui_backend), without a browser."""
import json
import os.path as osp
import runpy
import time

import cv2
import numpy as np
import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'quickstart', 'etris-tiny_synthetic.py')
DEMO = osp.join(ROOT, 'demo', 'demo.jpg')


@pytest.fixture(scope='module')
def backend():
    from mmris.apis.webui_backend import WebUIBackend
    torch.manual_seed(0)
    return WebUIBackend.build(CONFIG, None)


def test_parse_sentences():
    from mmris.apis.webui_backend import WebUIInputError, parse_sentences
    assert parse_sentences(' the red circle \n\n  \nthe big square\n') == [
        'the red circle', 'the big square'
    ]
    for empty in (None, '', ' \n \n'):
        with pytest.raises(WebUIInputError, match='No sentence'):
            parse_sentences(empty)
    with pytest.raises(WebUIInputError, match='3 sentences.*at most 2'):
        parse_sentences('a\nb\nc', max_sentences=2)


def test_read_image_errors_name_the_problem(tmp_path):
    from mmris.apis.webui_backend import WebUIInputError, read_image
    with pytest.raises(WebUIInputError, match='No image'):
        read_image(None)
    bad = tmp_path / 'holiday.jpg'
    bad.write_bytes(b'<html>not an image</html>')
    with pytest.raises(WebUIInputError, match='Cannot read holiday.jpg'):
        read_image(str(bad))
    big = tmp_path / 'big.png'
    cv2.imwrite(str(big), np.zeros((4000, 6000, 3), np.uint8))
    with pytest.raises(WebUIInputError,
                       match=r'big.png is 6000x4000 pixels.*up to 4096'):
        read_image(str(big))
    img = read_image(DEMO)
    assert img.shape == (152, 157, 3) and img.dtype == np.uint8


def test_describe_says_random_weights_and_model_note(backend, tmp_path):
    from mmris.apis.webui_backend import WebUIBackend
    text = backend.describe()
    assert 'Random weights' in text and 'etris-tiny_synthetic.py' in text
    assert 'quick-start model: trained only on the synthetic' in text
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        WebUIBackend.build(CONFIG, str(tmp_path / 'missing.pth'))


def test_segment_rethreshold_and_export(backend, tmp_path):
    from mmris.visualization import PRED_COLOR, draw_referring_mask
    seg = backend.segment(DEMO, 'the red circle\n\nthe big green square')
    assert seg.sentences == ['the red circle', 'the big green square']
    src = seg.image
    assert [p.shape for p in seg.probs] == [src.shape[:2]] * 2
    assert seg.no_target == [False, False]

    thr = float(np.median(seg.probs[0]))
    # re-thresholding must not run the model again
    forward = backend.model.test_step
    backend.model.test_step = None
    try:
        rendering = backend.render(seg, thr)
        high = backend.render(seg, 1.0)
    finally:
        backend.model.test_step = forward
    mask = (seg.probs[0] > thr)
    assert 0.3 < mask.mean() < 0.7
    overlay, caption = rendering.overlays[0]
    assert overlay.shape == src.shape  # no caption strip: the input's size
    assert caption.startswith('the red circle -> mask ')
    inner = cv2.erode(mask.astype(np.uint8), np.ones((7, 7))) > 0
    expected = np.round(
        (src[inner].astype(float) + np.array(PRED_COLOR)) / 2)
    # mostly tinted (the outline crosses thin parts of a random mask)
    assert (np.abs(overlay[inner] - expected).max(1) <= 1).mean() > 0.8
    # drawn as tools/demo.py draws it, without the caption strip
    np.testing.assert_array_equal(
        overlay, draw_referring_mask(src, mask, PRED_COLOR, 0.5))
    np.testing.assert_array_equal(rendering.masks[0], mask)
    assert high.records[0]['mask_pixels'] == 0

    paths = backend.export(seg, rendering, str(tmp_path / 'out'))
    assert [osp.basename(p) for p in paths] == [
        'mask_0.png', 'mask_1.png', 'results.json'
    ]
    png = cv2.imread(paths[0], cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(png, mask.astype(np.uint8) * 255)
    with open(paths[2]) as f:
        summary = json.load(f)
    assert summary['threshold'] == thr
    assert summary['image_size'] == dict(height=152, width=157)
    rec = summary['results'][0]
    assert rec['sentence'] == 'the red circle'
    assert rec['mask_pixels'] == int(mask.sum())
    assert rec['mask_area_percent'] == pytest.approx(100 * mask.mean(),
                                                     abs=1e-3)


def test_no_target_gives_an_empty_mask_at_any_threshold(backend):
    from mmris.apis.webui_backend import Segmentation
    img = np.full((20, 30, 3), 128, np.uint8)
    seg = Segmentation(img, ['nobody'], [np.ones((20, 30), np.float32)],
                       [True], [0.91])
    rendering = backend.render(seg, 0.1)
    assert rendering.masks[0].sum() == 0
    assert rendering.overlays[0][1] == 'nobody -> no target (p=0.91)'
    assert rendering.records[0]['no_target'] is True
    np.testing.assert_array_equal(rendering.overlays[0][0], img)


def test_response_time_per_sentence_at_416px(backend):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (416, 416, 3), dtype=np.uint8)
    backend.segment(img, 'warm up')
    start = time.perf_counter()
    seg = backend.segment(img, 'the red circle\nthe big green square')
    backend.render(seg)
    per_sentence = (time.perf_counter() - start) / 2
    print(f'webui tiny model, 416 px, CPU: {per_sentence:.3f} s/sentence')
    assert per_sentence < 2.0


def test_examples_include_the_synthetic_demo(tmp_path):
    from mmris.apis.webui_backend import example_inputs
    examples = example_inputs(ROOT, str(tmp_path))
    assert examples[0] == [DEMO, 'the red circle\nthe big green square']
    for path, text in examples:
        assert osp.isfile(path) and text.strip()


def test_page_shows_an_unreadable_upload_as_a_message(backend, tmp_path):
    """Gradio's own decoding of an upload must not swallow the error: the
    handler gets the file and names it."""
    gr = pytest.importorskip('gradio')
    from gradio.data_classes import FileData
    webui = runpy.run_path(osp.join(ROOT, 'tools', 'webui.py'))
    bad = tmp_path / 'notes.png'
    bad.write_bytes(b'not a picture at all')
    image = gr.Image(type='filepath', render=False)
    with pytest.raises(Exception):
        image.preprocess(FileData(path=str(bad), orig_name='notes.png'))
    webui['safe_preprocess'](image)
    path = image.preprocess(FileData(path=str(bad), orig_name='notes.png'))
    assert path == str(bad)
    from mmris.apis.webui_backend import WebUIInputError
    with pytest.raises(WebUIInputError, match='Cannot read notes.png'):
        backend.segment(path, 'the red circle')


def test_readme_command_is_the_one_the_browser_test_runs():
    """The README's web demo command: the config and the flags the browser
    test (tests/test_tools/test_webui_browser.py) starts the server with."""
    import re
    import shlex
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    readme = open(osp.join(root, 'README.md')).read()
    found = re.search(r'^python tools/webui\.py (.*?)\n(?!\s)', readme,
                      re.M | re.S)
    assert found, 'no web demo command in the README'
    argv = shlex.split(found.group(1).replace('\\\n', ' '))
    flags = dict(zip(argv[::2], argv[1::2]))
    assert flags['--config'] == 'configs/quickstart/etris-tiny_synthetic.py'
    assert set(flags) == {'--config', '--checkpoint', '--port'}
    browser_test = open(osp.join(root, 'tests', 'test_tools',
                                 'test_webui_browser.py')).read()
    for flag in flags:
        assert f"'{flag}'" in browser_test
    assert "'etris-tiny_synthetic.py'" in browser_test
