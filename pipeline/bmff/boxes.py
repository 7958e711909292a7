"""ISO-BMFF boxes: walking headers, the kept-box tree and its bytes, the rewrite's limits."""

from __future__ import annotations

import struct
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from ..errors import CorruptMedia

# Limits of the rewrite. Real files have a handful of top-level boxes (ftyp, moov, one or a few
# mdat, free); a 4 h movie at 120 fps has ~1.7 M video and ~0.7 M audio samples and a movie
# header of ~30 MB. Anything far past these is a crafted layout, refused as corrupt: a remux
# of it would only spend ffmpeg's time on the same absurdity.
MAX_TOP_LEVEL_BOXES = 10_000
MAX_MOOV_BYTES = 64 * 1024 * 1024
MAX_SAMPLES = 16_000_000  # in one track (the movie header cap bounds them all together)
MAX_EMPTY_CHUNKS = 10_000  # chunks that hold no sample, in one track
MAX_TRACKS = 64
MAX_CHILDREN = 4096  # boxes inside one container of the movie header


class UnsupportedLayout(ValueError):
    """The file is valid as far as we know, but not a layout this module rewrites."""


def refuse_absurd(what: str) -> CorruptMedia:
    """The error for a layout no real muxer writes (counts past the limits above).

    Raises:
        Nothing: it returns the error for the caller to raise.
    """
    return CorruptMedia(f"MP4 layout refused: {what}")


@dataclass(slots=True)
class Box:
    """One kept box: a payload (already rebuilt) and kept children, or chunk offsets.

    ``chunks`` (``stco``/``co64`` only) holds the offsets, patched once the new layout is known.
    """

    kind: bytes
    payload: bytes = b""
    children: list[Box] | None = None
    chunks: array[int] | None = None

    def serialize(self) -> bytes:
        """The box as bytes: a 32-bit size header, the payload, then the children."""
        return b"".join(self._parts())

    def _parts(self) -> Iterator[bytes]:
        size = 8 + self.body_size()
        yield struct.pack(">I4s", size, self.kind)
        yield self.payload
        if self.chunks is not None:
            yield chunk_bytes(self.kind, self.chunks)
        for child in self.children or ():
            yield from child._parts()

    def body_size(self) -> int:
        """Bytes after the header (the size of the serialised box minus eight)."""
        size = len(self.payload)
        if self.chunks is not None:
            size += len(self.chunks) * (4 if self.kind == b"stco" else 8)
        return size + sum(8 + c.body_size() for c in self.children or ())

    def find(self, kind: bytes) -> list[Box]:
        """Every box of ``kind`` in this subtree (this box included), in order."""
        found = [self] if self.kind == kind else []
        for child in self.children or ():
            found += child.find(kind)
        return found

    def child(self, kind: bytes) -> Box | None:
        """The first direct child of ``kind``, if any."""
        return next((c for c in self.children or () if c.kind == kind), None)


def chunk_bytes(kind: bytes, offsets: array[int]) -> bytes:
    """Big-endian chunk offsets, 32-bit for ``stco`` and 64-bit for ``co64``.

    Raises:
        UnsupportedLayout: a 32-bit table holding an offset past 4 GB.
    """
    try:
        out = array("I" if kind == b"stco" else "Q", offsets)
    except OverflowError as err:
        raise UnsupportedLayout("a 32-bit chunk offset would overflow") from err
    out.byteswap()
    return out.tobytes()


def walk(fh: IO[bytes], start: int, end: int) -> Iterator[tuple[bytes, int, int, int]]:
    """(type, box start, payload start, box end) for the boxes between ``start`` and ``end``.

    Raises:
        UnsupportedLayout: a box size that does not fit its parent.
    """
    pos = start
    while pos < end:
        if end - pos < 8:
            raise UnsupportedLayout("trailing bytes too short for a box")
        fh.seek(pos)
        header = fh.read(16)
        kind, body, size = _header(header, pos, end)
        yield kind, pos, body, pos + size
        pos += size


