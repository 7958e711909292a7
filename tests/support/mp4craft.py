"""Craft hostile MP4s at test time: parse a real file's box tree, edit it, write it back.

Written independently of pipeline.bmff (the code under test): a plain recursive tree where a
node is a box (type, fixed head bytes, children or payload) plus raw ``tail`` bytes after its
children. Chunk offsets are shifted when the movie header before the ``mdat`` changes size.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf", b"udta", b"wave"}
# Fixed bytes before the children, for boxes that have both.
HEADS = {b"stsd": 8, b"avc1": 78, b"hvc1": 78, b"hev1": 78, b"vp09": 78, b"av01": 78,
         b"mp4a": 28, b"Opus": 28}


@dataclass
class Node:
    kind: bytes
    head: bytes = b""
    payload: bytes = b""
    children: list[Node] = field(default_factory=list)
    tail: bytes = b""

    def to_bytes(self) -> bytes:
        body = self.head + self.payload + b"".join(c.to_bytes() for c in self.children)
        body += self.tail
        return struct.pack(">I4s", 8 + len(body), self.kind) + body

    def walk(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            yield from child.walk()

    def find(self, kind: bytes) -> list[Node]:
        return [n for n in self.walk() if n.kind == kind]

    def first(self, kind: bytes) -> Node:
        return self.find(kind)[0]


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def parse_boxes(data: bytes) -> list[Node]:
    nodes = []
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        nodes.append(_node(kind, data[pos + 8:pos + size]))
        pos += size
    return nodes


def _node(kind: bytes, body: bytes) -> Node:
    if kind in CONTAINERS:
        return Node(kind, children=parse_boxes(body))
    if kind in HEADS:
        head = HEADS[kind]
        if kind in (b"mp4a", b"Opus") and body[8:10] == b"\x00\x01":
            head += 16  # QuickTime sound description v1
        return Node(kind, head=body[:head], children=parse_boxes(body[head:]))
    return Node(kind, payload=body)


class Movie:
    """A whole file as top-level nodes; :meth:`to_bytes` re-points the chunk offsets."""

    def __init__(self, data: bytes) -> None:
        self.top = parse_boxes(data)
        self._moov_size = len(self.moov.to_bytes())

    @property
    def moov(self) -> Node:
        return next(n for n in self.top if n.kind == b"moov")

    def to_bytes(self) -> bytes:
        kinds = [n.kind for n in self.top]
        if kinds.index(b"moov") < kinds.index(b"mdat"):
            delta = len(self.moov.to_bytes()) - self._moov_size
            for stco in self.moov.find(b"stco"):
                count = struct.unpack(">I", stco.payload[4:8])[0]
                offsets = struct.unpack(f">{count}I", stco.payload[8:8 + 4 * count])
                stco.payload = (stco.payload[:8]
                                + struct.pack(f">{count}I", *(o + delta for o in offsets))
                                + stco.payload[8 + 4 * count:])
            self._moov_size += delta
        return b"".join(n.to_bytes() for n in self.top)


def _full(version: int, payload: bytes) -> bytes:
    return struct.pack(">I", version << 24) + payload


def _big_endian(typecode: str, values: array[int]) -> bytes:
    table = array(typecode, values)
    table.byteswap()
    return table.tobytes()


AVCC = bytes([1, 66, 0, 30, 0xFF, 0xE1, 0, 4, 0x67, 0x42, 0, 30, 1, 0, 4, 0x68, 0xCE, 0x38,
              0x80])
AVC1_HEAD = (bytes(6) + struct.pack(">H", 1) + bytes(16) + struct.pack(">HH", 320, 180)
             + struct.pack(">II", 0x480000, 0x480000) + bytes(4) + struct.pack(">H", 1)
             + bytes(32) + struct.pack(">Hh", 24, -1))


def synthetic_movie(path: Path, *, sample_bytes: int, samples: int, empty_mdats: int = 0,
                    empty_chunks: int = 0, mdat_gap_bytes: int = 0) -> None:
    """A one-track "H.264" movie no muxer writes, its tables built in bulk: ``samples``
    samples of ``sample_bytes`` each, one per chunk, in one ``mdat`` (after
    ``mdat_gap_bytes`` of bytes no sample uses, left sparse); before it ``empty_mdats`` empty
    ``mdat`` boxes and ``empty_chunks`` chunks holding no sample, each pointing at one of
    them. The ``moov`` comes last. The samples do not decode: this is for layouts."""
    ftyp = box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2avc1mp41")
    with path.open("wb") as fh:
        fh.write(ftyp)
        empty_at = [fh.tell() + 8 * i + 8 for i in range(empty_mdats)]
        fh.write(box(b"mdat", b"") * empty_mdats)
        payload = samples * sample_bytes + mdat_gap_bytes
        start = fh.tell() + 16
        fh.write(struct.pack(">I4sQ", 1, b"mdat", 16 + payload))
        fh.write(b"\x01" * min(mdat_gap_bytes, 4096))
        fh.seek(start + payload)
        first = start + mdat_gap_bytes
        offsets = array("Q", (empty_at[i % max(1, empty_mdats)] if empty_mdats else first
                              for i in range(empty_chunks)))
        offsets.extend(range(first, first + samples * sample_bytes, sample_bytes))
        fh.write(_moov(offsets, samples, sample_bytes, empty_chunks))
    with path.open("r+b") as fh:  # the samples' bytes, real (not sparse)
        fh.seek(start + mdat_gap_bytes)
        block = bytes(range(256)) * 4096
        left = samples * sample_bytes
        while left:
            fh.write(block[:min(len(block), left)])
            left -= min(len(block), left)


def _moov(offsets: array[int], samples: int, sample_bytes: int, empty_chunks: int) -> bytes:
    co64 = offsets[-1] >= 2**32 if offsets else False
    runs = [(1, 0), (empty_chunks + 1, 1)] if empty_chunks else [(1, 1)]
    stbl = b"".join([
        box(b"stsd", _full(0, struct.pack(">I", 1) + box(b"avc1", AVC1_HEAD + box(b"avcC", AVCC)))),
        box(b"stts", _full(0, struct.pack(">III", 1, samples, 1))),
        box(b"stsc", _full(0, struct.pack(">I", len(runs))
                              + b"".join(struct.pack(">III", f, p, 1) for f, p in runs))),
        box(b"stsz", _full(0, struct.pack(">II", 0, samples)
                              + _big_endian("I", array("I", [sample_bytes]) * samples))),
        box(b"co64" if co64 else b"stco",
            _full(0, struct.pack(">I", len(offsets)) + _big_endian("Q" if co64 else "I",
                                                                     offsets))),
    ])
    minf = box(b"minf", box(b"vmhd", struct.pack(">I", 1) + bytes(8))
               + box(b"dinf", box(b"dref", _full(0, struct.pack(">I", 1)
                                                 + box(b"url ", struct.pack(">I", 1)))))
               + box(b"stbl", stbl))
    mdia = box(b"mdia", box(b"mdhd", _full(0, bytes(8) + struct.pack(">II", 30, samples)
                                          + struct.pack(">HH", 0x55C4, 0)))
               + box(b"hdlr", _full(0, bytes(4) + b"vide" + bytes(12) + b"\x00")) + minf)
    tkhd = box(b"tkhd", struct.pack(">I", 3) + bytes(8) + struct.pack(">II", 1, 0)
               + struct.pack(">I", samples) + bytes(16) + _IDENTITY
               + struct.pack(">II", 320 << 16, 180 << 16))
    mvhd = box(b"mvhd", _full(0, bytes(8) + struct.pack(">II", 30, samples)
                              + struct.pack(">IH", 0x10000, 0x100) + bytes(10) + _IDENTITY
                              + bytes(24) + struct.pack(">I", 2)))
    return box(b"moov", mvhd + box(b"trak", tkhd + mdia))


_IDENTITY = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
