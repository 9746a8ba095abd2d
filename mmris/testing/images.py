# Copyright (c) mmris contributors. All rights reserved.
"""Hand-made image files for tests: valid PNGs of any declared size
(decompression bombs included), written without decoding anything."""
import struct
import zlib
from typing import Iterable, List, Tuple


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk: length, type, payload and CRC-32 of type + payload."""
    return (struct.pack('>I', len(payload)) + kind + payload +
            struct.pack('>I',
                        zlib.crc32(kind + payload) & 0xffffffff))


def png_chunks(data: bytes) -> List[Tuple[bytes, bytes]]:
    """(type, payload) of every chunk of a PNG (no CRC check).

    Raises:
        ValueError: When ``data`` is not a PNG or a chunk is cut short.
    """
    if data[:8] != b'\x89PNG\r\n\x1a\n':
        raise ValueError('not a PNG signature')
    chunks, pos = [], 8
    while pos < len(data):
        if pos + 8 > len(data):
            raise ValueError(f'chunk header cut at byte {pos}')
        length, kind = struct.unpack('>I4s', data[pos:pos + 8])
        if pos + 12 + length > len(data):
            raise ValueError(f'chunk {kind!r} cut at byte {pos}')
        chunks.append((kind, data[pos + 8:pos + 8 + length]))
        pos += 12 + length
    return chunks


def png_from_chunks(chunks: Iterable[Tuple[bytes, bytes]]) -> bytes:
    """A PNG made of ``chunks`` (type, payload), CRCs computed."""
    return b'\x89PNG\r\n\x1a\n' + b''.join(
        png_chunk(kind, payload) for kind, payload in chunks)


def bomb_png(width: int, height: int, bit_depth: int = 1) -> bytes:
    """A valid grayscale PNG of ``width`` x ``height`` black pixels.

    The rows are zeros, so they deflate about 1000:1: at 1 bit per pixel a
    40000 x 26000 image (1.04 G pixels, 3.1 GB once decoded as 8-bit RGB)
    is a file of about 130 kB, made in well under a second (the rows are
    compressed as a stream, never held whole).

    Args:
        width (int): Declared width.
        height (int): Declared height.
        bit_depth (int): 1, 2, 4, 8 or 16 bits per (gray) pixel.
            Defaults to 1.

    Returns:
        bytes: The PNG file.
    """
    row = b'\x00' * (1 + (width * bit_depth + 7) // 8)  # filter byte + data
    rows_per_block = max(1, (1 << 22) // len(row))
    full, rest = divmod(height, rows_per_block)
    # raw deflate, wrapped by hand: after a full flush the compressor starts
    # afresh, so equal blocks deflate to equal bytes and one block is
    # compressed and repeated; the Adler-32 still covers every byte
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block_rows = row * rows_per_block
    block = comp.compress(block_rows) + comp.flush(zlib.Z_FULL_FLUSH) \
        if full else b''
    adler = 1
    for _ in range(full):
        adler = zlib.adler32(block_rows, adler)
    adler = zlib.adler32(row * rest, adler)
    stream = (b'\x78\xda' + block * full + comp.compress(row * rest) +
              comp.flush() + struct.pack('>I', adler & 0xffffffff))
    ihdr = struct.pack('>IIBBBBB', width, height, bit_depth, 0, 0, 0, 0)
    return png_from_chunks([(b'IHDR', ihdr), (b'IDAT', stream),
                            (b'IEND', b'')])
