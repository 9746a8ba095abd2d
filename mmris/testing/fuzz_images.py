# Copyright (c) mmris contributors. All rights reserved.
"""Fuzzing the image reader (``LoadRefImage``: header size check, then
OpenCV decoding): valid seed images and structure-aware mutators.

* :func:`mutate_png` edits one chunk of a PNG (its header fields, its
  payload bytes, its length, its order, or a chunk added or removed) and
  recomputes the CRC-32s, so that the edit reaches the decoder behind the
  checksum instead of being refused by it; the IDAT stream is sometimes
  re-deflated after a raw edit, so that bad filter bytes and short or long
  rows reach the row decoder.
* :func:`mutate_jpeg` edits a JPEG's markers: the frame header (size,
  components, sampling), the quantisation and Huffman tables, segment
  lengths, restart markers and the entropy-coded data.

Both are deterministic for a given ``random.Random``.
"""
import random
import struct
import zlib
from typing import List, Tuple

import numpy as np

from .images import png_chunks, png_from_chunks

__all__ = [
    'image_seeds', 'load_image_file', 'mutate_image', 'mutate_png',
    'mutate_jpeg'
]

#: Sizes a header field may be set to: tiny, ordinary, at and around the
#: pixel limit, and absurd.
SIZES = (0, 1, 2, 3, 7, 8, 255, 256, 4096, 8191, 8192, 8193, 16384, 65535,
         65536, 40000, 2**31 - 1, 2**31, 2**32 - 1)


def load_image_file(path: str) -> dict:
    """The dataset loader on one file (the target under test)."""
    from mmris.datasets.transforms import LoadRefImage
    return LoadRefImage().transform(dict(img_path=path))


def image_seeds(folder: str) -> List[bytes]:
    """Valid images of the kinds met in practice: colour, gray, alpha and
    16-bit PNGs (interlaced too), baseline and progressive JPEGs with 4:2:0
    and 4:4:4 sampling, an EXIF-rotated JPEG; small, so that a fuzzing run
    decodes fast."""
    import cv2
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    cv2.circle(img, (20, 18), 9, (30, 40, 220), -1)
    seeds = []
    for arr, params in (
        (img, [cv2.IMWRITE_PNG_COMPRESSION, 9]),
        (img[..., 0], []),
        (np.dstack([img, img[..., :1]]), []),
        (img.astype(np.uint16) * 257, []),
    ):
        seeds.append(cv2.imencode('.png', arr, params)[1].tobytes())
    for params in ([cv2.IMWRITE_JPEG_QUALITY,
                    90], [cv2.IMWRITE_JPEG_PROGRESSIVE, 1], [
                        cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                        cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444
                    ]):
        seeds.append(cv2.imencode('.jpg', img, params)[1].tobytes())
    seeds.append(_interlaced_png(img[:9, :11]))
    seeds.append(_with_exif_orientation(seeds[4], 6))
    return seeds


def _interlaced_png(img: np.ndarray) -> bytes:
    """An Adam7-interlaced RGB PNG written by hand (OpenCV writes none)."""
    h, w = img.shape[:2]
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
              (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
    raw = b''
    for x0, y0, dx, dy in passes:
        sub = img[y0::dy, x0::dx]
        if sub.size:
            raw += b''.join(b'\x00' + row.tobytes() for row in sub)
    ihdr = struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 1)
    return png_from_chunks([(b'IHDR', ihdr), (b'IDAT', zlib.compress(raw, 9)),
                            (b'IEND', b'')])


def _with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """``jpeg`` with an APP1 EXIF segment holding one Orientation tag."""
    tiff = (b'MM\x00\x2a\x00\x00\x00\x08' + struct.pack('>H', 1) +
            struct.pack('>HHIHH', 0x0112, 3, 1, orientation, 0) +
            b'\x00\x00\x00\x00')
    payload = b'Exif\x00\x00' + tiff
    app1 = b'\xff\xe1' + struct.pack('>H', len(payload) + 2) + payload
    return jpeg[:2] + app1 + jpeg[2:]


