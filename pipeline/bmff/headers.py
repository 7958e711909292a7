"""Movie, track and media headers and the timing tables, rebuilt from their parsed fields.

Nothing is copied whole: reserved and pre-defined fields are written as zeros, creation and
modification times as zero ("unknown"), free text (the handler name) empty, flags masked to
the bits the format defines, and every table cut to its entry count. A payload hidden in a
reserved field or behind a table's last entry is gone.
"""

from __future__ import annotations

import struct

from .boxes import Box, UnsupportedLayout, exact, full_box, u32, version_of, walk_bytes

_MATRIX_BYTES = 36
_QT_COMPONENT_TYPES = frozenset({b"mhlr", b"dhlr"})
_TKHD_FLAGS = 0x00000F  # enabled, in movie, in preview, size is aspect ratio
# Sample groups a player uses, with the size of one description entry.
_GROUP_ENTRY_BYTES = {b"roll": 2, b"prol": 2, b"rap ": 1, b"sync": 1}


def mvhd(data: bytes) -> Box:
    """Timescale, duration, rate, volume, matrix and next track id; the rest zero.

    Raises:
        UnsupportedLayout: a version we do not know, or a short box.
    """
    version = version_of(b"mvhd", data)
    width = 8 if version else 4
    data = exact(b"mvhd", data, 4 + 3 * width + 4 + 80)
    at = 4 + 2 * width
    timescale, duration = data[at:at + 4], data[at + 4:at + 4 + width]
    at += 4 + width
    rate, volume = data[at:at + 4], data[at + 4:at + 6]
    matrix = data[at + 16:at + 16 + _MATRIX_BYTES]
    next_track = data[-4:]
    body = (full_box(version) + bytes(2 * width) + timescale + duration + rate + volume
            + bytes(10) + matrix + bytes(24) + next_track)
    return Box(b"mvhd", body)


def tkhd(data: bytes) -> Box:
    """Track id, duration, layer, group, volume, matrix and size; the rest zero.

    Raises:
        UnsupportedLayout: a version we do not know, or a short box.
    """
    version = version_of(b"tkhd", data)
    width = 8 if version else 4
    data = exact(b"tkhd", data, 4 + 3 * width + 8 + 60)
    flags = u32(data, 0) & _TKHD_FLAGS
    at = 4 + 2 * width
    track_id = data[at:at + 4]
    duration = data[at + 8:at + 8 + width]
    at += 8 + width + 8
    layer_group_volume = data[at:at + 6]
    matrix_size = data[at + 8:at + 8 + _MATRIX_BYTES + 8]
    body = (full_box(version, flags) + bytes(2 * width) + track_id + bytes(4) + duration
            + bytes(8) + layer_group_volume + bytes(2) + matrix_size)
    return Box(b"tkhd", body)


def mdhd(data: bytes) -> Box:
    """Timescale, duration and language; the rest zero.

    Raises:
        UnsupportedLayout: a version we do not know, or a short box.
    """
    version = version_of(b"mdhd", data)
    width = 8 if version else 4
    data = exact(b"mdhd", data, 4 + 3 * width + 4 + 4)
    at = 4 + 2 * width
    timescale_duration = data[at:at + 4 + width]
    language = struct.pack(">H", int.from_bytes(data[at + 4 + width:at + 6 + width],
                                                "big") & 0x7FFF)
    return Box(b"mdhd", full_box(version) + bytes(2 * width) + timescale_duration + language
               + bytes(2))


def handler_type(data: bytes) -> bytes:
    """The handler type of an ``hdlr`` payload (``vide``, ``soun``, ...).

    Raises:
        UnsupportedLayout: a short box.
    """
    return exact(b"hdlr", data, 12)[8:12]


def hdlr(data: bytes) -> Box:
    """The handler: its component and handler types, an empty name (free text in the source).

    An empty name is a valid C string (ISO) and a valid Pascal string (QuickTime).

    Raises:
        UnsupportedLayout: a short box.
    """
    data = exact(b"hdlr", data, 24)
    component = data[4:8] if data[4:8] in _QT_COMPONENT_TYPES else bytes(4)
    return Box(b"hdlr", full_box(0) + component + data[8:12] + bytes(12) + b"\x00")


def vmhd(data: bytes) -> Box:
    """Video media header: flag 1 (as required), copy mode, no colour.

    Raises:
        UnsupportedLayout: a short box.
    """
    exact(b"vmhd", data, 12)
    return Box(b"vmhd", full_box(0, 1) + bytes(8))


