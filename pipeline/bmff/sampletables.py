"""Where each chunk's bytes are, and where they go: the rewrite's layout, linear in the tables.

Each track's chunks are read from its sample-to-chunk runs and sample sizes into typed arrays
(a few bytes per chunk, never a Python object per sample). The tracks' chunk offsets, each
ascending, are merged in one pass; that pass checks every chunk against the ``mdat`` boxes
(also ascending, so one pointer walks them), assigns the new offsets and collects the
byte ranges to copy, contiguous ones joined. Nothing is quadratic in chunks or boxes.
"""

from __future__ import annotations

import heapq
import struct
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import count, repeat

from .boxes import (
    MAX_EMPTY_CHUNKS,
    MAX_SAMPLES,
    Box,
    UnsupportedLayout,
    big_endian,
    exact,
    full_box,
    refuse_absurd,
    u32,
    version_of,
)

# How often (in chunks) the long loops look at the clock.
CHECK_EVERY = 1 << 16
_HIGH_NIBBLE = bytes(b >> 4 for b in range(256))
_LOW_NIBBLE = bytes(b & 15 for b in range(256))


@dataclass(slots=True)
class TrackChunks:
    """One track's chunks: their offsets (the ``stco``/``co64`` box's array, patched in place
    to the new offsets) and their lengths in bytes."""

    box: Box
    lengths: array[int]

    @property
    def offsets(self) -> array[int]:
        """The chunk offsets (source offsets until :func:`lay_out` patches them)."""
        assert self.box.chunks is not None
        return self.box.chunks


@dataclass(slots=True)
class Layout:
    """The new ``mdat``: the ranges of the source to copy, in order, and its payload size."""

    sources: array[int]
    lengths: array[int]
    payload_bytes: int


def chunk_offsets(kind: bytes, data: bytes) -> Box:
    """An ``stco``/``co64`` box with its offsets as an array, cut to its entry count.

    Raises:
        UnsupportedLayout: a version we do not know, or a short box.
    """
    version_of(kind, data, (0,))
    count = u32(data, 4)
    width = 4 if kind == b"stco" else 8
    if count > MAX_SAMPLES + MAX_EMPTY_CHUNKS:
        raise refuse_absurd(f"{count} chunks in one track")
    body = exact(kind, data, 8 + width * count)[8:]
    offsets = array("Q", big_endian("I" if width == 4 else "Q", body))
    return Box(kind, full_box(0) + struct.pack(">I", count), chunks=offsets)


def sample_count(box: Box) -> int:
    """The number of samples an ``stsz``/``stz2`` box describes.

    Raises:
        UnsupportedLayout: a short box.
    """
    return u32(box.payload, 8)


def sample_sizes_box(kind: bytes, data: bytes) -> Box:
    """An ``stsz``/``stz2`` box cut to its entries.

    Raises:
        UnsupportedLayout: a version we do not know, a field size we do not know, a short box.
        CorruptMedia: more samples than any real movie has.
    """
    version_of(kind, data, (0,))
    count = u32(data, 8)
    if count > MAX_SAMPLES:
        raise refuse_absurd(f"{count} samples in one track")
    if kind == b"stsz":
        constant = u32(data, 4)
        need = 12 + (0 if constant else 4 * count)
    else:
        bits = exact(kind, data, 12)[7]
        if bits not in (4, 8, 16):
            raise UnsupportedLayout(f"stz2 field size {bits}")
        need = 12 + (bits * count + 7) // 8
    return Box(kind, full_box(0) + exact(kind, data, need)[4:])


def stsc_box(data: bytes) -> Box:
    """An ``stsc`` box cut to its entries, each run pointing at the only sample description.

    Raises:
        UnsupportedLayout: a run using another sample description, or a short box.
    """
    version_of(b"stsc", data, (0,))
    count = u32(data, 4)
    runs = big_endian("I", exact(b"stsc", data, 8 + 12 * count)[8:])
    if any(runs[i] != 1 for i in range(2, len(runs), 3)):
        raise UnsupportedLayout("samples use a second sample description")
    return Box(b"stsc", full_box(0) + data[4:8 + 12 * count])


def track_chunks(stbl: Box, check: Callable[[], None]) -> TrackChunks:
    """One track's chunk offsets and lengths, from its sample tables.

    Chunks that hold no sample are dropped from ``stsc`` and ``stco`` (players disagree on
    them: ffmpeg and mp4box.js both misplace the samples that follow).

    Raises:
        UnsupportedLayout: tables missing or disagreeing with each other.
        CorruptMedia: more empty chunks than any real movie has.
    """
    offsets = stbl.child(b"stco") or stbl.child(b"co64")
    sizes = stbl.child(b"stsz") or stbl.child(b"stz2")
    stsc = stbl.child(b"stsc")
    if offsets is None or sizes is None or stsc is None or stbl.child(b"stsd") is None:
        raise UnsupportedLayout("a track without its sample tables")
    assert offsets.chunks is not None
    runs = _samples_per_chunk(stsc.payload, len(offsets.chunks))
    if sum(per * n for per, n in runs) != sample_count(sizes):
        raise UnsupportedLayout("stsc and stsz disagree on the sample count")
    if sum(n for per, n in runs if per == 0) > MAX_EMPTY_CHUNKS:
        raise refuse_absurd(f"more than {MAX_EMPTY_CHUNKS} chunks without samples")
    source, kept, lengths = offsets.chunks, array("Q"), array("Q")
    new_runs: list[tuple[int, int]] = []
    table = _sizes(sizes)
    chunk = sample = 0
    for per, n in runs:
        if per:
            if not new_runs or new_runs[-1][1] != per:
                new_runs.append((len(kept) + 1, per))
            kept.extend(source[chunk:chunk + n])
            _chunk_lengths(table, per, n, sample, lengths, check)
            sample += per * n
        chunk += n
    stsc.payload = full_box(0) + struct.pack(">I", len(new_runs)) + b"".join(
        struct.pack(">III", first, per, 1) for first, per in new_runs)
    offsets.payload, offsets.chunks = full_box(0) + struct.pack(">I", len(kept)), kept
    return TrackChunks(offsets, lengths)


