"""MP4 ``ftyp`` brands: only the ones that describe what we wrote (no foreign Dolby Vision)."""

from __future__ import annotations

import struct
from pathlib import Path

# ftyp brands that describe what we write: ISO base media (iso4 with negative composition
# offsets), MP4 v1/v2 and the codecs of a stream copy. ffmpeg 5.1 adds 'dby1' (Dolby Vision)
# whenever the source stream had a Dolby Vision configuration, even when the output is
# tone-mapped SDR H.264 or a copy without the configuration box.
OWN_BRANDS = frozenset({b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42",
                        b"avc1", b"av01"})


def own_brands(ftyp_body: bytes) -> bytes:
    """An ``ftyp`` payload with every brand that does not describe our output replaced.

    The payload keeps its length (so no offset in the file moves): a foreign major brand
    becomes ``isom``, a foreign compatible brand ``mp42`` (or the major brand when ``mp42``
    is already listed).

    Raises:
        Nothing.
    """
    if len(ftyp_body) < 8 or len(ftyp_body) % 4:
        return ftyp_body
    major = ftyp_body[:4] if ftyp_body[:4] in OWN_BRANDS else b"isom"
    compatible = [ftyp_body[i:i + 4] for i in range(8, len(ftyp_body), 4)]
    filler = b"mp42" if b"mp42" not in compatible else major
    return major + ftyp_body[4:8] + b"".join(
        b if b in OWN_BRANDS else filler for b in compatible)


def describe_brands(path: Path) -> None:
    """Rewrite, in place, the ``ftyp`` brands of an MP4 we wrote so they describe it.

    Raises:
        OSError: the file cannot be read or written.
    """
    with path.open("r+b") as fh:
        head = fh.read(8)
        if len(head) < 8:
            return
        size, kind = struct.unpack(">I4s", head)
        if kind != b"ftyp" or not 16 <= size <= 4096:
            return
        body = fh.read(size - 8)
        fixed = own_brands(body)
        if fixed != body:
            fh.seek(8)
            fh.write(fixed)
