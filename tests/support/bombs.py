"""Decode bombs made at test time: valid images that are tiny on disk and huge once decoded.

:func:`zero_png` writes a complete, valid PNG of any size whose pixels are all zero, in a few
megabytes and a fraction of a second: its IDAT is one fixed-Huffman DEFLATE block built by hand
(a literal zero, then "repeat 258 bytes at distance 1" over and over, 13 bits each), which
zlib would need seconds of CPU per gigabyte to produce.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type -> samples per pixel
_LITERAL_0 = "00110000"            # fixed Huffman code of literal byte 0
_MATCH_258 = "11000101" + "00000"  # length 258 (code 285, no extra bits), distance 1 (code 0)
_END_OF_BLOCK = "0000000"


def _bits_to_bytes(bits: str) -> bytes:
    """DEFLATE fills each byte from its least significant bit."""
    bits += "0" * (-len(bits) % 8)
    return bytes(int(bits[i:i + 8][::-1], 2) for i in range(0, len(bits), 8))


def zlib_zeros(n: int) -> bytes:
    """A zlib stream that inflates to ``n`` (> 259) zero bytes, about 1/160 of their size."""
    reps, rest = divmod(n - 1, 258)
    if reps < 1:
        raise ValueError("n must be more than 259")
    # Header (final block, fixed Huffman), the first literal and one match: 24 bits, so the
    # matches after it start on a byte boundary and repeat every 8 matches (13 bytes).
    head = _bits_to_bytes("110" + _LITERAL_0 + _MATCH_258)
    body = _bits_to_bytes(_MATCH_258 * 8) * ((reps - 1) // 8)
    tail = _bits_to_bytes(_MATCH_258 * ((reps - 1) % 8) + _LITERAL_0 * rest + _END_OF_BLOCK)
    adler = ((n % 65521) << 16) | 1  # Adler-32 of n zero bytes
    return b"\x78\x01" + head + body + tail + struct.pack(">I", adler)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def zero_png(path: Path, width: int, height: int, *, bit_depth: int = 8,
             color_type: int = 2) -> Path:
    """Write a valid all-black PNG (colour type 2 = RGB, 6 = RGBA, 0 = grey, 4 = grey+alpha)."""
    row_bytes = 1 + width * _CHANNELS[color_type] * bit_depth // 8  # filter byte + samples
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
                     + _chunk(b"IDAT", zlib_zeros(row_bytes * height)) + _chunk(b"IEND", b""))
    return path
