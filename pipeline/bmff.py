"""Rewrite an MP4/MOV keeping only the boxes a player needs: pass-through without smuggled bytes.

A pass-through used to deliver the source file byte for byte, so anything a client appended
travelled with it: an XMP ``uuid`` box with GPS coordinates, a ``free`` box holding an HTML page
and a ZIP, a ``udta`` with a ``©xyz`` location inside the ``moov``, bytes in the ``mdat`` that no
sample points at. :func:`strip_boxes` writes a new file from an allow-list instead:

- top level: ``ftyp`` (rebuilt from its brands), ``moov`` and one ``mdat``;
- inside the ``moov``: the movie and track headers, edit lists, and each track's media
  header, handler (its free-text name emptied), media information and sample tables;
  ``udta``, ``meta``, ``uuid``, ``free``, ``tref`` and everything else unknown are dropped;
- fixed-size headers and sample tables are cut to the size their version and entry counts
  give, so nothing rides behind their fields; the data reference is rebuilt as "in this file";
- the ``mdat`` holds exactly the bytes of the chunks the sample tables point at, copied
  unchanged and in their original order; the chunk offsets (``stco``/``co64``) are patched.

Sample bytes, sample sizes, timing and edit lists are the source's own (no ffmpeg runs, no
re-muxing). The sample descriptions (``stsd``: codec configuration) are kept whole.

Anything this module does not understand (fragmented MP4, a compressed movie header, data in
another file, chunks outside the ``mdat`` or overlapping) raises :class:`UnsupportedLayout`;
the caller then re-muxes with ffmpeg instead.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

# Containers we descend into, each with the children it keeps (everything else is dropped).
_KEEP: dict[bytes, frozenset[bytes]] = {
    b"moov": frozenset({b"mvhd", b"trak"}),
    b"trak": frozenset({b"tkhd", b"edts", b"mdia"}),
    b"edts": frozenset({b"elst"}),
    b"mdia": frozenset({b"mdhd", b"hdlr", b"minf"}),
    b"minf": frozenset({b"vmhd", b"smhd", b"hdlr", b"dinf", b"stbl"}),
    b"stbl": frozenset({b"stsd", b"stts", b"ctts", b"stss", b"stsc", b"stsz", b"stz2",
                        b"stco", b"co64", b"sdtp", b"sgpd", b"sbgp", b"cslg", b"stps"}),
}
# Boxes that mean a layout this module does not rewrite (fragments, compressed movie header).
_REFUSE = frozenset({b"moof", b"mfra", b"mvex", b"sidx", b"ssix", b"styp", b"cmov", b"emsg",
                     b"prft", b"meco"})
# Payload bytes after the version/flags word of fixed-size full boxes, by version.
_FIXED = {b"mvhd": (96, 108), b"tkhd": (80, 92), b"mdhd": (20, 32), b"vmhd": (8, 8),
          b"smhd": (4, 4)}
# Per-entry sizes of the sample tables (after version/flags and the entry count).
_TABLE_ENTRY = {b"stts": 8, b"ctts": 8, b"stss": 4, b"stsc": 12, b"stco": 4, b"co64": 8,
                b"stps": 4}
_HANDLER_FIXED = 24  # version/flags, pre_defined (QT: component type), type, 3 x reserved
_BRAND_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ")
_MAX_BRANDS = 16
_MAX_MOOV_BYTES = 256 * 1024 * 1024  # a 4 h 120 fps movie header is ~30 MB
_COPY_BYTES = 1024 * 1024


class UnsupportedLayout(ValueError):
    """The file is valid as far as we know, but not a layout this module rewrites."""


@dataclass(slots=True)
class _Box:
    kind: bytes
    payload: bytes = b""
    children: list[_Box] | None = None
    chunks: list[int] = field(default_factory=list)  # stco/co64: the chunk offsets

    def serialize(self) -> bytes:
        if self.kind in (b"stco", b"co64"):
            fmt = ">I" if self.kind == b"stco" else ">Q"
            body = self.payload[:8] + b"".join(struct.pack(fmt, o) for o in self.chunks)
        elif self.children is not None:
            body = self.payload + b"".join(c.serialize() for c in self.children)
        else:
            body = self.payload
        return struct.pack(">I4s", 8 + len(body), self.kind) + body


def strip_boxes(src: Path, out: Path) -> None:
    """Write ``src`` to ``out`` keeping only what a player needs (see the module docstring).

    Args:
        src: an MP4 or MOV file (``moov`` and ``mdat`` complete: probing checked that).
        out: where to write; replaced whole, never left half-written.

    Raises:
        UnsupportedLayout: a layout this module does not rewrite (the caller re-muxes).
        OSError: reading or writing failed.
    """
    tmp = out.with_name(f".{out.name}.part")
    try:
        _rewrite(src, tmp)
        os.replace(tmp, out)
    except (struct.error, IndexError) as err:
        tmp.unlink(missing_ok=True)
        raise UnsupportedLayout(f"malformed box: {err}") from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _rewrite(src: Path, tmp: Path) -> None:
    size = src.stat().st_size
    with src.open("rb") as fh:
        top = list(_walk(fh, 0, size))
        ftyp, moov, mdats, moov_first = _top_level(fh, top)
        tracks = [c for c in moov.children or [] if c.kind == b"trak"]
        if not tracks:
            raise UnsupportedLayout("the movie has no tracks")
        spans = _chunk_spans(tracks, mdats)
        payload_bytes = sum(length for _, length in spans)
        mdat_header = 8 if payload_bytes + 8 < 2**32 else 16
        head = ftyp.serialize() if ftyp is not None else b""
        moov_bytes = len(moov.serialize())
        base = len(head) + (moov_bytes if moov_first else 0) + mdat_header
        new_offset: dict[int, int] = {}
        pos = base
        for offset, length in spans:
            new_offset[offset] = pos
            pos += length
        for stco in _find(moov, b"stco") + _find(moov, b"co64"):
            stco.chunks = [new_offset[o] for o in stco.chunks]
            if stco.kind == b"stco" and any(o >= 2**32 for o in stco.chunks):
                raise UnsupportedLayout("a 32-bit chunk offset would overflow")
        moov_out = moov.serialize()
        assert len(moov_out) == moov_bytes  # offsets are patched in place, sizes unchanged
        with tmp.open("wb") as dst:
            dst.write(head)
            if moov_first:
                dst.write(moov_out)
            if mdat_header == 8:
                dst.write(struct.pack(">I4s", 8 + payload_bytes, b"mdat"))
            else:
                dst.write(struct.pack(">I4sQ", 1, b"mdat", 16 + payload_bytes))
            for offset, length in spans:
                _copy_range(fh, dst, offset, length)
            if not moov_first:
                dst.write(moov_out)


# --------------------------------------------------------------------------- reading boxes


def _walk(fh: IO[bytes], start: int, end: int) -> Iterator[tuple[bytes, int, int, int]]:
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
        yield kind, pos, body, pos + size
        pos += size


def top_level_boxes(fh: IO[bytes], end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, start, size) of each box from the current position to ``end``, leniently.

    Unlike :func:`_walk` (the rewriter's, which refuses any box that does not fit), a box that
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


def _top_level(fh: IO[bytes], top: list[tuple[bytes, int, int, int]]
               ) -> tuple[_Box | None, _Box, list[tuple[int, int]], bool]:
    """(rebuilt ftyp, filtered moov, mdat payload ranges, moov before the first mdat)."""
    ftyp: _Box | None = None
    moov: _Box | None = None
    mdats: list[tuple[int, int]] = []
    moov_first = False
    for kind, start, body, end in top:
        if kind in _REFUSE:
            raise UnsupportedLayout(f"{kind.decode('latin-1')!r} box (fragmented or compressed)")
        if kind == b"ftyp":
            if ftyp is not None or start != 0:
                raise UnsupportedLayout("ftyp not first or repeated")
            fh.seek(body)
            ftyp = _ftyp(fh.read(min(end - body, 8 + 4 * 64)))
        elif kind == b"moov":
            if moov is not None:
                raise UnsupportedLayout("more than one moov")
            if end - body > _MAX_MOOV_BYTES:
                raise UnsupportedLayout("movie header too large")
            fh.seek(body)
            moov = _parse(b"moov", fh.read(end - body))
            moov_first = not mdats
        elif kind == b"mdat":
            mdats.append((body, end))
    if moov is None or not mdats:
        raise UnsupportedLayout("no moov or no mdat")
    return ftyp, moov, mdats, moov_first


def _ftyp(data: bytes) -> _Box:
    """The major brand, minor version and the well-formed compatible brands (no free text)."""
    if len(data) < 8:
        raise UnsupportedLayout("short ftyp")
    brands: list[bytes] = []
    for i in range(8, len(data) - 3, 4):
        brand = data[i:i + 4]
        if set(brand) <= _BRAND_CHARS and brand not in brands and len(brands) < _MAX_BRANDS:
            brands.append(brand)
    return _Box(b"ftyp", data[:8] + b"".join(brands))


def _parse(kind: bytes, data: bytes) -> _Box:
    """One kept box, its children filtered (containers) or its payload trimmed (leaves)."""
    keep = _KEEP.get(kind)
    if keep is not None:
        children = []
        for child, _start, body, end in _walk_bytes(data):
            if child in _REFUSE:
                raise UnsupportedLayout(f"{child.decode('latin-1')!r} box in {kind!r}")
            if child in keep:
                children.append(_parse(child, data[body:end]))
        return _Box(kind, b"", children)
    return _leaf(kind, data)


def _walk_bytes(data: bytes) -> Iterator[tuple[bytes, int, int, int]]:
    return _walk(io.BytesIO(data), 0, len(data))


def _leaf(kind: bytes, data: bytes) -> _Box:
    """A kept leaf box, cut to the size its own fields give."""
    if kind in _FIXED:
        need = 4 + _FIXED[kind][1 if data[:1] == b"\x01" else 0]
        return _Box(kind, _exact(kind, data, need))
    if kind == b"hdlr":
        # The handler name is free text (ffmpeg writes "VideoHandler"): an empty name is a
        # valid C string (ISO) and a valid Pascal string (QuickTime).
        return _Box(kind, _exact(kind, data, _HANDLER_FIXED) + b"\x00")
    if kind == b"dinf":
        return _dinf(data)
    if kind in (b"stco", b"co64"):
        count = _count(data)
        width = _TABLE_ENTRY[kind]
        body = _exact(kind, data, 8 + width * count)
        fmt = f">{count}{'I' if kind == b'stco' else 'Q'}"
        return _Box(kind, body[:8], chunks=list(struct.unpack(fmt, body[8:])))
    if kind in _TABLE_ENTRY:
        return _Box(kind, _exact(kind, data, 8 + _TABLE_ENTRY[kind] * _count(data)))
    if kind == b"elst":
        width = 20 if data[:1] == b"\x01" else 12
        return _Box(kind, _exact(kind, data, 8 + width * _count(data)))
    if kind == b"stsz":
        if len(data) < 12:
            raise UnsupportedLayout("short stsz")
        constant, count = struct.unpack(">II", data[4:12])
        return _Box(kind, _exact(kind, data, 12 + (0 if constant else 4 * count)))
    if kind == b"stz2":
        if len(data) < 12:
            raise UnsupportedLayout("short stz2")
        bits, count = data[7], struct.unpack(">I", data[8:12])[0]
        return _Box(kind, _exact(kind, data, 12 + (bits * count + 7) // 8))
    return _Box(kind, data)  # stsd, sdtp, sgpd, sbgp, cslg: kept whole


def _count(data: bytes) -> int:
    if len(data) < 8:
        raise UnsupportedLayout("short sample table")
    count: int = struct.unpack(">I", data[4:8])[0]
    return count


def _exact(kind: bytes, data: bytes, need: int) -> bytes:
    if len(data) < need:
        raise UnsupportedLayout(f"{kind.decode('latin-1')!r} shorter than its fields")
    return data[:need]


def _dinf(data: bytes) -> _Box:
    """A data reference that says "the media is in this file", after checking that it is."""
    for kind, _, body, end in _walk_bytes(data):
        if kind != b"dref":
            continue
        dref = data[body:end]
        for entry, _, ebody, _end in _walk(io.BytesIO(dref), 8, len(dref)):
            flags = dref[ebody + 1:ebody + 4] if ebody + 4 <= len(dref) else b""
            if len(flags) < 3 or not flags[2] & 1:
                raise UnsupportedLayout(f"media data in another file ({entry!r} reference)")
    url = _Box(b"url ", b"\x00\x00\x00\x01")
    dref_box = _Box(b"dref", b"\x00\x00\x00\x00" + struct.pack(">I", 1), [url])
    return _Box(b"dinf", b"", [dref_box])


def _find(box: _Box, kind: bytes) -> list[_Box]:
    found = [box] if box.kind == kind else []
    for child in box.children or []:
        found += _find(child, kind)
    return found


# --------------------------------------------------------------------------- chunks


def _chunk_spans(tracks: list[_Box], mdats: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Every chunk of every track as (offset, length), in file order, checked to lie inside an
    mdat and not to overlap another.

    Raises:
        UnsupportedLayout: tables that disagree, or chunks outside the mdat or overlapping.
    """
    chunks: dict[int, int] = {}
    for trak in tracks:
        stbls = _find(trak, b"stbl")
        tables = {b.kind: b for b in stbls[0].children or []} if len(stbls) == 1 else {}
        offsets = tables.get(b"stco") or tables.get(b"co64")
        sizes = tables.get(b"stsz") or tables.get(b"stz2")
        stsc = tables.get(b"stsc")
        if offsets is None or sizes is None or stsc is None or b"stsd" not in tables:
            raise UnsupportedLayout("a track without its sample tables")
        sample_sizes = _sample_sizes(sizes, sum(hi - lo for lo, hi in mdats))
        per_chunk = _samples_per_chunk(stsc.payload, len(offsets.chunks))
        if sum(per_chunk) != len(sample_sizes):
            raise UnsupportedLayout("stsc and stsz disagree on the sample count")
        i = 0
        for offset, n in zip(offsets.chunks, per_chunk, strict=True):
            length = sum(sample_sizes[i:i + n])
            i += n
            if chunks.get(offset, length) != length:
                if length == 0:
                    continue  # an empty chunk at another chunk's offset: same new offset
                if chunks[offset] != 0:
                    raise UnsupportedLayout("two chunks at one offset")
            chunks[offset] = length
    spans = sorted(chunks.items())
    end_prev = -1
    for offset, length in spans:
        if offset < end_prev:
            raise UnsupportedLayout("overlapping chunks")
        if not any(lo <= offset and offset + length <= hi for lo, hi in mdats):
            raise UnsupportedLayout("a chunk outside the mdat")
        end_prev = offset + length
    return spans


