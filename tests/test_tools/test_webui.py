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
    # sentence length is capped (and a huge text refused before splitting)
    assert parse_sentences('x' * 250) == ['x' * 250]
    with pytest.raises(
            WebUIInputError,
            match='Sentence 2 has 251 characters.*at most 250'):
        parse_sentences('a\n' + 'x' * 251)
    with pytest.raises(WebUIInputError, match='1,000,000 characters'):
        parse_sentences('x' * 10**6)


def test_escape_markdown_shows_text_as_typed():
    from mmris.apis.webui_backend import escape_markdown
    nasty = '<img src=x onerror=alert(1)> [x](javascript:alert(1)) | *b*'
    escaped = escape_markdown(nasty)
    for raw in ('<img', '](', ' | ', '*b*'):
        assert raw not in escaped
    assert '&lt;img src=x onerror=alert\\(1\\)&gt;' in escaped
    assert escape_markdown('a\nb') == 'a b'


def test_read_image_errors_name_the_problem(tmp_path):
    from mmris.apis.webui_backend import WebUIInputError, read_image
    with pytest.raises(WebUIInputError, match='No image'):
        read_image(None)
    bad = tmp_path / 'holiday.jpg'
    bad.write_bytes(b'<html>not an image</html>')
    with pytest.raises(WebUIInputError, match='Cannot read holiday.jpg') \
            as info:
        read_image(str(bad))
    # the uploaded file's name only, never the server's (temporary) path
    assert str(tmp_path) not in str(info.value)
    big = tmp_path / 'big.png'
    cv2.imwrite(str(big), np.zeros((4000, 6000, 3), np.uint8))
    with pytest.raises(
            WebUIInputError, match=r'big.png is 6000x4000 pixels.*up to 4096'):
        read_image(str(big))
    # a decompression bomb: refused from its header, never decoded
    from mmris.testing.images import bomb_png
    bomb = tmp_path / 'bomb.png'
    bomb.write_bytes(bomb_png(40000, 26000))
    with pytest.raises(
            WebUIInputError,
            match='bomb.png is 40000x26000 '
            r'pixels.*67,108,864 pixels in all') as info:
        read_image(str(bomb))
    assert str(tmp_path) not in str(info.value)
    # the uploaded file's own name when Gradio's copy is named otherwise
    with pytest.raises(WebUIInputError, match='Cannot read my photo.jpg') \
            as info:
        read_image(str(bad), name='my photo.jpg')
    assert 'holiday' not in str(info.value)
    with pytest.raises(
            WebUIInputError, match='bomb.png is 40000x26000 pixels'):
        read_image(str(bomb), max_side=10**6)
    with pytest.raises(WebUIInputError, match='is 157x152 pixels'):
        read_image(DEMO, max_pixels=1000)
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
    from mmris.visualization import render_overlay
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
    area = 100 * mask.mean()
    assert caption == f'#0: mask {area:.1f}% of the image'
    # drawn as tools/demo.py and --show-dir draw it: scaled up to 320 px,
    # light tint, the sentence and the answer on the caption strip
    np.testing.assert_array_equal(
        overlay,
        render_overlay(src, mask, f'the red circle -> mask {area:.1f}% of '
                       'the image'))
    assert overlay.shape[1] == 331 and overlay.shape[0] > 320
    np.testing.assert_array_equal(rendering.masks[0], mask)
    assert high.records[0]['mask_pixels'] == 0

    paths = backend.export(seg, rendering, str(tmp_path / 'out'))
    assert [osp.basename(p)
            for p in paths] == ['mask_0.png', 'mask_1.png', 'results.json']
    png = cv2.imread(paths[0], cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(png, mask.astype(np.uint8) * 255)
    with open(paths[2]) as f:
        summary = json.load(f)
    assert summary['threshold'] == thr
    assert summary['image_size'] == dict(height=152, width=157)
    rec = summary['results'][0]
    assert rec['sentence'] == 'the red circle'
    assert rec['mask_pixels'] == int(mask.sum())
    assert rec['mask_area_percent'] == pytest.approx(
        100 * mask.mean(), abs=1e-3)


def test_no_target_gives_an_empty_mask_at_any_threshold(backend):
    from mmris.apis.webui_backend import Segmentation
    img = np.full((20, 30, 3), 128, np.uint8)
    seg = Segmentation(img, ['nobody'], [np.ones((20, 30), np.float32)],
                       [True], [0.91])
    from mmris.visualization import render_overlay
    rendering = backend.render(seg, 0.1)
    assert rendering.masks[0].sum() == 0
    assert rendering.overlays[0][1] == '#0: no target (p=0.91)'
    assert rendering.records[0]['no_target'] is True
    np.testing.assert_array_equal(
        rendering.overlays[0][0],
        render_overlay(img, np.zeros((20, 30)), 'nobody -> no target '
                       '(p=0.91)'))


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
    handler gets the file and names it, also from the per-session copy
    Gradio builds from the component's class once an Example has set it
    (tests/test_tools/test_webui_browser.py clicks one in the page)."""
    gr = pytest.importorskip('gradio')
    from gradio.data_classes import FileData
    webui = runpy.run_path(osp.join(ROOT, 'tools', 'webui.py'))
    bad = tmp_path / 'notes.png'
    bad.write_bytes(b'not a picture at all')
    payload = FileData(path=str(bad), orig_name='notes.png')
    with pytest.raises(Exception):
        gr.Image(type='filepath', render=False).preprocess(payload)
    # the Segment button runs without Gradio's preprocessing: the handler
    # gets the file data and reads the file itself
    page = webui['build_demo'](backend, out_root=str(tmp_path / 'page'))
    segment = [
        fn for fn in page.fns.values()
        if getattr(fn.fn, '__name__', '') == 'segment'
    ]
    assert len(segment) == 1 and segment[0].preprocess is False
    path, name = webui['uploaded_file'](
        dict(payload.model_dump(), orig_name='my notes.png'))
    assert (path, name) == (str(bad), 'my notes.png')
    assert webui['uploaded_file'](None) == (None, None)
    # the defaults repeated in the tool (fast --help) are the backend's
    from mmris.apis import webui_backend
    for const in ('DEFAULT_MAX_SIDE', 'DEFAULT_MAX_SENTENCES',
                  'DEFAULT_MAX_SENTENCE_CHARS'):
        assert webui[const] == getattr(webui_backend, const), const
    from mmris.apis.webui_backend import WebUIInputError
    with pytest.raises(WebUIInputError, match='Cannot read my notes.png'):
        backend.segment(path, 'the red circle', name=name)


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
    browser_test = open(
        osp.join(root, 'tests', 'test_tools', 'test_webui_browser.py')).read()
    for flag in flags:
        assert f"'{flag}'" in browser_test
    assert "'etris-tiny_synthetic.py'" in browser_test