# ---------------------------------------------------------------------------
# PNG
# ---------------------------------------------------------------------------
def _edit_ihdr(payload: bytes, rng: random.Random) -> bytes:
    fields = list(struct.unpack('>IIBBBBB', payload[:13].ljust(13, b'\0')))
    which = rng.randrange(7)
    if which < 2:  # width / height
        fields[which] = rng.choice(SIZES)
    elif which == 2:  # bit depth
        fields[2] = rng.choice((0, 1, 2, 3, 4, 8, 16, 32, 255))
    elif which == 3:  # colour type
        fields[3] = rng.choice((0, 1, 2, 3, 4, 5, 6, 7, 255))
    else:  # compression, filter, interlace
        fields[which] = rng.choice((0, 1, 2, 255))
    return struct.pack('>IIBBBBB', *fields) + payload[13:]


def _edit_idat(payload: bytes, rng: random.Random) -> bytes:
    """Edit the inflated rows and re-deflate them (filter bytes, row
    lengths), or edit the deflate stream itself."""
    try:
        raw = bytearray(zlib.decompress(payload))
    except zlib.error:
        raw = None
    if raw and rng.random() < 0.6:
        op = rng.randrange(4)
        pos = rng.randrange(len(raw))
        if op == 0:  # a bad or another filter byte / a pixel value
            raw[pos] = rng.choice((0, 1, 2, 3, 4, 5, 0x7f, 0xff))
        elif op == 1:  # rows cut short
            del raw[pos:]
        elif op == 2:  # extra data after the rows
            raw += bytes(
                rng.randrange(256) for _ in range(rng.randint(1, 4096)))
        else:  # a span repeated (misaligned rows)
            raw[pos:pos] = raw[pos:pos + rng.randint(1, 512)]
        return zlib.compress(bytes(raw), rng.choice((0, 1, 9)))
    buf = bytearray(payload)
    if buf:
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
    return bytes(buf)


def mutate_png(data: bytes, rng: random.Random) -> bytes:
    """One chunk-aware edit of a PNG, CRC-32s recomputed (raw length and
    CRC edits are left to the generic byte mutator).

    Args:
        data (bytes): A PNG (a seed or an earlier mutation).
        rng (random.Random): The source of every choice.

    Returns:
        bytes: The mutated PNG (``data`` edited as bytes when it no longer
        parses as chunks).
    """
    try:
        chunks: List[Tuple[bytes, bytes]] = png_chunks(data)
    except ValueError:
        return _flip(data, rng)
    if not chunks:
        return data
    op = rng.randrange(7)
    i = rng.randrange(len(chunks))
    kind, payload = chunks[i]
    if op == 0 or (op == 1 and kind == b'IHDR'):
        j = next((k for k, c in enumerate(chunks) if c[0] == b'IHDR'), i)
        chunks[j] = (b'IHDR', _edit_ihdr(chunks[j][1], rng))
    elif op == 1 or (op == 2 and kind == b'IDAT'):
        j = next((k for k, c in enumerate(chunks) if c[0] == b'IDAT'), i)
        chunks[j] = (b'IDAT', _edit_idat(chunks[j][1], rng))
    elif op == 2:  # payload bytes of any chunk
        chunks[i] = (kind, _flip(payload, rng))
    elif op == 3:  # drop or duplicate a chunk
        if rng.random() < 0.5 and len(chunks) > 1:
            del chunks[i]
        else:
            chunks.insert(i, chunks[i])
    elif op == 4:  # swap two chunks
        j = rng.randrange(len(chunks))
        chunks[i], chunks[j] = chunks[j], chunks[i]
    elif op == 5:  # split IDAT in two, or add an ancillary chunk
        if kind == b'IDAT' and len(payload) > 1:
            cut = rng.randrange(1, len(payload))
            chunks[i:i + 1] = [(b'IDAT', payload[:cut]),
                               (b'IDAT', payload[cut:])]
        else:
            extra = rng.choice((
                (b'PLTE',
                 bytes(
                     rng.randrange(256)
                     for _ in range(3 * rng.randint(0, 300)))),
                (b'tRNS',
                 bytes(rng.randrange(256)
                       for _ in range(rng.randint(0, 300)))),
                (b'gAMA', struct.pack('>I', rng.choice(SIZES))),
                (b'iCCP',
                 b'icc\0\0' + zlib.compress(b'x' * rng.randint(0, 1 << 16))),
                (b'zTXt',
                 b'k\0\0' + zlib.compress(b'\0' * rng.randint(0, 1 << 20))),
                (b'eXIf', b'MM\0*\0\0\0\x08' + bytes(8)),
            ))
            chunks.insert(rng.randint(1, len(chunks)), extra)
    else:  # change a chunk's type
        chunks[i] = (rng.choice((b'IHDR', b'IDAT', b'IEND', b'PLTE', b'tRNS',
                                 b'acTL', b'fcTL', b'xxxx')), payload)
    return png_from_chunks(chunks)


