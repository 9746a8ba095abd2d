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

pytest.importorskip('gradio', reason='gradio is not installed (pip install '
                    '-r requirements/optional.txt)')
pytest.importorskip('selenium', reason='selenium is not installed (pip '
                    'install -r requirements/optional.txt)')
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
CHROMEDRIVER = shutil.which('chromedriver')
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip('chromium / chromedriver not found (apt-get install '
                'chromium chromium-driver)', allow_module_level=True)


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
        _wait(lambda: urllib.request.urlopen(url, timeout=5).status == 200,
              'the server', proc, timeout=180)
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
    driver = webdriver.Chrome(
        service=Service(CHROMEDRIVER), options=options)
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


def test_webui_in_chromium(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from mmris.visualization import PRED_COLOR
    driver, proc = browser, server['proc']
    driver.get(server['url'])
    model_text = _wait(
        lambda: driver.find_element(By.CSS_SELECTOR, '#mmris-model').text,
        'the model description')
    assert 'tiny.pth' in model_text and 'quick-start model' in model_text

    # 1) an image and two sentences -> two overlays of the input's size
    _upload(driver, DEMO)
    driver.find_element(By.CSS_SELECTOR, '#mmris-text textarea').send_keys(
        '\n'.join(SENTENCES))
    start = time.perf_counter()
    driver.find_element(By.CSS_SELECTOR, '#mmris-run').click()
    status = _wait(lambda: 'Done' in _status(driver) and _status(driver),
                   'the results', proc)
    srcs = _wait(
        lambda: [
            img.get_attribute('src') for img in driver.find_elements(
                By.CSS_SELECTOR, '#mmris-overlays img')
        ] or None, 'the overlays', proc)
    print(f'webui in chromium: {time.perf_counter() - start:.2f} s for 2 '
          f'sentences (page round trip); server: {status}')
    srcs = list(dict.fromkeys(srcs))
    assert len(srcs) == 2, srcs
    gallery = driver.find_element(By.CSS_SELECTOR, '#mmris-overlays').text
    assert 'the red circle -> mask' in gallery
    assert 'the big green square -> mask' in gallery
    table = driver.find_element(By.CSS_SELECTOR, '#mmris-table').text
    assert f'threshold {server["thr"]:.2f}' in table
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
    src = server['seg'].image
    for i, url in enumerate(srcs):
        data = urllib.request.urlopen(url, timeout=WAIT_S).read()
        overlay = cv2.imdecode(np.frombuffer(data, np.uint8),
                               cv2.IMREAD_COLOR)
        assert overlay is not None, f'overlay {i} does not decode'
        overlay = cv2.cvtColor(overlay, cv2.COLOR_BGR2RGB)
        assert overlay.shape == src.shape, (i, overlay.shape)
        want, mask = expected.overlays[i][0], expected.masks[i]
        same = (np.abs(overlay.astype(int) - want).max(2) <= 2).mean()
        assert same > 0.99, (i, same)
        if i == 0:  # about half the image is mask: tinted there only
            assert 0.3 < mask.mean() < 0.7
            inner = cv2.erode(mask, np.ones((7, 7))) > 0
            outer = cv2.dilate(mask, np.ones((7, 7))) == 0
            tint = np.round((src.astype(float) + PRED_COLOR) / 2)
            tinted = (np.abs(overlay[inner] - tint[inner]).max(1) <= 2)
            kept = (np.abs(overlay[outer].astype(int) - src[outer]).max(1)
                    <= 2)
            assert tinted.mean() > 0.8 and kept.mean() > 0.99
    shot = str(tmp_path / 'webui.png')
    assert driver.save_screenshot(shot)
    page = cv2.imread(shot)
    assert page is not None and page.shape[0] > 500 and page.shape[1] > 500
    if os.environ.get('MMRIS_WEBUI_SCREENSHOT'):
        shutil.copy(shot, os.environ['MMRIS_WEBUI_SCREENSHOT'])

    # 2) a 6000x4000 upload -> a clear message, and the server lives on
    big = str(tmp_path / 'big.png')
    cv2.imwrite(big, np.full((4000, 6000, 3), 90, np.uint8))
    driver.find_element(By.CSS_SELECTOR,
                        '#mmris-image button[aria-label="Remove Image"]'
                        ).click()
    _upload(driver, big)
    driver.find_element(By.CSS_SELECTOR, '#mmris-run').click()
    message = _wait(lambda: 'Error' in _status(driver) and _status(driver),
                    'the error message', proc)
    assert '6000x4000 pixels' in message and 'up to 4096' in message
    assert not driver.find_elements(By.CSS_SELECTOR, '#mmris-overlays img')
    assert proc.poll() is None, 'the server died on a bad upload'
    assert urllib.request.urlopen(server['url'], timeout=10).status == 200
