# Copyright (c) mmris contributors. All rights reserved.
"""tools/webui.py in a real browser: the server on 127.0.0.1 with the tiny
quick-start model, driven by headless Chromium through selenium.

Needs the optional extras (``pip install -r requirements/optional.txt``)
and Debian's ``chromium`` + ``chromium-driver`` (``.ci/run`` installs them
when missing); skipped with the reason otherwise.
"""
import json
import os
import os.path as osp
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import cv2
import numpy as np
import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'quickstart', 'etris-tiny_synthetic.py')
DEMO = osp.join(ROOT, 'demo', 'demo.jpg')
SENTENCES = ['the red circle', 'the big green square']
WAIT_S = 60

pytest.importorskip(
    'gradio',
    reason='gradio is not installed (pip install '
    '-r requirements/optional.txt)')
pytest.importorskip(
    'selenium',
    reason='selenium is not installed (pip '
    'install -r requirements/optional.txt)')
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
CHROMEDRIVER = shutil.which('chromedriver')
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip(
        'chromium / chromedriver not found (apt-get install '
        'chromium chromium-driver)',
        allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _wait(condition, what: str, proc=None, timeout: float = WAIT_S):
    """Poll ``condition`` until it returns a true value (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f'the server exited while waiting for '
                                 f'{what} (rc {proc.returncode})')
        try:
            value = condition()
        except Exception:  # element not there yet, connection refused
            value = None
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f'timed out after {timeout} s waiting for {what}')


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    """``python tools/webui.py --config ... --checkpoint ... --port ...``
    (the README command) with a seeded tiny checkpoint; always stopped."""
    from mmris.apis.webui_backend import WebUIBackend
    tmp = tmp_path_factory.mktemp('webui')
    torch.manual_seed(0)
    backend = WebUIBackend.build(CONFIG, None)
    ckpt = str(tmp / 'tiny.pth')
    torch.save({'state_dict': backend.model.state_dict()}, ckpt)
    backend.checkpoint = ckpt
    # a threshold that makes about half the image mask for sentence 0
    seg = backend.segment(DEMO, '\n'.join(SENTENCES))
    thr = round(float(np.median(seg.probs[0])), 2)
    port = _free_port()
    env = dict(
        os.environ,
        CUDA_VISIBLE_DEVICES='',
        GRADIO_ANALYTICS_ENABLED='False',
        GRADIO_TEMP_DIR=str(tmp / 'gradio'))
    log = open(tmp / 'server.log', 'w')
    proc = subprocess.Popen([
        sys.executable,
        osp.join(ROOT, 'tools', 'webui.py'), '--config', CONFIG,
        '--checkpoint', ckpt, '--port',
        str(port), '--threshold',
        str(thr)
    ],
                            cwd=ROOT,
                            env=env,
                            stdout=log,
                            stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}/'
    try:
        _wait(
            lambda: urllib.request.urlopen(url, timeout=5).status == 200,
            'the server',
            proc,
            timeout=180)
        yield dict(
            url=url, proc=proc, backend=backend, seg=seg, thr=thr, tmp=tmp)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)
        log.close()


@pytest.fixture(scope='module')
def browser(server):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ('--headless', '--no-sandbox', '--disable-gpu',
                '--disable-dev-shm-usage', '--no-first-run',
                '--disable-background-networking',
                '--disable-component-update', '--disable-sync',
                f'--user-data-dir={server["tmp"] / "chromium-profile"}',
                '--window-size=1400,1700'):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_S)
    driver.set_script_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def _upload(driver, path: str) -> None:
    from selenium.webdriver.common.by import By
    field = _wait(
        lambda: driver.find_element(By.CSS_SELECTOR,
                                    '#mmris-image input[type=file]'),
        'the image upload field')
    field.send_keys(path)
    # the preview appears once the file is on the server
    _wait(lambda: driver.find_element(By.CSS_SELECTOR, '#mmris-image img'),
          f'the preview of {osp.basename(path)}')


def _status(driver) -> str:
    from selenium.webdriver.common.by import By
    return driver.find_element(By.CSS_SELECTOR, '#mmris-status').text


def _run_and_wait(driver, proc, what: str, changed: bool = True) -> str:
    """Press Segment and wait for a status (Done or Error); with
    ``changed``, one that differs from the status before."""
    from selenium.webdriver.common.by import By
    before = _status(driver)
    driver.find_element(By.CSS_SELECTOR, '#mmris-run').click()
    return _wait(
        lambda: any(k in _status(driver) for k in ('Done', 'Error')) and
        (not changed or _status(driver) != before) and _status(driver), what,
        proc)


def _set_text(driver, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    box = driver.find_element(By.CSS_SELECTOR, '#mmris-text textarea')
    box.send_keys(Keys.CONTROL, 'a')
    box.send_keys(Keys.DELETE)
    box.send_keys(text)


def _remove_image(driver) -> None:
    from selenium.webdriver.common.by import By
    driver.find_element(
        By.CSS_SELECTOR,
        '#mmris-image button[aria-label="Remove Image"]').click()
    _wait(
        lambda: not driver.find_elements(By.CSS_SELECTOR, '#mmris-image img'),
        'the image to be removed')


@pytest.mark.slow
def test_webui_in_chromium(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    driver, proc = browser, server['proc']
    driver.get(server['url'])
    model_text = _wait(
        lambda: driver.find_element(By.CSS_SELECTOR, '#mmris-model').text,
        'the model description')
    assert 'tiny.pth' in model_text and 'quick-start model' in model_text
    # the limits are stated in the page
    intro = driver.find_element(By.CSS_SELECTOR, '#mmris-intro').text
    assert 'At most 16 sentences of at most 250 characters' in intro
    assert 'up to 4096 pixels on the longer side' in intro
    # the Examples table shows the sentences one per line
    examples = driver.find_element(By.CSS_SELECTOR, '#mmris-examples')
    assert '\n'.join(SENTENCES) in examples.text, examples.text

    # 1) an Example (image and two sentences) -> two overlays drawn as
    # tools/demo.py and --show-dir draw them
    examples.find_element(By.CSS_SELECTOR,
                          '[data-testid="dataset-cell-0-1"]').click()
    _wait(lambda: driver.find_element(By.CSS_SELECTOR, '#mmris-image img'),
          'the example image')
    _wait(
        lambda: driver.find_element(By.CSS_SELECTOR, '#mmris-text textarea').
        get_attribute('value') == '\n'.join(SENTENCES),
        'the example sentences')
    start = time.perf_counter()
    status = _run_and_wait(driver, proc, 'the results')
    assert 'Done' in status, status
    srcs = _wait(
        lambda: [
            img.get_attribute('src') for img in driver.find_elements(
                By.CSS_SELECTOR, '#mmris-overlays img')
        ] or None, 'the overlays', proc)
    print(f'webui in chromium: {time.perf_counter() - start:.2f} s for 2 '
          f'sentences (page round trip); server: {status}')
    srcs = list(dict.fromkeys(srcs))
    assert len(srcs) == 2, srcs
    table = driver.find_element(By.CSS_SELECTOR, '#mmris-table').text
    assert f'threshold {server["thr"]:.2f}' in table
    for sentence in SENTENCES:
        assert sentence in table
    links = {
        a.get_attribute('href').rsplit('/', 1)[-1]: a.get_attribute('href')
        for a in driver.find_elements(By.CSS_SELECTOR, '#mmris-files a')
        if a.get_attribute('href')
    }
    assert {'mask_0.png', 'mask_1.png', 'results.json'} <= set(links), links
    summary = json.loads(
        urllib.request.urlopen(links['results.json'], timeout=WAIT_S).read())
    assert [r['sentence'] for r in summary['results']] == SENTENCES
    assert summary['threshold'] == server['thr']

    expected = server['backend'].render(server['seg'], server['thr'])
    assert 0.3 < expected.masks[0].mean() < 0.7
    for i, url in enumerate(srcs):
        data = urllib.request.urlopen(url, timeout=WAIT_S).read()
        overlay = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert overlay is not None, f'overlay {i} does not decode'
        overlay = cv2.cvtColor(overlay, cv2.COLOR_BGR2RGB)
        want = expected.overlays[i][0]
        # scaled up to 320 px, the sentence on its caption strip
        assert overlay.shape == want.shape, (i, overlay.shape, want.shape)
        same = (np.abs(overlay.astype(int) - want).max(2) <= 2).mean()
        assert same > 0.99, (i, same)
    # the gallery shows each overlay whole, caption strip included
    fits = [
        img.value_of_css_property('object-fit')
        for img in driver.find_elements(By.CSS_SELECTOR, '#mmris-overlays img')
    ]
    assert fits and set(fits) == {'contain'}, fits
    shot = str(tmp_path / 'webui.png')
    assert driver.save_screenshot(shot)
    page = cv2.imread(shot)
    assert page is not None and page.shape[0] > 500 and page.shape[1] > 500
    if os.environ.get('MMRIS_WEBUI_SCREENSHOT'):
        shutil.copy(shot, os.environ['MMRIS_WEBUI_SCREENSHOT'])

    # 2) sentences that are HTML / Markdown are shown as typed, never run
    nasty = [
        '<img src=x onerror=window.__xss=1>', '[x](javascript:window.__xss=2)'
    ]
    _set_text(driver, '\n'.join(nasty))
    status = _run_and_wait(
        driver, proc, 'the results of the HTML sentences', changed=False)
    assert 'Done' in status, status
    _wait(
        lambda: nasty[1] in driver.find_element(By.CSS_SELECTOR, '#mmris-table'
                                                ).text, 'the escaped table')
    table = driver.find_element(By.CSS_SELECTOR, '#mmris-table')
    assert nasty[0] in table.text and nasty[1] in table.text, table.text
    assert not table.find_elements(By.CSS_SELECTOR, 'img')
    assert not driver.find_elements(By.CSS_SELECTOR, 'a[href^="javascript"]')
    assert driver.execute_script('return window.__xss') is None

    # 3) after the Example, an undecodable upload -> a message in the page
    # naming the file (not Gradio's toast, not the server's path); the
    # previous results are cleared
    _remove_image(driver)
    bad = tmp_path / 'notes.png'
    bad.write_bytes(b'not a picture at all')
    driver.find_element(By.CSS_SELECTOR,
                        '#mmris-image input[type=file]').send_keys(str(bad))
    time.sleep(1.0)  # the upload reaches the server
    _set_text(driver, SENTENCES[0])
    message = _run_and_wait(driver, proc, 'the unreadable-file message')
    assert 'Error' in message and 'Cannot read notes.png' in message, \
        message
    assert str(tmp_path) not in message and '/tmp' not in message, message
    assert 'Could not preprocess' not in driver.page_source
    assert not driver.find_elements(By.CSS_SELECTOR, '#mmris-overlays img')
    assert driver.find_element(By.CSS_SELECTOR,
                               '#mmris-table').text.strip() == ''

    # 4) a 6000x4000 upload -> a clear message, and the server lives on
    big = str(tmp_path / 'big.png')
    cv2.imwrite(big, np.full((4000, 6000, 3), 90, np.uint8))
    if driver.find_elements(By.CSS_SELECTOR,
                            '#mmris-image button[aria-label="Remove Image"]'):
        _remove_image(driver)
    _upload(driver, big)
    message = _run_and_wait(driver, proc, 'the error message')
    assert '6000x4000 pixels' in message and 'up to 4096' in message
    assert not driver.find_elements(By.CSS_SELECTOR, '#mmris-overlays img')
    assert proc.poll() is None, 'the server died on a bad upload'
    assert urllib.request.urlopen(server['url'], timeout=10).status == 200
