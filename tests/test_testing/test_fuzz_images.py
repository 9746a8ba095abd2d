# Copyright (c) mmris contributors. All rights reserved.
"""The image reader's fuzzing pieces (mmris/testing/fuzz_images.py)."""
import random
import struct
import zlib

import pytest

from mmris.testing.fuzz_images import (image_seeds, load_image_file,
                                       mutate_jpeg, mutate_png)
from mmris.testing.images import png_chunks


@pytest.fixture(scope='module')
def seeds(tmp_path_factory):
    return image_seeds(str(tmp_path_factory.mktemp('seeds')))


def _crcs_ok(data: bytes) -> bool:
    pos = 8
    while pos < len(data):
        length, = struct.unpack('>I', data[pos:pos + 4])
        body = data[pos + 4:pos + 8 + length]
        crc, = struct.unpack('>I', data[pos + 8 + length:pos + 12 + length])
        if zlib.crc32(body) & 0xffffffff != crc:
            return False
        pos += 12 + length
    return True


def test_seeds_are_valid_images(seeds, tmp_path):
    kinds = [s[:4] for s in seeds]
    assert kinds.count(b'\x89PNG') == 5 and kinds.count(b'\xff\xd8\xff\xe0') \
        + kinds.count(b'\xff\xd8\xff\xe1') == 4
    for i, data in enumerate(seeds):
        path = tmp_path / f'seed_{i}.img'
        path.write_bytes(data)
        img = load_image_file(str(path))['img']
        assert img.ndim == 3 and img.shape[2] == 3, i


def test_png_mutations_keep_valid_crcs_and_are_deterministic(seeds):
    pngs = [s for s in seeds if s[:4] == b'\x89PNG']
    changed = 0
    for i in range(300):
        data = pngs[i % len(pngs)]
        out = mutate_png(data, random.Random(i))
        assert out == mutate_png(data, random.Random(i))
        assert _crcs_ok(out), i  # the edit reaches the decoder
        png_chunks(out)
        changed += out != data
    assert changed > 250
    # IHDR edits reach the declared size
    sizes = set()
    for i in range(300):
        out = mutate_png(pngs[0], random.Random(i))
        ihdr = dict(png_chunks(out)).get(b'IHDR', b'')
        if len(ihdr) >= 8:
            sizes.add(struct.unpack('>II', ihdr[:8]))
    assert len(sizes) > 10


def test_jpeg_mutations_are_deterministic(seeds):
    jpegs = [s for s in seeds if s[:2] == b'\xff\xd8']
    outs = set()
    for i in range(200):
        data = jpegs[i % len(jpegs)]
        out = mutate_jpeg(data, random.Random(i))
        assert out == mutate_jpeg(data, random.Random(i))
        assert out[:2] == b'\xff\xd8'
        outs.add(out)
    assert len(outs) > 150


def test_short_campaign(tmp_path):
    """A fixed-seed campaign through the harness (worker process, memory
    cap, time limit): every input loads or is refused by name; the long
    one is ``tools/misc/fuzz_loaders.py --targets image --count 100000``."""
    from mmris.testing import fuzz
    report = fuzz.run_fuzz('image', 150, seed=0, save_dir=str(tmp_path))
    assert report.inputs == 150
    assert not report.failures, report.failures[:3]
    assert report.loaded > 10 and report.refused > 10


def test_a_noisy_loader_is_not_a_hang():
    """Decoders write warnings to stderr for every damaged input; the
    worker must not block on them (it did once 64 KiB were written: every
    ~2,300 image inputs were reported as a 'hang')."""
    import os.path as osp

    from mmris.testing import fuzz
    tests = osp.dirname(osp.dirname(osp.abspath(__file__)))
    report = fuzz.run_fuzz(
        'test_testing._fuzz_noisy:NOISY',
        6,
        time_limit=30,
        python_path=[tests])
    assert report.inputs == 6 and report.refused == 6
    assert not report.failures, report.failures
