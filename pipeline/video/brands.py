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
# Major brands whose promise (negative composition offsets, ...) must stay among the
# compatible brands once the major brand is isom.
_NEEDS_KEEPING = frozenset({b"iso4", b"iso5", b"iso6"})


def own_brands(ftyp_body: bytes) -> bytes:
    """An ``ftyp`` payload that names ``isom`` as its major brand and only brands that
    describe our output among the compatible ones.

    ``isom`` is the major brand every tool accepts (AtomicParsley refuses ``iso4``); an
    ``iso4``-``iso6`` major brand (negative composition offsets) moves to the compatible
    brands. The payload keeps its length (so no offset in the file moves): a foreign
    compatible brand becomes ``mp42`` (or ``isom`` when ``mp42`` is already listed).

    Raises:
        Nothing.
    """
    if len(ftyp_body) < 8 or len(ftyp_body) % 4:
        return ftyp_body
    old_major = ftyp_body[:4]
    compatible = [ftyp_body[i:i + 4] for i in range(8, len(ftyp_body), 4)]
    filler = b"mp42" if b"mp42" not in compatible else b"isom"
    compatible = [b if b in OWN_BRANDS else filler for b in compatible]
    if old_major in _NEEDS_KEEPING and old_major not in compatible:
        # Keep what the old major brand promised: it takes the slot of a repeated brand,
        # else of isom (the major brand now), else of the last one.
        repeated = next((i for i, b in enumerate(compatible) if compatible.index(b) != i),
                        compatible.index(b"isom") if b"isom" in compatible else -1)
        if compatible:
            compatible[repeated] = old_major
    return b"isom" + ftyp_body[4:8] + b"".join(compatible)


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
