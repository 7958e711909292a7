"""Huge JPEGs made at test time: valid baseline files of any size, a few megabytes on disk.

:func:`grey_jpeg` writes a YCbCr 4:2:0 baseline JPEG whose every block is flat mid-grey. Its
Huffman tables hold one 1-bit code each (DC difference 0, end of block), so each 8x8 block is
two bits and the whole scan is zero bytes: a 28000x14000 photo is 2.3 MB and built in
milliseconds, where Pillow would need the 1.2 GB picture in memory to encode it.
"""

from __future__ import annotations

import struct
from pathlib import Path

_MCU_SIDE = 16  # 4:2:0: one MCU is 16x16 pixels, four Y blocks and one Cb, one Cr
_BITS_PER_MCU = 6 * 2  # six blocks, each "0" (DC difference 0) then "0" (end of block)


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">HH", 0xFF00 | marker, len(payload) + 2) + payload


def grey_jpeg(path: Path, width: int, height: int) -> Path:
    """Write a valid mid-grey ``width`` x ``height`` baseline JPEG (3 components, 4:2:0)."""
    quant = _segment(0xDB, b"\x00" + b"\x01" * 64)
    frame = _segment(0xC0, struct.pack(">BHHB", 8, height, width, 3)
                     + bytes([1, 0x22, 0, 2, 0x11, 0, 3, 0x11, 0]))
    one_code = bytes([1] + [0] * 15) + b"\x00"  # one code of length 1, for symbol 0
    tables = _segment(0xC4, b"\x00" + one_code + b"\x10" + one_code)  # DC 0, AC 0
    scan = _segment(0xDA, bytes([3, 1, 0x00, 2, 0x00, 3, 0x00, 0, 63, 0]))
    mcus = -(-width // _MCU_SIDE) * -(-height // _MCU_SIDE)
    whole, rest = divmod(mcus * _BITS_PER_MCU, 8)
    data = b"\x00" * whole + (bytes([0xFF >> rest]) if rest else b"")  # pad with 1 bits
    path.write_bytes(b"\xff\xd8" + quant + frame + tables + scan + data + b"\xff\xd9")
    return path
