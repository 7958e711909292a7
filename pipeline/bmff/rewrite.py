"""The pass-through rewrite: a new MP4/MOV from the source's samples and an allow-listed moov."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import IO

from .boxes import (
    MAX_CHILDREN,
    MAX_MOOV_BYTES,
    MAX_TOP_LEVEL_BOXES,
    MAX_TRACKS,
    Box,
    UnsupportedLayout,
    refuse_absurd,
    walk,
    walk_bytes,
)
from .entries import stsd
from .headers import (
    cslg,
    dinf,
    elst,
    handler_type,
    hdlr,
    mdhd,
    mvhd,
    sbgp,
    sdtp,
    sgpd,
    smhd,
    table,
    tkhd,
    vmhd,
)
from .sampletables import (
    Layout,
    chunk_offsets,
    lay_out,
    sample_count,
    sample_sizes_box,
    stsc_box,
    track_chunks,
)

# Containers we descend into, each with the children it keeps (everything else is dropped).
_KEEP: dict[bytes, tuple[bytes, ...]] = {
    b"moov": (b"mvhd", b"trak"),
    b"trak": (b"tkhd", b"edts", b"mdia"),
    b"edts": (b"elst",),
    b"mdia": (b"mdhd", b"hdlr", b"minf"),
    b"minf": (b"vmhd", b"smhd", b"hdlr", b"dinf", b"stbl"),
}
_LEAVES: dict[bytes, Callable[[bytes], Box]] = {
    b"mvhd": mvhd, b"tkhd": tkhd, b"mdhd": mdhd,
    b"hdlr": hdlr, b"vmhd": vmhd, b"smhd": smhd,
    b"elst": elst, b"dinf": dinf,
}
# Tracks a player of our outputs plays; the others (timed metadata such as GPS, timecode,
# text, hints) are dropped.
_PLAYED = frozenset({b"vide", b"soun"})
# Boxes that mean a layout this module does not rewrite (fragments, compressed movie header).
_REFUSE = frozenset({b"moof", b"mfra", b"mvex", b"sidx", b"ssix", b"styp", b"cmov", b"emsg",
                     b"prft", b"meco"})
_COPY_BYTES = 1024 * 1024
_QUICKTIME = b"qt  "


def strip_boxes(src: Path, out: Path, *, check: Callable[[], None] = lambda: None) -> None:
    """Write ``src`` to ``out`` keeping only what a player needs (see the package docstring).

    Args:
        src: an MP4 or MOV file (``moov`` and ``mdat`` complete: probing checked that).
        out: where to write; replaced whole, never left half-written.
        check: called every so often; raises to stop (the job's deadline).

    Raises:
        UnsupportedLayout: a layout this module does not rewrite (the caller re-muxes).
        CorruptMedia: counts no real movie has (boxes, samples, empty chunks).
        OSError: reading or writing failed.
        PipelineError: whatever ``check`` raises.
    """
    tmp = out.with_name(f".{out.name}.part")
    try:
        _rewrite(src, tmp, check)
        os.replace(tmp, out)
    except (struct.error, IndexError, OverflowError) as err:
        tmp.unlink(missing_ok=True)
        raise UnsupportedLayout(f"malformed box: {err}") from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _rewrite(src: Path, tmp: Path, check: Callable[[], None]) -> None:
    size = src.stat().st_size
    with src.open("rb") as fh:
        major, moov, mdats, moov_first = _top_level(fh, size, check)
        tracks = [c for c in moov.children or [] if c.kind == b"trak"]
        if not tracks:
            raise UnsupportedLayout("the movie has no tracks")
        chunks = [track_chunks(_stbl(t), check) for t in tracks]
        payload_bytes = sum(sum(tc.lengths) for tc in chunks)
        mdat_header = 8 if payload_bytes + 8 < 2**32 else 16
        head = _ftyp(major, moov).serialize()
        base = len(head) + (8 + moov.body_size() if moov_first else 0) + mdat_header
        layout = lay_out(chunks, mdats, base, check)
        moov_out = moov.serialize()
        with tmp.open("wb") as dst:
            dst.write(head)
            if moov_first:
                dst.write(moov_out)
            _write_mdat(fh, dst, layout, mdat_header, check)
            if not moov_first:
                dst.write(moov_out)


def _write_mdat(fh: IO[bytes], dst: IO[bytes], layout: Layout, header_bytes: int,
                check: Callable[[], None]) -> None:
    """The new ``mdat``: the chunks' bytes, streamed a block at a time."""
    total = layout.payload_bytes
    if header_bytes == 8:
        dst.write(struct.pack(">I4s", 8 + total, b"mdat"))
    else:
        dst.write(struct.pack(">I4sQ", 1, b"mdat", 16 + total))
    for offset, length in zip(layout.sources, layout.lengths, strict=True):
        fh.seek(offset)
        left = length
        while left:
            block = fh.read(min(_COPY_BYTES, left))
            if not block:
                raise UnsupportedLayout("the file ends inside a chunk")
            dst.write(block)
            left -= len(block)
            check()


def _top_level(fh: IO[bytes], size: int, check: Callable[[], None]
               ) -> tuple[bytes, Box, list[tuple[int, int]], bool]:
    """(source major brand, filtered moov, mdat payload ranges, moov before the first mdat).

    Raises:
        UnsupportedLayout: a layout this module does not rewrite.
        CorruptMedia: more top-level boxes than any real file has.
    """
    major = _QUICKTIME
    moov: Box | None = None
    mdats: list[tuple[int, int]] = []
    moov_first = False
    for count, (kind, start, body, end) in enumerate(walk(fh, 0, size), 1):
        if count > MAX_TOP_LEVEL_BOXES:
            raise refuse_absurd(f"more than {MAX_TOP_LEVEL_BOXES} top-level boxes")
        if count % 1024 == 0:
            check()
        if kind in _REFUSE:
            raise UnsupportedLayout(f"{kind.decode('latin-1')!r} box (fragmented or compressed)")
        if kind == b"ftyp":
            if start != 0 or end - body < 8:
                raise UnsupportedLayout("ftyp not first, or short")
            fh.seek(body)
            major = fh.read(4)
        elif kind == b"moov":
            if moov is not None:
                raise UnsupportedLayout("more than one moov")
            if end - body > MAX_MOOV_BYTES:
                raise refuse_absurd("movie header over 64 MB")
            fh.seek(body)
            moov = _container(b"moov", memoryview(fh.read(end - body)))
            moov_first = not mdats
        elif kind == b"mdat":
            mdats.append((body, end))
    if moov is None or not mdats:
        raise UnsupportedLayout("no moov or no mdat")
    return major, moov, mdats, moov_first


def _ftyp(source_major: bytes, moov: Box) -> Box:
    """Brands that describe what we wrote: ``isom`` first (every tool reads it), ``iso4``
    among the compatible brands when a track has negative composition offsets; QuickTime
    stays ``qt  ``."""
    minor = struct.pack(">I", 0x200)
    if source_major == _QUICKTIME:
        return Box(b"ftyp", _QUICKTIME + minor + _QUICKTIME)
    brands = [b"isom"]
    if any(c.payload[:1] == b"\x01" for c in moov.find(b"ctts")):
        brands.append(b"iso4")
    brands.append(b"iso2")
    entries = {e.kind for s in moov.find(b"stsd") for e in s.children or ()}
    if entries & {b"avc1", b"avc3"}:
        brands.append(b"avc1")
    if b"av01" in entries:
        brands.append(b"av01")
    brands.append(b"mp41")
    return Box(b"ftyp", b"isom" + minor + b"".join(brands))


def _container(kind: bytes, data: memoryview) -> Box:
    """A kept container with its kept children, each rebuilt.

    Containers are walked as views of the movie header; only kept leaves are copied.

    Raises:
        UnsupportedLayout: a box meaning a layout we do not rewrite, or a malformed child.
        CorruptMedia: more children than any real movie header has.
    """
    keep = _KEEP[kind]
    children = []
    for count, (child, _start, body, end) in enumerate(walk_bytes(data), 1):
        if count > MAX_CHILDREN:
            raise refuse_absurd(f"more than {MAX_CHILDREN} boxes in one {kind!r}")
        if child in _REFUSE:
            raise UnsupportedLayout(f"{child.decode('latin-1')!r} box in {kind!r}")
        if child not in keep:
            continue
        payload = data[body:end]
        if child == b"stbl":
            children.append(_sample_tables(payload))
        elif child == b"trak" and not _played(payload):
            continue  # timed metadata (GPS, mebx), timecode, text, hints: not played
        elif child in _KEEP:
            children.append(_container(child, payload))
        else:
            children.append(_LEAVES[child](bytes(payload)))
    if sum(c.kind == b"trak" for c in children) > MAX_TRACKS:
        raise refuse_absurd(f"more than {MAX_TRACKS} tracks")
    return Box(kind, b"", children)


def _played(trak: memoryview) -> bool:
    """Whether a track is video or sound, from its media handler (read before the track's
    tables, so a metadata track's sample entries are never parsed)."""
    for kind, _start, body, end in walk_bytes(trak):
        if kind == b"mdia":
            for inner, _s, ibody, iend in walk_bytes(trak[body:end]):
                if inner == b"hdlr":
                    return handler_type(bytes(trak[body:end][ibody:iend])) in _PLAYED
    return False


def _stbl(trak: Box) -> Box:
    stbls = trak.find(b"stbl")
    if len(stbls) != 1:
        raise UnsupportedLayout("a track without one sample table")
    return stbls[0]


def _sample_tables(data: memoryview) -> Box:
    """The sample tables, each rebuilt; one of each (sample groups: each kept grouping), in
    the order ISO lists them.

    Raises:
        UnsupportedLayout: a table repeated, missing, or malformed.
    """
    views: dict[bytes, list[memoryview]] = {}
    for count, (kind, _start, body, end) in enumerate(walk_bytes(data), 1):
        if count > MAX_CHILDREN:
            raise refuse_absurd("too many boxes in one stbl")
        if kind in views and kind in _LAYOUT_TABLES:
            raise UnsupportedLayout(f"{kind!r} repeated")
        views.setdefault(kind, []).append(data[body:end])

    def raw(kind: bytes) -> bytes:  # copied out of the movie header only when rebuilt
        return bytes(views[kind][0])

    tables: list[Box | None] = [stsd(raw(b"stsd"))] if b"stsd" in views else []
    tables += [rebuild(raw(kind)) for kind, rebuild in _TABLES if kind in views]
    size_kind = b"stsz" if b"stsz" in views else b"stz2"
    if size_kind not in views:
        raise UnsupportedLayout("a track without sample sizes")
    sizes = sample_sizes_box(size_kind, raw(size_kind))
    if b"sdtp" in views:
        tables.append(sdtp(raw(b"sdtp"), sample_count(sizes)))
    tables.append(stsc_box(raw(b"stsc")) if b"stsc" in views else None)
    tables.append(sizes)
    offsets_kind = b"stco" if b"stco" in views else b"co64"
    tables.append(chunk_offsets(offsets_kind, raw(offsets_kind)) if offsets_kind in views
                  else None)
    groups = [g for g in (sgpd(bytes(v)) for v in views.get(b"sgpd", ())) if g is not None]
    kept = {g.payload[4:8] for g in groups}
    tables += groups
    tables += [sbgp(bytes(v), kept) for v in views.get(b"sbgp", ())]
    return Box(b"stbl", b"", [t for t in tables if t is not None])


_LAYOUT_TABLES = frozenset({b"stsd", b"stsc", b"stsz", b"stz2", b"stco", b"co64"})
_TABLES: tuple[tuple[bytes, Callable[[bytes], Box]], ...] = (
    (b"stts", lambda d: table(b"stts", d, 8)),
    (b"ctts", lambda d: table(b"ctts", d, 8, (0, 1))),
    (b"cslg", cslg),
    (b"stss", lambda d: table(b"stss", d, 4)),
    (b"stps", lambda d: table(b"stps", d, 4)),
)

__all__ = ["strip_boxes"]