def smhd(data: bytes) -> Box:
    """Sound media header: the balance.

    Raises:
        UnsupportedLayout: a short box.
    """
    data = exact(b"smhd", data, 8)
    return Box(b"smhd", full_box(0) + data[4:6] + bytes(2))


def elst(data: bytes) -> Box:
    """The edit list's entries, cut to their count.

    Raises:
        UnsupportedLayout: a version we do not know, or a short box.
    """
    version = version_of(b"elst", data)
    count = u32(data, 4)
    width = 20 if version else 12
    return Box(b"elst", full_box(version) + exact(b"elst", data, 8 + width * count)[4:])


def table(kind: bytes, data: bytes, entry_bytes: int, versions: tuple[int, ...] = (0,)) -> Box:
    """A table of fixed-size entries after an entry count (stts, ctts, stss, stps), cut to it.

    Raises:
        UnsupportedLayout: a version we do not know, or a short box.
    """
    version = version_of(kind, data, versions)
    count = u32(data, 4)
    return Box(kind, full_box(version) + exact(kind, data, 8 + entry_bytes * count)[4:])


def cslg(data: bytes) -> Box:
    """Composition-to-decode bounds: five 32-bit (version 0) or 64-bit (version 1) fields.

    Raises:
        UnsupportedLayout: a version we do not know, or a short box.
    """
    version = version_of(b"cslg", data)
    return Box(b"cslg", full_box(version) + exact(b"cslg", data, 4 + (40 if version else 20))[4:])


def sdtp(data: bytes, samples: int) -> Box | None:
    """Sample dependency flags, one byte per sample; None (dropped) when it has fewer.

    Raises:
        UnsupportedLayout: a version we do not know.
    """
    version_of(b"sdtp", data, (0,))
    if len(data) < 4 + samples:
        return None
    return Box(b"sdtp", full_box(0) + data[4:4 + samples])


def sgpd(data: bytes) -> Box | None:
    """A sample group description a player uses (roll, pre-roll, random access, sync), rebuilt
    as version 1 with its entries cut to their count; any other grouping is dropped (None).

    Raises:
        UnsupportedLayout: a version we do not know, or a short box.
    """
    version = version_of(b"sgpd", data, (0, 1, 2))
    grouping = exact(b"sgpd", data, 8)[4:8]
    size = _GROUP_ENTRY_BYTES.get(grouping)
    if size is None:
        return None
    at = 8
    default_length = 0
    if version >= 1:
        default_length = u32(data, at)
        at += 4
    if version >= 2:
        at += 4  # default sample description index: the only entry is 1
    count = u32(data, at)
    at += 4
    if version >= 1 and default_length == 0:
        return None  # per-entry lengths: not a layout players write for these groups
    if version >= 1 and default_length != size:
        raise UnsupportedLayout(f"sgpd {grouping!r} entries of {default_length} bytes")
    entries = exact(b"sgpd", data, at + size * count)[at:]
    return Box(b"sgpd", full_box(1) + grouping + struct.pack(">II", size, count) + entries)


def sbgp(data: bytes, kept_groups: set[bytes]) -> Box | None:
    """Sample-to-group runs of a kept description (else dropped), rebuilt as version 0.

    Raises:
        UnsupportedLayout: a version we do not know, or a short box.
    """
    version = version_of(b"sbgp", data)
    grouping = exact(b"sbgp", data, 8)[4:8]
    if grouping not in kept_groups:
        return None
    at = 12 if version else 8
    count = u32(data, at)
    entries = exact(b"sbgp", data, at + 4 + 8 * count)[at + 4:]
    return Box(b"sbgp", full_box(0) + grouping + struct.pack(">I", count) + entries)


def dinf(data: bytes) -> Box:
    """A data reference that says "the media is in this file", after checking that it is.

    Raises:
        UnsupportedLayout: the media is in another file.
    """
    for kind, _, body, end in walk_bytes(data):
        if kind != b"dref":
            continue
        dref = data[body:end]
        entries = list(walk_bytes(dref, 8))
        if u32(dref, 4) != len(entries) or not entries:
            raise UnsupportedLayout("dref entry count")
        for entry, _, ebody, _end in entries:
            flags = u32(dref, ebody)
            if not flags & 1:
                raise UnsupportedLayout(f"media data in another file ({entry!r} reference)")
    url = Box(b"url ", full_box(0, 1))
    return Box(b"dinf", b"", [Box(b"dref", full_box(0) + struct.pack(">I", 1), [url])])
