"""Remove metadata from JPEG, PNG, WebP and GIF files without re-encoding the picture.

A pass-through output is the source's own compressed picture data, copied byte for byte; only
the metadata segments (EXIF, XMP, IPTC, comments) and anything appended after the picture (a
Motion Photo's MP4, a gain map) are left out.
"""

from __future__ import annotations

import struct

from ..errors import CorruptMedia

# APPn segments kept: JFIF, the ICC profile (only an sRGB one can reach a pass-through: the
# planner converts any other), and Adobe's (its colour-transform flag changes how the pixels
# decode). Dropped: EXIF and XMP (APP1: GPS, serial numbers, maker notes, a Motion Photo's
# description), MPF (APP2: the index of a gain map or second picture), IPTC (APP13), comments.
_JPEG_KEEP_APP = {0xE0: b"JFIF\0", 0xE2: b"ICC_PROFILE\0", 0xEE: b"Adobe"}
# Markers without a length field.
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}


def strip_metadata(data: bytes, fmt: str) -> bytes:
    """Remove EXIF/XMP/IPTC/comments without re-encoding, and anything after the picture.

    A JPEG keeps everything up to its first end-of-image marker minus the metadata segments, so
    a Motion Photo's appended MP4 and an Ultra HDR gain map are dropped with it; the entropy-coded
    scans are copied byte for byte.

    Raises:
        CorruptMedia: the marker or chunk structure is broken.
    """
    if fmt == "jpeg":
        return _strip_jpeg(data)
    if fmt == "png":
        return _strip_png(data)
    if fmt == "webp":
        return _strip_webp(data)
    if fmt == "gif":
        return _strip_gif(data)
    raise CorruptMedia(f"cannot remove metadata from a {fmt} file without re-encoding it")


def _strip_jpeg(data: bytes) -> bytes:
    if data[:2] != b"\xff\xd8":
        raise CorruptMedia("not a JPEG stream")
    out = bytearray(data[:2])
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise CorruptMedia("malformed JPEG marker stream")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            out += data[pos:pos + 2]
            pos += 2
            continue
        if marker == 0xDA:  # start of scan: the compressed data, to the first end of image
            eoi = data.find(b"\xff\xd9", pos)
            # 0xFF is always followed by 0x00 or a restart marker inside entropy-coded data, so
            # the first FFD9 is the end of this picture; what follows is another file.
            out += data[pos:eoi + 2] if eoi >= 0 else data[pos:]
            return bytes(out)
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        segment = data[pos:pos + 2 + length]
        if length < 2 or len(segment) < 2 + length:
            raise CorruptMedia("truncated JPEG segment")
        is_meta = 0xE0 <= marker <= 0xEF or marker == 0xFE
        keep_id = _JPEG_KEEP_APP.get(marker)
        if not is_meta or (keep_id is not None and segment[4:4 + len(keep_id)] == keep_id):
            out += segment
        pos += 2 + length
    raise CorruptMedia("JPEG without picture data")


# Text chunks (tEXt/zTXt/iTXt: XMP, ImageMagick's "Raw profile type exif", comments), EXIF,
# and the modification time. Colour chunks (iCCP, sRGB, gAMA, cHRM) stay: they change how the
# pixels look.
_PNG_DROP = {b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"tIME"}


def _strip_png(data: bytes) -> bytes:
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise CorruptMedia("not a PNG stream")
    out = bytearray(data[:8])
    pos = 8
    while pos + 12 <= len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        kind = data[pos + 4:pos + 8]
        chunk = data[pos:pos + 12 + length]
        if len(chunk) < 12 + length:
            raise CorruptMedia("truncated PNG chunk")
        if kind not in _PNG_DROP:
            out += chunk
        pos += 12 + length
        if kind == b"IEND":
            return bytes(out)
    raise CorruptMedia("PNG without an end chunk")


def _strip_webp(data: bytes) -> bytes:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise CorruptMedia("not a WebP stream")
    chunks = bytearray()
    pos = 12
    vp8x_at = None
    end = min(len(data), 8 + struct.unpack("<I", data[4:8])[0])
    while pos + 8 <= end:
        kind = data[pos:pos + 4]
        size = struct.unpack("<I", data[pos + 4:pos + 8])[0]
        chunk = data[pos:pos + 8 + size + (size & 1)]
        if len(chunk) < 8 + size:
            raise CorruptMedia("truncated WebP chunk")
        if kind not in (b"EXIF", b"XMP "):
            if kind == b"VP8X":
                vp8x_at = len(chunks)
            chunks += chunk
        pos += 8 + size + (size & 1)
    if vp8x_at is not None:
        chunks[vp8x_at + 8] &= ~0x0C & 0xFF  # clear the EXIF (0x08) and XMP (0x04) flags
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WEBP" + bytes(chunks)


# Application extensions kept in a GIF: the loop count (NETSCAPE2.0 and its ANIMEXTS twin).
_GIF_KEEP_APP = (b"NETSCAPE2.0", b"ANIMEXTS1.0")


def _gif_sub_blocks_end(data: bytes, pos: int) -> int:
    """Index just past the sub-block chain starting at ``pos`` (its zero-length terminator)."""
    while True:
        if pos >= len(data):
            raise CorruptMedia("truncated GIF data block")
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos


def _strip_gif(data: bytes) -> bytes:
    """Drop comment extensions and application extensions other than the loop count (XMP)."""
    if data[:6] not in (b"GIF87a", b"GIF89a") or len(data) < 13:
        raise CorruptMedia("not a GIF stream")
    flags = data[10]
    pos = 13 + (3 * (2 << (flags & 7)) if flags & 0x80 else 0)
    out = bytearray(data[:pos])
    while pos < len(data):
        block = data[pos]
        if block == 0x3B:  # trailer: anything after it is another file
            out.append(0x3B)
            return bytes(out)
        if block == 0x2C:  # image descriptor, optional local colour table, LZW data
            if pos + 10 > len(data):
                raise CorruptMedia("truncated GIF image descriptor")
            local = data[pos + 9]
            start = pos
            pos += 10 + (3 * (2 << (local & 7)) if local & 0x80 else 0) + 1
            pos = _gif_sub_blocks_end(data, pos)
            out += data[start:pos]
        elif block == 0x21:  # extension
            label = data[pos + 1] if pos + 1 < len(data) else -1
            start = pos
            end = _gif_sub_blocks_end(data, pos + 2)
            keep = label in (0xF9, 0x01) or (
                label == 0xFF and data[pos + 3:pos + 14] in _GIF_KEEP_APP)
            if keep:
                out += data[start:end]
            pos = end
        else:
            raise CorruptMedia("malformed GIF block structure")
    raise CorruptMedia("GIF without a trailer")