def _sample_sizes(box: _Box, max_bytes: int) -> list[int]:
    data = box.payload
    if box.kind == b"stsz":
        constant, count = struct.unpack(">II", data[4:12])
        if constant:
            if constant == 1:
                # Old QuickTime PCM counts audio frames, not bytes, in its sample sizes.
                raise UnsupportedLayout("constant 1-byte samples (legacy QuickTime audio)")
            if constant * count > max_bytes:
                raise UnsupportedLayout("more sample bytes than the file holds")
            return [constant] * count
        return list(struct.unpack(f">{count}I", data[12:12 + 4 * count]))
    bits, count = data[7], struct.unpack(">I", data[8:12])[0]
    if bits == 4:
        nibbles = [n for b in data[12:] for n in (b >> 4, b & 15)]
        return nibbles[:count]
    if bits == 8:
        return list(data[12:12 + count])
    if bits == 16:
        return list(struct.unpack(f">{count}H", data[12:12 + 2 * count]))
    raise UnsupportedLayout(f"stz2 field size {bits}")


def _samples_per_chunk(stsc: bytes, chunk_count: int) -> list[int]:
    """Samples in each chunk, from the sample-to-chunk runs."""
    entries = _count(stsc)
    runs = [struct.unpack(">III", stsc[8 + 12 * i:20 + 12 * i]) for i in range(entries)]
    out: list[int] = []
    for i, (first, per, _) in enumerate(runs):
        last = runs[i + 1][0] - 1 if i + 1 < len(runs) else chunk_count
        if first < 1 or first != len(out) + 1 or last < first - 1 or last > chunk_count:
            raise UnsupportedLayout("sample-to-chunk runs out of order")
        out += [per] * (last - first + 1)
    if len(out) != chunk_count:
        raise UnsupportedLayout("sample-to-chunk runs do not cover every chunk")
    return out


def _copy_range(src: IO[bytes], dst: IO[bytes], offset: int, length: int) -> None:
    src.seek(offset)
    left = length
    while left:
        block = src.read(min(_COPY_BYTES, left))
        if not block:
            raise UnsupportedLayout("the file ends inside a chunk")
        dst.write(block)
        left -= len(block)


__all__ = ["UnsupportedLayout", "strip_boxes", "top_level_boxes"]
