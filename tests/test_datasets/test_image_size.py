# Copyright (c) mmris contributors. All rights reserved.
"""The pixel limit, checked from the header before any image is decoded."""
import os
import os.path as osp
import struct
import subprocess
import sys

import cv2
import numpy as np
import pytest

import mmris  # noqa: F401
from mmris.datasets.transforms import (DEFAULT_MAX_IMAGE_PIXELS,
                                       ImageHeaderError, ImageTooLargeError,
                                       LoadRefImage, check_image_pixels,
                                       max_image_pixels, read_image_size)
from mmris.testing.images import bomb_png

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# Runs in a fresh process: the peak resident memory it adds while loading
# the crafted file is the number under test.
BOMB_SCRIPT = r'''
import resource
import sys

import mmris  # noqa: F401
from mmris.apis import load_image
from mmris.datasets.transforms import ImageTooLargeError, LoadRefImage

path = sys.argv[1]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for name, load in (
        ('LoadRefImage', lambda: LoadRefImage().transform(
            dict(img_path=path, height=26000, width=40000))),
        ('load_image', lambda: load_image(path))):
    try:
        shape = load()['img'].shape
        print(name, 'decoded', shape, flush=True)
    except ImageTooLargeError as err:
        print(name, 'refused:', err, flush=True)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print('grew_kib', after - before)
'''


@pytest.fixture(scope='module')
def bomb(tmp_path_factory):
    path = tmp_path_factory.mktemp('bomb') / 'bomb.png'
    path.write_bytes(bomb_png(40000, 26000))
    return str(path)


def test_bomb_is_refused_from_its_header_within_a_memory_bound(bomb):
    """A 127 kB PNG declaring 40000 x 26000 pixels (3.1 GB decoded): refused
    by the dataset transform and the inference API, naming the file and the
    size, while the process grows by less than 64 MiB."""
    assert osp.getsize(bomb) < 200_000
    proc = subprocess.run([sys.executable, '-c', BOMB_SCRIPT, bomb],
                          cwd=ROOT,
                          capture_output=True,
                          text=True,
                          timeout=600,
                          env=dict(os.environ, CUDA_VISIBLE_DEVICES=''))
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    for name in ('LoadRefImage', 'load_image'):
        line = next(line for line in lines if line.startswith(name + ' '))
        assert line.startswith(f'{name} refused:'), line
        assert 'bomb.png' in line and '40000x26000' in line, line
        assert f'{DEFAULT_MAX_IMAGE_PIXELS:,}' in line, line
    grew = int(lines[-1].split()[1]) * 1024
    assert grew < 64 * 2**20, f'grew by {grew / 2**20:.0f} MiB'


def test_read_image_size_from_headers(tmp_path):
    img = np.zeros((31, 47, 3), np.uint8)
    for ext in ('.png', '.jpg', '.bmp', '.webp', '.tiff'):
        ok, buf = cv2.imencode(ext, img)
        assert ok
        assert read_image_size(buf.tobytes(), 'x' + ext) == (47, 31), ext
    assert read_image_size(bomb_png(40000, 26000)[:100]) == (40000, 26000)
    for bad in (b'', b'<html>not an image</html>', b'\x89PNG\r\n\x1a\n'):
        with pytest.raises(
                ImageHeaderError, match='Cannot decode image '
                'file notes.png'):
            read_image_size(bad, 'notes.png')
    # above Pillow's own ceiling: PNG and JPEG sizes are still read ...
    huge = bomb_png(100000, 100000)[:100]
    assert read_image_size(huge) == (100000, 100000)
    with pytest.raises(ImageTooLargeError, match='100000x100000'):
        check_image_pixels(huge, 'huge.png')
    jpeg = cv2.imencode('.jpg', img)[1].tobytes()
    sof = jpeg.index(b'\xff\xc0')
    jpeg = jpeg[:sof + 5] + struct.pack('>HH', 30000, 40000) + jpeg[sof + 9:]
    with pytest.raises(ImageTooLargeError, match='40000x30000'):
        check_image_pixels(jpeg, 'huge.jpg')
    # ... other formats are refused as over that ceiling
    bmp = b'BM' + struct.pack('<IHHI', 54, 0, 0, 54) + struct.pack(
        '<IiiHHIIiiII', 40, 20000, 20000, 1, 24, 0, 0, 2835, 2835, 0, 0)
    with pytest.raises(
            ImageTooLargeError,
            match='huge.bmp: the image header declares more '
            'than'):
        check_image_pixels(bmp, 'huge.bmp')


def test_limit_is_configurable(tmp_path, monkeypatch):
    path = tmp_path / 'small.png'
    cv2.imwrite(str(path), np.full((20, 30, 3), 7, np.uint8))
    data = path.read_bytes()
    assert check_image_pixels(data, 'small.png', max_pixels=600) == (30, 20)
    with pytest.raises(
            ImageTooLargeError,
            match=r'small.png is 30x20 pixels \(600\), over the '
            'limit of 599 pixels'):
        check_image_pixels(data, 'small.png', max_pixels=599)
    transform = LoadRefImage(max_pixels=599)
    with pytest.raises(ImageTooLargeError, match='small.png'):
        transform.transform(dict(img_path=str(path)))
    assert LoadRefImage(max_pixels=600).transform(
        dict(img_path=str(path)))['img'].shape == (20, 30, 3)
    # the environment variable, when no explicit limit is given
    monkeypatch.setenv('MMRIS_MAX_IMAGE_PIXELS', '100')
    assert max_image_pixels() == 100
    with pytest.raises(ImageTooLargeError, match='limit of 100 pixels'):
        LoadRefImage().transform(dict(img_path=str(path)))
    monkeypatch.setenv('MMRIS_MAX_IMAGE_PIXELS', 'lots')
    with pytest.raises(ValueError, match='MMRIS_MAX_IMAGE_PIXELS'):
        max_image_pixels()
    monkeypatch.delenv('MMRIS_MAX_IMAGE_PIXELS')
    assert max_image_pixels() == DEFAULT_MAX_IMAGE_PIXELS == 2**26
    for bad in (0, -5, 1.5, True):
        with pytest.raises(ValueError, match='max_pixels'):
            LoadRefImage(max_pixels=bad)