def _chunk_lengths(table: int | array[int], per: int, n: int, first: int, out: array[int],
                   check: Callable[[], None]) -> None:
    """Append the byte lengths of ``n`` chunks of ``per`` samples each, from sample ``first``."""
    if isinstance(table, int):
        out.extend(array("Q", [table * per]) * n)
        return
    end = first + per * n
    if per == 1:  # a chunk per sample: the lengths are the sizes, copied a block at a time
        for at in range(first, end, CHECK_EVERY):
            out.fromlist(table[at:min(at + CHECK_EVERY, end)].tolist())
            check()
        return
    for at in range(first, end, per):
        out.append(sum(table[at:at + per]))
        if len(out) % CHECK_EVERY == 0:
            check()


def _samples_per_chunk(stsc: bytes, chunk_count: int) -> list[tuple[int, int]]:
    """(samples per chunk, number of chunks) for each sample-to-chunk run.

    Raises:
        UnsupportedLayout: runs out of order or not covering every chunk.
    """
    runs = big_endian("I", stsc[8:])
    out: list[tuple[int, int]] = []
    covered = 0
    for at in range(0, len(runs), 3):
        first, per = runs[at], runs[at + 1]
        last = runs[at + 3] - 1 if at + 3 < len(runs) else chunk_count
        if first != covered + 1 or last < first or last > chunk_count:
            raise UnsupportedLayout("sample-to-chunk runs out of order")
        out.append((per, last - first + 1))
        covered = last
    if covered != chunk_count:
        raise UnsupportedLayout("sample-to-chunk runs do not cover every chunk")
    return out


def _sizes(box: Box) -> int | array[int]:
    """Every sample's size as an array, or the one size they all have."""
    data = box.payload
    count = sample_count(box)
    if box.kind == b"stsz":
        constant = u32(data, 4)
        if constant == 1:
            # Old QuickTime PCM counts audio frames, not bytes, in its sample sizes.
            raise UnsupportedLayout("constant 1-byte samples (legacy QuickTime audio)")
        return constant if constant else big_endian("I", data[12:12 + 4 * count])
    bits = data[7]
    if bits == 16:
        return big_endian("H", data[12:12 + 2 * count])
    if bits == 8:
        return array("B", data[12:12 + count])
    packed = data[12:12 + (count + 1) // 2]
    nibbles = bytearray(2 * len(packed))
    nibbles[0::2] = packed.translate(_HIGH_NIBBLE)
    nibbles[1::2] = packed.translate(_LOW_NIBBLE)
    return array("B", nibbles[:count])


def lay_out(tracks: list[TrackChunks], mdats: list[tuple[int, int]], base: int,
            check: Callable[[], None]) -> Layout:
    """Assign every chunk its offset in the new file, whose ``mdat`` payload starts at ``base``.

    Each track's offset array is overwritten with the new offsets.

    Raises:
        UnsupportedLayout: a track's chunks out of order, chunks overlapping or outside the
            ``mdat`` boxes.
    """
    sources, lengths = array("Q"), array("Q")
    offsets = [tc.offsets for tc in tracks]
    sizes = [tc.lengths for tc in tracks]
    last = [-1] * len(tracks)
    pos, prev_end, mdat_i, seen = base, -1, 0, 0
    mdat_lo, mdat_hi = mdats[0] if mdats else (0, 0)
    for offset, t, k in _in_file_order(offsets):
        seen += 1
        if seen % CHECK_EVERY == 0:
            check()
        if offset < last[t]:
            raise UnsupportedLayout("a track's chunks out of file order")
        last[t] = offset
        length = sizes[t][k]
        offsets[t][k] = pos
        if length == 0:
            continue  # samples of no bytes: nothing to read or place
        if offset < prev_end:
            raise UnsupportedLayout("overlapping chunks")
        while mdat_hi <= offset and mdat_i + 1 < len(mdats):
            mdat_i += 1
            mdat_lo, mdat_hi = mdats[mdat_i]
        if not mdat_lo <= offset or offset + length > mdat_hi:
            raise UnsupportedLayout("a chunk outside the mdat")
        if sources and sources[-1] + lengths[-1] == offset:
            lengths[-1] += length
        else:
            sources.append(offset)
            lengths.append(length)
        pos += length
        prev_end = offset + length
    return Layout(sources, lengths, pos - base)


def _in_file_order(offsets: list[array[int]]) -> Iterator[tuple[int, int, int]]:
    """(offset, track, chunk index), the tracks merged by offset (each is ascending: the
    caller checks, since the merge is only right when they are).

    The offsets are read one step ahead of the caller, which overwrites the ones it has seen.
    """
    streams = [zip(track_offsets, repeat(t), count()) for t, track_offsets in
               enumerate(offsets)]
    if len(streams) == 1:
        return streams[0]
    return heapq.merge(*streams)