def walk_bytes(data: bytes | memoryview, start: int = 0) -> Iterator[tuple[bytes, int, int, int]]:
    """:func:`walk` over bytes in memory (a memoryview walks the movie header without copies).

    Raises:
        UnsupportedLayout: a box size that does not fit its parent.
    """
    pos, end = start, len(data)
    while pos < end:
        if end - pos < 8:
            raise UnsupportedLayout("trailing bytes too short for a box")
        kind, body, size = _header(data[pos:pos + 16], pos, end)
        yield kind, pos, body, pos + size
        pos += size


def _header(header: bytes | memoryview, pos: int, end: int) -> tuple[bytes, int, int]:
    size, kind = struct.unpack(">I4s", header[:8])
    body = pos + 8
    if size == 1:
        if len(header) < 16:
            raise UnsupportedLayout("truncated box header")
        size = struct.unpack(">Q", header[8:16])[0]
        body = pos + 16
    elif size == 0:
        size = end - pos
    if size < body - pos or pos + size > end:
        raise UnsupportedLayout(f"box {kind!r} does not fit its parent")
    return kind, body, size


def top_level_boxes(fh: IO[bytes], end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, start, size) of each box from the current position to ``end``, leniently.

    Unlike :func:`walk` (the rewriter's, which refuses any box that does not fit), a box that
    runs past ``end`` is yielded as declared: probing uses that to tell a file cut short. The
    walk stops quietly at a header it cannot read.
    """
    pos = fh.tell()
    while pos + 8 <= end:
        fh.seek(pos)
        header = fh.read(16)
        if len(header) < 8:
            return
        size, kind = struct.unpack(">I4s", header[:8])
        if size == 1 and len(header) >= 16:
            size = struct.unpack(">Q", header[8:16])[0]
        elif size == 0:
            size = end - pos
        if size < 8:
            return
        yield kind, pos, size
        pos += size


def exact(kind: bytes, data: bytes, need: int) -> bytes:
    """The first ``need`` bytes of a payload: what its fields take, nothing riding behind.

    Raises:
        UnsupportedLayout: the payload is shorter than its fields.
    """
    if len(data) < need:
        raise UnsupportedLayout(f"{kind.decode('latin-1')!r} shorter than its fields")
    return data[:need]


def u8(data: bytes, at: int) -> int:
    """One byte as an int.

    Raises:
        UnsupportedLayout: past the end.
    """
    if at >= len(data):
        raise UnsupportedLayout("a field past the end of its box")
    return data[at]


def u16(data: bytes, at: int) -> int:
    """A big-endian 16-bit field.

    Raises:
        UnsupportedLayout: past the end.
    """
    return int.from_bytes(exact(b"u16 ", data[at:at + 2], 2), "big")


def u32(data: bytes, at: int) -> int:
    """A big-endian 32-bit field.

    Raises:
        UnsupportedLayout: past the end.
    """
    return int.from_bytes(exact(b"u32 ", data[at:at + 4], 4), "big")


def full_box(version: int, flags: int = 0) -> bytes:
    """A version/flags word."""
    return struct.pack(">I", (version << 24) | flags)


def version_of(kind: bytes, data: bytes, allowed: tuple[int, ...] = (0, 1)) -> int:
    """The version byte of a full box, checked against the versions we know.

    Raises:
        UnsupportedLayout: a version this module does not know.
    """
    version = u8(data, 0)
    if version not in allowed:
        raise UnsupportedLayout(f"{kind.decode('latin-1')!r} version {version}")
    return version


def big_endian(typecode: str, data: bytes) -> array[int]:
    """A big-endian table of fixed-width integers as a native array."""
    table = array(typecode)
    table.frombytes(data)
    if table.itemsize > 1:
        table.byteswap()
    return table