# ---------------------------------------------------------------------------
# JPEG
# ---------------------------------------------------------------------------
def _jpeg_segments(data: bytes) -> List[Tuple[int, int, int]]:
    """(marker, start, end) of the marker segments before the scan data
    (``end`` exclusive; SOS's end is where its header ends)."""
    segments, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xff:
        marker = data[pos + 1]
        if 0xd0 <= marker <= 0xd9 or marker == 0x01:
            segments.append((marker, pos, min(len(data), pos + 2)))
            pos += 2
            continue
        length = struct.unpack('>H', data[pos + 2:pos + 4])[0]
        segments.append((marker, pos, min(len(data), pos + 2 + length)))
        if marker == 0xda:  # start of scan: entropy-coded data follows
            break
        pos += 2 + length
    return segments


def mutate_jpeg(data: bytes, rng: random.Random) -> bytes:
    """One marker-aware edit of a JPEG.

    Args:
        data (bytes): A JPEG (a seed or an earlier mutation).
        rng (random.Random): The source of every choice.

    Returns:
        bytes: The mutated JPEG.
    """
    segments = _jpeg_segments(data)
    if not segments:
        return _flip(data, rng)
    buf = bytearray(data)
    op = rng.randrange(6)
    sof = [
        s for s in segments
        if 0xc0 <= s[0] <= 0xcf and s[0] not in (0xc4, 0xc8, 0xcc)
    ]
    if op == 0 and sof:  # frame size, precision, components, sampling
        _, start, end = sof[0]
        field = rng.randrange(4)
        if field == 0 and end >= start + 9:
            buf[start + 5:start + 9] = struct.pack('>HH',
                                                   rng.choice(SIZES) & 0xffff,
                                                   rng.choice(SIZES) & 0xffff)
        elif field == 1 and end > start + 4:
            buf[start + 4] = rng.choice((0, 1, 8, 12, 16, 255))
        elif field == 2 and end > start + 9:
            buf[start + 9] = rng.choice((0, 1, 2, 3, 4, 255))
        elif end > start + 11:
            k = rng.randrange(start + 10, end)
            buf[k] = rng.choice((0, 0x11, 0x12, 0x21, 0x22, 0x44, 0xff))
    elif op == 1:  # a segment's length
        _, start, end = rng.choice(segments)
        if end > start + 2:
            length = rng.choice((0, 1, 2, 3, 0x7fff, 0xffff,
                                 end - start - 2 + rng.randint(-8, 8)))
            buf[start + 2:start + 4] = struct.pack('>H', length & 0xffff)
    elif op == 2:  # table contents (DQT, DHT) or any segment's payload
        tables = [s for s in segments if s[0] in (0xdb, 0xc4)] or segments
        _, start, end = rng.choice(tables)
        for _ in range(rng.randint(1, 6)):
            if end > start + 4:
                buf[rng.randrange(start + 4, end)] = rng.randrange(256)
    elif op == 3:  # the entropy-coded data
        scan = segments[-1][2]
        if scan < len(buf):
            for _ in range(rng.randint(1, 8)):
                buf[rng.randrange(scan, len(buf))] = rng.randrange(256)
    elif op == 4:  # a marker inserted in the scan (restart, EOI, SOF)
        scan = segments[-1][2]
        pos = rng.randint(min(scan, len(buf)), len(buf))
        buf[pos:pos] = bytes(
            [0xff, rng.choice((0xd0, 0xd7, 0xd9, 0xc0, 0xda, 0x00))])
    else:  # a segment dropped or duplicated
        _, start, end = rng.choice(segments)
        piece = bytes(buf[start:end])
        if rng.random() < 0.5:
            del buf[start:end]
        else:
            buf[start:start] = piece
    return bytes(buf)


def mutate_image(data: bytes, rng: random.Random) -> bytes:
    """:func:`mutate_png` for a PNG, :func:`mutate_jpeg` for a JPEG, bit
    flips for anything else (the fuzz target's one structure-aware
    mutator)."""
    if data[:8] == b'\x89PNG\r\n\x1a\n':
        return mutate_png(data, rng)
    if data[:2] == b'\xff\xd8':
        return mutate_jpeg(data, rng)
    return _flip(data, rng)


def _flip(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if buf:
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
    return bytes(buf)
