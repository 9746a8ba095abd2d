# Copyright (c) mmris contributors. All rights reserved.
"""An image's size read from its header, and the pixel limit checked with it
before any image is decoded (decompression bombs: a 130 kB PNG may declare
40000 x 26000 pixels, 3.1 GB once decoded)."""
import io
import os
import struct
import warnings
from typing import Optional, Tuple, Union

#: Default largest image, in pixels (width x height), that mmris decodes:
#: 2**26 = 67,108,864 (e.g. 8192 x 8192; COCO images have under 0.4 M).
DEFAULT_MAX_IMAGE_PIXELS = 2**26
#: Environment variable overriding :data:`DEFAULT_MAX_IMAGE_PIXELS`.
MAX_PIXELS_ENV = 'MMRIS_MAX_IMAGE_PIXELS'


class ImageTooLargeError(ValueError):
    """An image declares more pixels than the limit; raised from its header,
    before anything is decoded."""


class ImageHeaderError(OSError):
    """An image whose header cannot be read (not an image, truncated, or a
    format without a known header)."""


def max_image_pixels(max_pixels: Optional[int] = None) -> int:
    """The pixel limit in force.

    Args:
        max_pixels (int, optional): An explicit limit (>= 1). Defaults to
            None: ``$MMRIS_MAX_IMAGE_PIXELS`` when set, else
            :data:`DEFAULT_MAX_IMAGE_PIXELS`.

    Returns:
        int: The limit.

    Raises:
        ValueError: For a limit (argument or environment) that is not a
            positive integer.
    """
    source = 'max_pixels'
    if max_pixels is None:
        value = os.environ.get(MAX_PIXELS_ENV, '').strip()
        if not value:
            return DEFAULT_MAX_IMAGE_PIXELS
        source = f'${MAX_PIXELS_ENV}'
        try:
            max_pixels = int(value)
        except ValueError:
            raise ValueError(f'{source} must be a positive integer, got '
                             f'{value!r}') from None
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or \
            max_pixels < 1:
        raise ValueError(f'{source} must be a positive integer, got '
                         f'{max_pixels!r}')
    return max_pixels


def read_image_size(data: Union[bytes, bytearray, memoryview],
                    name: str = 'image') -> Tuple[int, int]:
    """(width, height) of an encoded image, from its header only.

    Pillow parses the header (PNG IHDR, JPEG SOF, BMP, GIF, TIFF, WebP, ...)
    without decoding any pixel data.

    Args:
        data (bytes): The file's bytes.
        name (str): File name for the error messages. Defaults to 'image'.

    Returns:
        tuple[int, int]: Width and height in pixels.

    Raises:
        ImageTooLargeError: When the header declares more pixels than
            Pillow's own ceiling (2 x ``PIL.Image.MAX_IMAGE_PIXELS``,
            178,956,970 by default), which is above any limit mmris allows
            by default.
        ImageHeaderError: When no image header can be read.
    """
    from PIL import Image, UnidentifiedImageError
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
    except Image.DecompressionBombError:
        # over Pillow's own ceiling, which hides the size: PNG and JPEG
        # headers are read here; other formats are refused as they are
        size = _png_or_jpeg_size(data)
        if size is not None:
            return size
        raise ImageTooLargeError(
            f'{name}: the image header declares more than '
            f'{2 * (Image.MAX_IMAGE_PIXELS or 0):,} pixels (Pillow\'s '
            'ceiling); refused before decoding') from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError,
            struct.error, MemoryError) as err:
        raise ImageHeaderError(
            f'Cannot decode image file {name}: no readable image header '
            f'(corrupt or unsupported format: {type(err).__name__})') from None
    return int(width), int(height)


def _png_or_jpeg_size(data: bytes) -> Optional[Tuple[int, int]]:
    """(width, height) from a PNG IHDR or a JPEG SOF marker, else None."""
    data = bytes(data[:1 << 16])  # the SOF comes before any pixel data
    if data[:8] == b'\x89PNG\r\n\x1a\n' and data[12:16] == b'IHDR':
        return struct.unpack('>II', data[16:24])
    if data[:2] != b'\xff\xd8':
        return None
    pos = 2
    while pos + 9 <= len(data):
        if data[pos] != 0xff:
            return None
        marker = data[pos + 1]
        if marker == 0xff:  # fill byte
            pos += 1
            continue
        if 0xd0 <= marker <= 0xd9 or marker == 0x01:  # no length field
            pos += 2
            continue
        length = struct.unpack('>H', data[pos + 2:pos + 4])[0]
        # SOF0..SOF15 except DHT (c4), JPG (c8) and DAC (cc)
        if 0xc0 <= marker <= 0xcf and marker not in (0xc4, 0xc8, 0xcc):
            height, width = struct.unpack('>HH', data[pos + 5:pos + 9])
            return width, height
        pos += 2 + length
    return None


def check_image_pixels(data: Union[bytes, bytearray, memoryview],
                       name: str = 'image',
                       max_pixels: Optional[int] = None) -> Tuple[int, int]:
    """Read the size from the header and refuse an image over the limit.

    Args:
        data (bytes): The file's bytes.
        name (str): File name for the messages. Defaults to 'image'.
        max_pixels (int, optional): The limit; see :func:`max_image_pixels`.
            Defaults to None.

    Returns:
        tuple[int, int]: (width, height).

    Raises:
        ImageTooLargeError: When width x height exceeds the limit.
        ImageHeaderError: When the header cannot be read.
    """
    limit = max_image_pixels(max_pixels)
    width, height = read_image_size(data, name)
    check_pixel_count(width, height, name, limit)
    return width, height


def check_pixel_count(width: int,
                      height: int,
                      name: str = 'image',
                      max_pixels: Optional[int] = None) -> None:
    """Refuse ``width`` x ``height`` over the limit (also used for arrays).

    Raises:
        ImageTooLargeError: Naming the image, its size and the limit.
    """
    limit = max_image_pixels(max_pixels)
    if width * height > limit:
        raise ImageTooLargeError(
            f'{name} is {width}x{height} pixels ({width * height:,}), over '
            f'the limit of {limit:,} pixels: refused before decoding '
            f'(raise it with max_pixels / --max-pixels or ${MAX_PIXELS_ENV}'
            ' if the image is trusted)')
