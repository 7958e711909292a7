"""Name a file's format from its magic bytes, never from its name or Content-Type.

The answer picks the one decoder allowed to open the file: a Pillow plugin for images, a forced
ffmpeg demuxer for videos. ISO-BMFF files are told apart by their ftyp brands (HEIF/AVIF still
images vs MP4 vs QuickTime), EBML files by their DocType (WebM vs Matroska).
"""

from __future__ import annotations

import struct
from pathlib import Path

from ..errors import CorruptMedia, UnsupportedMedia

IMAGE_FORMATS = {"jpeg", "png", "webp", "gif", "heif", "avif", "tiff", "bmp"}
VIDEO_FORMATS = {"mp4", "mov", "webm", "matroska", "avi", "mpegts"}

# Codec-specific HEIF brands; mif1/msf1/mif2/miaf are generic and shared with AVIF.
_HEIF_ONLY_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"}
_HEIF_BRANDS = _HEIF_ONLY_BRANDS | {b"mif1", b"msf1", b"mif2", b"miaf"}
_AVIF_BRANDS = {b"avif", b"avis"}
# Brands that mark a file as a movie: an MP4 that also lists mif1 is still a video.
_VIDEO_BRANDS = {b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1",
                 b"M4V ", b"M4VH", b"M4VP", b"qt  ", b"3gp4", b"3gp5", b"3gp6", b"3g2a",
                 b"dash", b"MSNV", b"f4v "}


def sniff(path: Path) -> str:
    """Name the container/format from magic bytes.

    Raises:
        CorruptMedia: an empty file.
        UnsupportedMedia: anything not on the accepted list (SVG, PDF, text, playlists, ...).
    """
    with path.open("rb") as fh:
        head = fh.read(4096)
    if not head:
        raise CorruptMedia("the file is empty")
    fmt = _sniff_bytes(head)
    if fmt is None:
        raise UnsupportedMedia("not a supported image or video format (sniffed from its bytes)")
    return fmt


def _sniff_bytes(head: bytes) -> str | None:
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if _is_bmp(head):
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm" if _ebml_doctype(head) == b"webm" else "matroska"
    if len(head) >= 16 and head[4:8] == b"ftyp":
        return _iso_bmff_kind(head)
    if len(head) >= 16 and head[4:8] in _QT_TOP_BOXES and struct.unpack(">I", head[:4])[0] >= 8:
        return "mov"  # old QuickTime files start straight with a box, no ftyp
    if _is_mpegts(head):
        return "mpegts"
    return None


# Top-level boxes an ftyp-less QuickTime file may start with.
_QT_TOP_BOXES = {b"moov", b"mdat", b"wide", b"free", b"skip"}
_BMP_DIB_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}
_TS_PACKET = 188


def _is_bmp(head: bytes) -> bool:
    """``BM`` plus a known DIB header size: two letters alone would match plain text."""
    if head[:2] != b"BM" or len(head) < 26:
        return False
    return struct.unpack("<I", head[14:18])[0] in _BMP_DIB_SIZES


def _is_mpegts(head: bytes) -> bool:
    """A 0x47 sync byte every 188 bytes in every packet we have (at least three)."""
    packets = len(head) // _TS_PACKET
    if packets < 3:
        return False
    return all(head[i * _TS_PACKET] == 0x47 for i in range(packets))


def _ebml_doctype(head: bytes) -> bytes | None:
    """The DocType (``webm``/``matroska``) from the EBML header, parsed, not searched for."""
    pos, header_end = _ebml_element(head, 0)
    if header_end is None:
        return None
    while pos < min(header_end, len(head)):
        element_id = head[pos:pos + 2]
        body, end = _ebml_element(head, pos)
        if end is None:
            return None
        if element_id == b"\x42\x82":
            return head[body:end]
        pos = end
    return None


def _ebml_element(buf: bytes, pos: int) -> tuple[int, int | None]:
    """(start of the body, end of the element) for the element at ``pos``; end None if bad."""
    if pos >= len(buf):
        return pos, None
    first = buf[pos]
    id_len = next((n for n in range(1, 5) if first & (0x80 >> (n - 1))), 0)
    if not id_len or pos + id_len >= len(buf):
        return pos, None
    lead = buf[pos + id_len]
    size_len = next((n for n in range(1, 9) if lead & (0x80 >> (n - 1))), 0)
    if not size_len or pos + id_len + size_len > len(buf):
        return pos, None
    size = lead & (0xFF >> size_len)
    for byte in buf[pos + id_len + 1:pos + id_len + size_len]:
        size = (size << 8) | byte
    body = pos + id_len + size_len
    return body, body + size


def _iso_bmff_kind(head: bytes) -> str:
    """HEIF/AVIF still images vs MP4/M4V vs QuickTime, from the ftyp major and compatible brands.

    A codec-specific major brand decides (``heic``, ``avif``, ``qt  ``); after a generic one
    (``mif1``) the compatible brands do, and image brands win only when no movie brand is
    listed. M4V (``M4V ``) and 3GP are MP4 for our purposes: the same demuxer reads them.
    """
    major = head[8:12]
    size = struct.unpack(">I", head[:4])[0]
    compatible = {head[i:i + 4] for i in range(16, min(max(size, 16), len(head)) - 3, 4)}
    if major == b"qt  ":
        return "mov"
    if major in _AVIF_BRANDS:
        return "avif"
    if major in _HEIF_ONLY_BRANDS:
        return "heif"
    if major not in _VIDEO_BRANDS and not compatible & _VIDEO_BRANDS:
        # A generic major brand (mif1, msf1, miaf): the compatible list says which codec.
        if compatible & _AVIF_BRANDS and not compatible & _HEIF_ONLY_BRANDS:
            return "avif"
        if (compatible | {major}) & _HEIF_BRANDS:
            return "heif"
    return "mp4"  # isom, mp41/42, M4V, 3gp, iso5 (fragmented) ...

