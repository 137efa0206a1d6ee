"""What an uploaded image is and how large it would be once decoded, read from its header alone.

A compressed image says its dimensions in a few header bytes; decoding it allocates width × height ×
channels bytes whatever the file's size (a 1 MB PNG can claim 32768 × 32768 pixels: 3 GiB as BGR). So the
API reads the header first and refuses, before any decoder runs, an image that is not one of the formats it
accepts or whose pixel count is over ``api.max_image_pixels``.

Accepted: JPEG (baseline, extended, progressive and lossless SOF markers), PNG, WebP (lossy ``VP8``, lossless
``VP8L`` and extended ``VP8X``; animations are refused) and BMP. Everything else (TIFF, PNM, OpenEXR,
JPEG 2000, … which OpenCV would also try to decode) is refused: fewer decoders reachable from the network.
Nothing here decodes pixel data; every read is bounds-checked, so a truncated or lying header gives
:class:`ImageRefused`, never an exception of another kind.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

JPEG, PNG, WEBP, BMP = "JPEG", "PNG", "WebP", "BMP"
FORMATS = (JPEG, PNG, WEBP, BMP)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
_JPEG_SCAN_LIMIT = 1 << 20  # the SOF comes before any image data; 1 MiB of EXIF/ICC segments is plenty


class ImageRefused(ValueError):
    """The upload is not an image the API will decode; ``status`` is 413 (too many pixels) or 422."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ImageHeader:
    format: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def _bad(what: str) -> ImageRefused:
    return ImageRefused(422, f"the upload is not a valid {what} image (its header is malformed or truncated)")


def _png(data: bytes) -> ImageHeader:
    # signature, then the first chunk must be IHDR: length 13, width, height (big-endian, 1 .. 2^31-1)
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise _bad(PNG)
    width, height = struct.unpack(">II", data[16:24])
    return ImageHeader(PNG, width, height)


def _jpeg(data: bytes) -> ImageHeader:
    pos, end = 2, min(len(data), _JPEG_SCAN_LIMIT)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            raise _bad(JPEG)
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            raise _bad(JPEG)
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        if length < 2:
            raise _bad(JPEG)
        if marker in _JPEG_SOF:
            if length < 8 or pos + 9 > len(data):
                raise _bad(JPEG)
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            if height == 0:  # the height would come later in a DNL marker: refuse rather than guess
                raise _bad(JPEG)
            return ImageHeader(JPEG, width, height)
        pos += 2 + length
    raise _bad(JPEG)


def _webp(data: bytes) -> ImageHeader:
    if len(data) < 30:
        raise _bad(WEBP)
    chunk = data[12:16]
    body = data[20:]
    if chunk == b"VP8 ":
        if body[3:6] != b"\x9d\x01\x2a":
            raise _bad(WEBP)
        width, height = struct.unpack("<HH", body[6:10])
        return ImageHeader(WEBP, width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L":
        if body[0] != 0x2F:
            raise _bad(WEBP)
        (bits,) = struct.unpack("<I", body[1:5])
        return ImageHeader(WEBP, (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X":
        if body[0] & 0x02:
            raise ImageRefused(422, "animated WebP images are not accepted; send one frame")
        width = int.from_bytes(body[4:7], "little") + 1
        height = int.from_bytes(body[7:10], "little") + 1
        return ImageHeader(WEBP, width, height)
    raise _bad(WEBP)


def _bmp(data: bytes) -> ImageHeader:
    if len(data) < 26:
        raise _bad(BMP)
    (dib,) = struct.unpack("<I", data[14:18])
    if dib == 12:  # BITMAPCOREHEADER: unsigned 16-bit sizes
        width, height = struct.unpack("<HH", data[18:22])
    elif 40 <= dib <= 124:
        width, height = struct.unpack("<ii", data[18:26])
        height = abs(height)  # negative: rows stored top-down
    else:
        raise _bad(BMP)
    return ImageHeader(BMP, width, height)


def read_header(data: bytes) -> ImageHeader:
    """The format and dimensions of ``data`` from its header; ImageRefused (422) when it is not an accepted image."""
    if data.startswith(PNG_SIGNATURE):
        header = _png(data)
    elif data.startswith(b"\xff\xd8\xff"):
        header = _jpeg(data)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        header = _webp(data)
    elif data[:2] == b"BM":
        header = _bmp(data)
    else:
        msg = f"the upload is not an image this server accepts ({', '.join(FORMATS)})"
        raise ImageRefused(422, msg)
    if header.width <= 0 or header.height <= 0:
        raise _bad(header.format)
    return header


def check_image(data: bytes, max_pixels: int) -> ImageHeader:
    """The header of ``data`` when it is an accepted format within ``max_pixels``; ImageRefused otherwise."""
    header = read_header(data)
    if header.pixels > max_pixels:
        msg = (f"the image is {header.width}x{header.height} pixels ({header.pixels / 1e6:.1f} MP); "
               f"at most {max_pixels / 1e6:.1f} MP are accepted — scale it down or crop it to the face")
        raise ImageRefused(413, msg)
    return header
