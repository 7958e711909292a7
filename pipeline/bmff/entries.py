"""Sample descriptions (``stsd``) rebuilt from the fields a decoder reads, nothing else.

One sample entry is kept (the one every sample uses). A video entry keeps its size and its
codec configuration (``avcC``, ``hvcC``, ``vpcC``, ``av1C``) plus the boxes that say how to
show the picture (``btrt``, ``pasp``, ``colr`` as code points, ``clap``, ``fiel``, ``mdcv``,
``clli``, Dolby Vision's ``dvcC``/``dvvC``/``dvwC``); an audio entry keeps its channel count,
sample size and rate and its configuration (``esds``, ``dOps``, QuickTime's ``wave``). Each
of those is parsed and written anew from its fields (parameter sets and decoder-specific info
stay as the decoder reads them); reserved fields, compressor names, vendors, SEI arrays,
metadata OBUs, ICC profiles, ``uuid``/``free`` children and bytes after the last field are
not carried. An entry type this module does not
know raises :class:`UnsupportedLayout` (the caller re-muxes).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from .boxes import Box, UnsupportedLayout, exact, full_box, u8, u16, u32, version_of, walk_bytes
from .configs import CONFIGS, av1c, avcc, hvcc, vpcc

_VISUAL = {b"avc1": b"avcC", b"avc3": b"avcC", b"hvc1": b"hvcC", b"hev1": b"hvcC",
           b"vp09": b"vpcC", b"av01": b"av1C"}
_AUDIO = {b"mp4a": b"esds", b"Opus": b"dOps"}
_VISUAL_FIXED = 78
_AUDIO_FIXED = 28
_QT_SOUND_EXTRA = {0: 0, 1: 16}  # QuickTime sound description v1 adds four 32-bit fields
_MAX_ENTRIES = 16


def stsd(data: bytes) -> Box:
    """The sample description with its first (only used) entry rebuilt.

    Raises:
        UnsupportedLayout: no entry, or an entry type this module does not rebuild.
    """
    version_of(b"stsd", data, (0,))
    count = u32(data, 4)
    entries = []
    for kind, _start, body, end in walk_bytes(data, 8):
        entries.append((kind, data[body:end]))
        if len(entries) >= min(count, _MAX_ENTRIES):
            break  # trailing bytes after the entries are never read
    if count < 1 or not entries:
        raise UnsupportedLayout("a sample description without entries")
    kind, payload = entries[0]
    return Box(b"stsd", full_box(0) + struct.pack(">I", 1), [sample_entry(kind, payload)])


def sample_entry(kind: bytes, data: bytes) -> Box:
    """One sample entry, rebuilt.

    Raises:
        UnsupportedLayout: an entry type this module does not rebuild, or a malformed one.
    """
    if kind in _VISUAL:
        return _visual(kind, data)
    if kind in _AUDIO:
        return _audio(kind, data)
    raise UnsupportedLayout(f"sample entry {kind.decode('latin-1')!r}")


def _children(data: bytes, start: int) -> dict[bytes, bytes]:
    """The first child box of each type after an entry's fixed fields (payloads by type).

    QuickTime ends a sample entry's children with four zero bytes (a terminator shorter than
    a box): fewer than eight bytes at the end are ignored (and not written).
    """
    found: dict[bytes, bytes] = {}
    usable = len(data) if len(data) - start < 8 else _boxes_end(data, start)
    for kind, _start, body, end in walk_bytes(data[:usable], start):
        found.setdefault(kind, data[body:end])
    return found


def _boxes_end(data: bytes, start: int) -> int:
    """Where the whole boxes after ``start`` end, a trailer of under eight bytes left out."""
    pos = start
    while len(data) - pos >= 8:
        size = u32(data, pos)
        if size < 8 or pos + size > len(data):
            break  # malformed: walk_bytes will say so
        pos += size
    return pos if len(data) - pos < 8 else len(data)


def _visual(kind: bytes, data: bytes) -> Box:
    """A visual sample entry: width and height, the fixed values ISO prescribes elsewhere."""
    data_fixed = exact(kind, data, _VISUAL_FIXED)
    width_height = data_fixed[24:28]
    fixed = (bytes(6) + struct.pack(">H", 1) + bytes(16) + width_height
             + struct.pack(">II", 0x00480000, 0x00480000) + bytes(4) + struct.pack(">H", 1)
             + bytes(32) + struct.pack(">Hh", 0x0018, -1))
    children = _children(data, _VISUAL_FIXED)
    config_kind = _VISUAL[kind]
    if config_kind not in children:
        raise UnsupportedLayout(f"{kind!r} without {config_kind!r}")
    config = {b"avcC": avcc, b"hvcC": hvcc, b"vpcC": vpcc, b"av1C": av1c}[config_kind]
    kept = [Box(config_kind, config(children[config_kind]))]
    kept += _optional(children, _PICTURE_BOXES)
    return Box(kind, fixed, kept)


def _audio(kind: bytes, data: bytes) -> Box:
    """An audio sample entry: channels, sample size and rate (and QuickTime v1's four fields)."""
    version = u16(data, 8)
    if version not in _QT_SOUND_EXTRA:
        raise UnsupportedLayout(f"sound description version {version}")
    size = _AUDIO_FIXED + _QT_SOUND_EXTRA[version]
    data_fixed = exact(kind, data, size)
    channels_bits = data_fixed[16:20]
    compression = data_fixed[20:22] if version else bytes(2)
    rate = data_fixed[24:28]
    fixed = (bytes(6) + struct.pack(">HH", 1, version) + bytes(6) + channels_bits
             + compression + bytes(2) + rate + data_fixed[28:size])
    children = _children(data, size)
    config_kind = _AUDIO[kind]
    kept: list[Box] = []
    if config_kind in children:
        kept.append(Box(config_kind, CONFIGS[config_kind](children[config_kind])))
    elif kind == b"mp4a" and b"wave" in children:
        kept.append(_wave(children[b"wave"]))
    else:
        raise UnsupportedLayout(f"{kind!r} without {config_kind!r}")
    kept += _optional(children, {b"btrt": _btrt})
    return Box(kind, fixed, kept)


def _wave(data: bytes) -> Box:
    """QuickTime's ``wave`` for AAC: format, an ``esds`` rebuilt, the terminator."""
    children = _children(data, 0)
    if b"esds" not in children:
        raise UnsupportedLayout("wave without esds")
    return Box(b"wave", b"", [Box(b"frma", b"mp4a"), Box(b"mp4a", bytes(4)),
                              Box(b"esds", CONFIGS[b"esds"](children[b"esds"])),
                              Box(b"\x00\x00\x00\x00")])


def _optional(children: dict[bytes, bytes],
              rebuilders: dict[bytes, Callable[[bytes], bytes | None]]) -> list[Box]:
    kept = []
    for kind, rebuild in rebuilders.items():
        if kind in children:
            payload = rebuild(children[kind])
            if payload is not None:
                kept.append(Box(kind, payload))
    return kept


def _btrt(data: bytes) -> bytes:
    return exact(b"btrt", data, 12)


def _pasp(data: bytes) -> bytes:
    return exact(b"pasp", data, 8)


def _clap(data: bytes) -> bytes:
    return exact(b"clap", data, 32)


def _fiel(data: bytes) -> bytes:
    return exact(b"fiel", data, 2)


def _mdcv(data: bytes) -> bytes:
    return exact(b"mdcv", data, 24)


def _clli(data: bytes) -> bytes:
    return exact(b"clli", data, 4)


def _colr(data: bytes) -> bytes | None:
    """Colour code points (``nclx`` with the full-range bit, QuickTime ``nclc``); an ICC
    profile (free text inside) is dropped."""
    kind = exact(b"colr", data, 4)[:4]
    if kind == b"nclx":
        return exact(b"colr", data, 11)[:10] + bytes([u8(data, 10) & 0x80])
    if kind == b"nclc":
        return exact(b"colr", data, 10)
    return None


def _dovi(data: bytes) -> bytes:
    """Dolby Vision configuration: version, profile, level, layer flags and compatibility id;
    the reserved bits after them zero."""
    fixed = exact(b"dvcC", data, 24)
    return fixed[:4] + bytes([fixed[4] & 0xF0]) + bytes(19)


_PICTURE_BOXES: dict[bytes, Callable[[bytes], bytes | None]] = {
    b"btrt": _btrt, b"pasp": _pasp, b"colr": _colr, b"clap": _clap, b"fiel": _fiel,
    b"mdcv": _mdcv, b"clli": _clli, b"dvcC": _dovi, b"dvvC": _dovi, b"dvwC": _dovi,
}
