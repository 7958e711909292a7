"""Decoder configuration boxes (avcC, hvcC, vpcC, av1C, esds, dOps), parsed and written anew.

Parameter sets (SPS/PPS/VPS), a sequence header OBU and AAC's AudioSpecificConfig are what the
decoder reads: they are kept as the decoder reads them, each checked for its NAL/OBU type.
Everything else (SEI arrays, metadata OBUs, a stream URL, trailing bytes) is not written.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from .boxes import UnsupportedLayout, exact, full_box, u8, u16, version_of

_AVC_PARAMETER_SETS = (7, 8)  # SPS, PPS
_AVC_HIGH_PROFILES = frozenset({100, 110, 122, 144})
_HEVC_PARAMETER_SETS = frozenset({32, 33, 34})  # VPS, SPS, PPS (SEI arrays are dropped)
_AV1_SEQUENCE_HEADER = 1
_MAX_DECODER_INFO = 64  # AAC's AudioSpecificConfig is 2-5 bytes (more with a channel layout)


def _nal_units(data: bytes, at: int, count: int) -> tuple[list[bytes], int]:
    """``count`` length-prefixed (16-bit) NAL units from ``at``; (units, position after)."""
    units = []
    for _ in range(count):
        length = u16(data, at)
        units.append(exact(b"NAL ", data[at + 2:at + 2 + length], length))
        at += 2 + length
    return units, at


def _prefixed(units: list[bytes]) -> bytes:
    return b"".join(struct.pack(">H", len(u)) + u for u in units)


def avcc(data: bytes) -> bytes:
    """H.264 configuration: profile, level, NAL length size, SPS and PPS (and the high
    profiles' chroma/bit depth fields with their SPS extensions).

    Raises:
        UnsupportedLayout: a malformed record or a NAL unit of the wrong type.
    """
    head = exact(b"avcC", data, 6)
    if head[0] != 1:
        raise UnsupportedLayout(f"avcC version {head[0]}")
    sps, at = _nal_units(data, 6, head[5] & 0x1F)
    pps, at = _nal_units(data, at + 1, u8(data, at))
    for unit, want in [(u, 7) for u in sps] + [(u, 8) for u in pps]:
        if not unit or unit[0] & 0x1F != want:
            raise UnsupportedLayout("avcC parameter set of the wrong type")
    out = (bytes([1, head[1], head[2], head[3], 0xFC | (head[4] & 3), 0xE0 | len(sps)])
           + _prefixed(sps) + bytes([len(pps)]) + _prefixed(pps))
    if head[1] in _AVC_HIGH_PROFILES and len(data) >= at + 4:
        ext, _ = _nal_units(data, at + 4, u8(data, at + 3))
        out += bytes([0xFC | (data[at] & 3), 0xF8 | (data[at + 1] & 7), 0xF8 | (data[at + 2] & 7),
                      len(ext)]) + _prefixed(ext)
    return out


def hvcc(data: bytes) -> bytes:
    """HEVC configuration: the 22 fixed bytes (reserved bits set as the format wants), then
    only the VPS, SPS and PPS arrays.

    Raises:
        UnsupportedLayout: a malformed record.
    """
    fixed = bytearray(exact(b"hvcC", data, 23)[:22])
    if fixed[0] != 1:
        raise UnsupportedLayout(f"hvcC version {fixed[0]}")
    fixed[13] |= 0xF0
    fixed[15] |= 0xFC
    fixed[16] |= 0xFC
    fixed[17] |= 0xF8
    fixed[18] |= 0xF8
    arrays = []
    at = 23
    for _ in range(data[22]):
        start = at
        nal_type = u8(data, at) & 0x3F
        units, at = _nal_units(data, at + 3, u16(data, at + 1))
        if nal_type in _HEVC_PARAMETER_SETS:
            arrays.append(_hevc_array(data[start] & 0x80, units, nal_type))
    return bytes(fixed) + bytes([len(arrays)]) + b"".join(arrays)


def _hevc_array(complete: int, units: list[bytes], nal_type: int) -> bytes:
    """One NAL array: its completeness bit, type and units (each checked for that type)."""
    for unit in units:
        if len(unit) < 2 or (unit[0] >> 1) & 0x3F != nal_type:
            raise UnsupportedLayout("hvcC parameter set of the wrong type")
    return bytes([complete | nal_type]) + struct.pack(">H", len(units)) + _prefixed(units)


def vpcc(data: bytes) -> bytes:
    """VP9 configuration (version 1): profile, level, bit depth, chroma, range, colour code
    points; no codec initialisation data (VP9 has none).

    Raises:
        UnsupportedLayout: a version we do not know, or a short box.
    """
    version_of(b"vpcC", data, (1,))
    return full_box(1) + exact(b"vpcC", data, 10)[4:10] + bytes(2)


def av1c(data: bytes) -> bytes:
    """AV1 configuration: the four fixed bytes and the sequence header OBU only.

    Raises:
        UnsupportedLayout: a malformed record or OBU.
    """
    fixed = exact(b"av1C", data, 4)
    if fixed[0] != 0x81:
        raise UnsupportedLayout("av1C marker/version")
    obus = []
    at = 4
    while at < len(data):
        header = data[at]
        obu_type = (header >> 3) & 0x0F
        size_at = at + 1 + (1 if header & 0x04 else 0)
        if not header & 0x02:
            raise UnsupportedLayout("av1C OBU without a size field")
        size, size_bytes = _leb128(data, size_at)
        end = size_at + size_bytes + size
        exact(b"av1C", data, end)
        if obu_type == _AV1_SEQUENCE_HEADER:
            obus.append(data[at:end])
        at = end
    return bytes([0x81, fixed[1], fixed[2], fixed[3] & 0x1F]) + b"".join(obus)


def _leb128(data: bytes, at: int) -> tuple[int, int]:
    value = 0
    for i in range(8):
        byte = u8(data, at + i)
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, i + 1
    raise UnsupportedLayout("av1C OBU size")


def dops(data: bytes) -> bytes:
    """Opus configuration: channels, pre-skip, input rate, gain, mapping (family 0 or with its
    stream counts and channel map).

    Raises:
        UnsupportedLayout: a version we do not know, or a short box.
    """
    fixed = exact(b"dOps", data, 11)
    if fixed[0] != 0:
        raise UnsupportedLayout(f"dOps version {fixed[0]}")
    if fixed[10] == 0:
        return fixed
    return exact(b"dOps", data, 13 + fixed[1])


def esds(data: bytes) -> bytes:
    """MPEG-4 elementary stream descriptor: stream id, object type, stream type, buffer and
    bitrates, the decoder-specific info; a fresh SL config. No URL, no OCR, no dependency.

    Raises:
        UnsupportedLayout: a malformed descriptor.
    """
    version_of(b"esds", data, (0,))
    tag, es, _ = _descriptor(data, 4)
    if tag != 3:
        raise UnsupportedLayout("esds without an ES descriptor")
    es_id, flags = u16(es, 0), u8(es, 2)
    at = 3 + (2 if flags & 0x80 else 0) + (1 + u8(es, 3) if flags & 0x40 else 0)
    at += 2 if flags & 0x20 else 0
    tag, config, _ = _descriptor(es, at)
    if tag != 4:
        raise UnsupportedLayout("esds without a decoder config")
    fields = exact(b"esds", config, 13)
    decoder = bytes([fields[0], fields[1] | 0x01]) + fields[2:13]
    if len(config) > 13:
        tag, info, _ = _descriptor(config, 13)
        if tag == 5:
            if len(info) > _MAX_DECODER_INFO:
                raise UnsupportedLayout("decoder-specific info too long")
            decoder += _encode_descriptor(5, info)
    body = struct.pack(">HB", es_id, 0) + _encode_descriptor(4, decoder)
    body += _encode_descriptor(6, b"\x02")
    return full_box(0) + _encode_descriptor(3, body)


def _descriptor(data: bytes, at: int) -> tuple[int, bytes, int]:
    """(tag, payload, position after) of the descriptor at ``at``."""
    tag = u8(data, at)
    size = 0
    at += 1
    for _ in range(4):
        byte = u8(data, at)
        at += 1
        size = (size << 7) | (byte & 0x7F)
        if not byte & 0x80:
            break
    return tag, exact(b"esds", data[at:at + size], size), at + size


def _encode_descriptor(tag: int, payload: bytes) -> bytes:
    size = len(payload)
    if size >= 1 << 28:
        raise UnsupportedLayout("descriptor too long")
    length = bytes([0x80 | ((size >> 21) & 0x7F), 0x80 | ((size >> 14) & 0x7F),
                    0x80 | ((size >> 7) & 0x7F), size & 0x7F])
    return bytes([tag]) + length + payload


CONFIGS: dict[bytes, Callable[[bytes], bytes]] = {b"esds": esds, b"dOps": dops}

__all__ = ["CONFIGS", "av1c", "avcc", "dops", "esds", "hvcc", "vpcc"]
