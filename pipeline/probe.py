"""Sniff and probe media into a typed :class:`MediaInfo` (ffprobe JSON for video, Pillow images).

The display size (rotation and SAR applied) is resolved here, once, so no later stage reasons
about rotation or anamorphic pixels again. Formats are decided by magic bytes, never by file
name or Content-Type.
"""

from __future__ import annotations

import array
import io
import itertools
import json
import logging
import mmap
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from . import ffmpeg
from .budget import BUDGET, MAX_DECODE_BYTES, decode_cost_bytes, return_freed_memory, too_large
from .errors import (
    CorruptMedia,
    FFmpegError,
    FFmpegTimeout,
    PipelineError,
    TooLarge,
    UnsupportedMedia,
)
from .models import AudioStream, ImageFacts, MediaInfo, VideoStream

log = logging.getLogger(__name__)

IMAGE_FORMATS = {"jpeg", "png", "webp", "gif", "heif", "avif", "tiff", "bmp"}
VIDEO_FORMATS = {"mp4", "mov", "webm", "matroska", "avi", "mpegts"}
# Pillow decoders we allow, by sniffed format (Image.open(formats=...)).
PIL_FORMATS = {
    "jpeg": ("JPEG", "MPO"), "png": ("PNG",), "webp": ("WEBP",), "gif": ("GIF",),
    "heif": ("HEIF",), "avif": ("AVIF", "HEIF"), "tiff": ("TIFF",), "bmp": ("BMP", "DIB"),
}
# Codec-specific HEIF brands; mif1/msf1/mif2/miaf are generic and shared with AVIF.
_HEIF_ONLY_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"}
_HEIF_BRANDS = _HEIF_ONLY_BRANDS | {b"mif1", b"msf1", b"mif2", b"miaf"}
_AVIF_BRANDS = {b"avif", b"avis"}
# Brands that mark a file as a movie: an MP4 that also lists mif1 is still a video.
_VIDEO_BRANDS = {b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1",
                 b"M4V ", b"M4VH", b"M4VP", b"qt  ", b"3gp4", b"3gp5", b"3gp6", b"3g2a",
                 b"dash", b"MSNV", b"f4v "}
HDR_TRANSFERS = {"smpte2084", "arib-std-b67"}
# What Pillow raises on a damaged file (besides the decompression-bomb errors).
_PIL_READ_ERRORS = (OSError, SyntaxError, ValueError, struct.error, EOFError, IndexError,
                    KeyError, TypeError, ZeroDivisionError)

_pillow_ready = False


def setup_pillow(max_pixels: int, max_decode_bytes: int = MAX_DECODE_BYTES) -> None:
    """Register the HEIF opener and make decompression bombs an error, not a warning.

    Pillow warns above ``MAX_IMAGE_PIXELS`` and raises only above twice that; the warning is
    turned into an error so the limit is ``max_pixels`` itself. :func:`probe_image` checks the
    same limit explicitly, so it holds even where a warnings filter was reset (threads, tests).
    ``max_decode_bytes`` sizes the process-wide decode budget (:mod:`pipeline.budget`).
    """
    global _pillow_ready
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = max_pixels
    BUDGET.resize(max_decode_bytes)
    return_freed_memory()
    warnings.simplefilter("error", Image.DecompressionBombWarning)
    if not _pillow_ready:
        try:
            import pillow_heif

            pillow_heif.register_heif_opener()
        except ImportError:  # pragma: no cover - declared dependency
            log.warning("pillow-heif is not installed: HEIC/HEIF input is unsupported")
        _pillow_ready = True


# --------------------------------------------------------------------------- sniffing


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


# --------------------------------------------------------------------------- probing


# The largest video frame any platform takes: YouTube's 8K (7680x4320), DCI 8K (8192x4320)
# for the longest side. Anything bigger is refused from the stream header, before ffmpeg
# decodes a frame (a 16000x16000 frame costs 2.5 GB per ffmpeg process).
MAX_VIDEO_SIDE_PX = 8192
MAX_VIDEO_PIXELS = 8192 * 4320


def probe(path: Path, *, timeout_s: float = 60.0, max_pixels: int = 400_000_000,
          max_frames: int = 2000, max_video_side_px: int = MAX_VIDEO_SIDE_PX,
          max_video_pixels: int = MAX_VIDEO_PIXELS,
          max_decode_bytes: int = MAX_DECODE_BYTES) -> MediaInfo:
    """Probe a local file we wrote.

    Raises:
        UnsupportedMedia: unknown format, no video stream, or an unknown codec.
        CorruptMedia: undecodable or truncated.
        TooLarge: an image header claims more pixels or frames than any camera makes, or more
            decode memory than ``max_decode_bytes``, or a video frame is larger than any
            platform takes.
    """
    fmt = sniff(path)
    if fmt in IMAGE_FORMATS:
        if not _pillow_ready:  # library use without runner/CLI: HEIF opener and bomb limit
            setup_pillow(max_pixels, max_decode_bytes)
        return probe_image(path, fmt, max_pixels=max_pixels, max_frames=max_frames,
                           max_decode_bytes=max_decode_bytes)
    if fmt in ("mp4", "mov"):
        check_bmff_complete(path)
    elif fmt in ("webm", "matroska"):
        check_matroska_complete(path)
    return probe_video(path, fmt, timeout_s=timeout_s, max_side_px=max_video_side_px,
                       max_pixels=max_video_pixels)


# Top-level boxes that hold the movie itself; one that runs past the end of the file means the
# file was cut short (an interrupted upload). ffprobe reads only the moov, so a faststart file
# cut in half still probes "fine" and would fail much later, in the encoder.
_ESSENTIAL_BOXES = {b"moov", b"mdat", b"moof"}


def check_bmff_complete(path: Path) -> None:
    """Refuse an MP4/MOV whose moov, mdat or moof box runs past the end of the file.

    Raises:
        CorruptMedia: the file is truncated.
    """
    size = path.stat().st_size
    with path.open("rb") as fh:
        for kind, start, box_size in _boxes(fh, size):
            if kind in _ESSENTIAL_BOXES and start + box_size > size:
                raise CorruptMedia(
                    f"truncated file: the {kind.decode('latin-1')!r} box needs "
                    f"{start + box_size} bytes, the file has {size}",
                    details={"box": kind.decode("latin-1"), "needed_bytes": start + box_size,
                             "size_bytes": size},
                )


# Matroska/WebM (EBML) element IDs: the Segment holds the movie, Clusters hold the frames.
_EBML_SEGMENT = 0x18538067
_EBML_CLUSTER = 0x1F43B675
# Past this many elements the Matroska check stops, inconclusive (ffprobe still reads the file).
_EBML_SCAN_LIMIT = 1_000_000


def _ebml_header(head: bytes) -> tuple[int, int | None, int] | None:
    """Parse an EBML element header: (ID, data size or None if unknown, header length).

    Returns None when ``head`` ends inside the header.

    Raises:
        ValueError: not an element header (no length marker in a first byte).
    """
    if not head:
        return None
    id_len = 9 - head[0].bit_length()
    if id_len > 4:
        raise ValueError("no EBML element here")
    if len(head) <= id_len:
        return None
    size_len = 9 - head[id_len].bit_length()
    if size_len > 8:
        raise ValueError("no EBML element size here")
    if len(head) < id_len + size_len:
        return None
    ident = int.from_bytes(head[:id_len], "big")
    mask = (1 << (7 * size_len)) - 1
    size = int.from_bytes(head[id_len:id_len + size_len], "big") & mask
    return ident, (None if size == mask else size), id_len + size_len


def check_matroska_complete(path: Path) -> None:
    """Refuse a Matroska/WebM file cut short: an element that runs past the end of the file.

    The element headers are walked from the top (the Segment's children, and the blocks of a
    Cluster whose size is unknown); a Segment or Cluster of unknown size (a live recording)
    is fine as long as every element with a size fits. ffprobe reads only the start of a
    Matroska file, so a file cut in half would otherwise probe "fine" and fail in the
    encoder.

    Raises:
        CorruptMedia: the file is truncated.
    """
    size = path.stat().st_size
    pos = 0
    with path.open("rb") as fh:
        for _ in range(_EBML_SCAN_LIMIT):
            if pos >= size:
                return
            fh.seek(pos)
            try:
                element = _ebml_header(fh.read(12))
            except ValueError:
                return  # not an element: ffprobe judges the rest
            if element is None:
                raise CorruptMedia(f"truncated file: it ends inside an element header at "
                                   f"byte {pos}", details={"size_bytes": size})
            ident, data_size, header = element
            if data_size is None:
                if ident not in (_EBML_SEGMENT, _EBML_CLUSTER):
                    return  # an unknown-size element we do not walk into: inconclusive
                pos += header  # live recording: walk its children
                continue
            end = pos + header + data_size
            if end > size:
                raise CorruptMedia(
                    f"truncated file: an element at byte {pos} needs {end} bytes, the file "
                    f"has {size}", details={"element_id": f"{ident:X}", "needed_bytes": end,
                                            "size_bytes": size})
            if ident == _EBML_SEGMENT:
                return  # the whole Segment is there
            pos = end


def open_image(path: Path, fmt: str) -> Any:
    """Open an image lazily with only the decoder the sniffed format calls for.

    Raises:
        CorruptMedia: Pillow cannot identify or read the header.
        TooLarge: a decompression bomb.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path, formats=PIL_FORMATS.get(fmt, ()))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise TooLarge(
            f"image is too large to decode safely (over the {Image.MAX_IMAGE_PIXELS}-pixel "
            "limit): a decompression bomb or a corrupt header",
            details={"pillow": str(err)},
        ) from err
    except (UnidentifiedImageError, *_PIL_READ_ERRORS) as err:
        raise CorruptMedia(f"unreadable {fmt} image: {err}") from err


def probe_image(path: Path, fmt: str, *, max_pixels: int, max_frames: int,
                max_decode_bytes: int = MAX_DECODE_BYTES) -> MediaInfo:
    """Read image facts from the header (no full decode, except a cheap truncation check).

    An error says the file is an image (``details["media_kind"]``), so an account that fails
    on it is labelled with its image variant.

    Args:
        path: a local file we wrote.
        fmt: the sniffed format; only its Pillow decoder is allowed to open the file.
        max_pixels: the largest width x height accepted (a decompression bomb beyond).
        max_frames: the most frames an animation may have.
        max_decode_bytes: the most memory one decode may take, estimated from the header
            (size, mode, bit depth): :func:`pipeline.budget.decode_cost_bytes`. A JPEG counts
            at 1/8 scale, the smallest libjpeg can decode it at.

    Returns:
        Facts with ``width``/``height`` as displayed (EXIF orientation applied) and the stored
        size in ``image.stored_width``/``stored_height``.

    Raises:
        CorruptMedia: unreadable or truncated.
        TooLarge: over the pixel, frame or decode-memory limit.
    """
    try:
        return _probe_image(path, fmt, max_pixels=max_pixels, max_frames=max_frames,
                            max_decode_bytes=max_decode_bytes)
    except PipelineError as err:
        err.details = {**err.details, "media_kind": "image"}
        raise


def _probe_image(path: Path, fmt: str, *, max_pixels: int, max_frames: int,
                 max_decode_bytes: int) -> MediaInfo:
    im = open_image(path, fmt)
    with im:
        width, height = im.size
        if width <= 0 or height <= 0:
            raise CorruptMedia(f"the {fmt} image has no picture size ({width}x{height})")
        if width * height > max_pixels:
            raise TooLarge(f"image has {width}x{height} pixels, over the {max_pixels} limit",
                           details={"width": width, "height": height, "max_pixels": max_pixels})
        bits = 16 if im.mode in ("I;16", "I;16B", "I;16L", "I") else 8
        if fmt == "png" and _png_bit_depth(path) == 16:
            bits = 16
        # Decode memory from the header, before anything can decode (Pillow's PNG getexif()
        # below loads the whole picture): a 19999x19999 16-bit PNG is under the pixel cap but
        # took 3.8 GB. A JPEG counts at 1/8 scale, the smallest libjpeg decodes it at.
        step = 8 if fmt == "jpeg" and im.mode in ("RGB", "L", "CMYK") else 1
        cost = decode_cost_bytes(-(-width // step), -(-height // step), fmt=fmt, mode=im.mode,
                                 bits=bits)
        if cost > max_decode_bytes:
            raise too_large(f"the {width}x{height} {fmt} image", cost, max_decode_bytes,
                            width=width, height=height, mode=im.mode, bits=bits)
        # Probing may decode (Pillow's PNG getexif(), GIF frame seeks, the truncation check):
        # that draws on the process-wide decode budget. A JPEG is never decoded here.
        hold = 0 if fmt == "jpeg" else decode_cost_bytes(width, height, fmt=fmt, mode=im.mode,
                                                         bits=bits)
        with BUDGET.reserve(hold, f"the {fmt} image"):
            try:
                frames = int(getattr(im, "n_frames", 1) or 1)
            except _PIL_READ_ERRORS as err:
                raise CorruptMedia(f"corrupt or truncated {fmt} animation: {err}") from err
            if frames > max_frames:
                raise TooLarge(f"animation has {frames} frames, over the {max_frames} limit",
                               details={"frames": frames, "max_frames": max_frames})
            orientation, has_gps, has_exif = _exif_facts(im)
            icc = im.info.get("icc_profile")
            has_alpha = im.mode in ("RGBA", "LA", "PA") or (
                im.mode == "P" and "transparency" in im.info
            ) or "transparency" in im.info
            _check_decodable(im, fmt)
            disp_w, disp_h = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
            if fmt == "tiff" and orientation in (5, 6, 7, 8):
                # Pillow's TIFF plugin reports the size already upright (it applies the
                # orientation itself when it loads the picture).
                disp_w, disp_h, width, height = width, height, height, width
            facts = ImageFacts(
                mode=im.mode, bits=bits, has_alpha=has_alpha,
                icc_profile=_icc_name(icc) if icc else None,
                exif_orientation=orientation, has_gps=has_gps, has_exif=has_exif,
                has_xmp=bool(im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")),
                frames=frames, stored_width=width, stored_height=height,
            )
            duration = None
            if frames > 1:
                duration = sum(frame_delays_ms(im, fmt, path)) / 1000.0
                facts = replace(facts, loops_forever=im.info.get("loop") == 0)
    return MediaInfo(
        kind="image", format_name=fmt, size_bytes=path.stat().st_size,
        width=disp_w, height=disp_h, duration_s=duration, bitrate_kbps=None,
        start_time_s=0.0, image=facts,
    )


def _exif_facts(im: Any) -> tuple[int, bool, bool]:
    """(EXIF orientation, GPS present, EXIF present); a damaged EXIF block never fails the photo.

    When the block cannot be parsed we report "EXIF present" so the planner strips it rather
    than passing unknown (possibly location) metadata through.
    """
    try:
        exif = im.getexif()
        if not exif:
            return 1, False, False
        orientation = exif.get(0x0112, 1)
        orientation = orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1
        return orientation, bool(exif.get_ifd(0x8825)), True
    except _PIL_READ_ERRORS:
        return 1, False, True


def _check_decodable(im: Any, fmt: str) -> None:
    """Fail fast, here, on truncated files: a marker check for JPEG, a decode for the rest."""
    from PIL import Image

    if fmt == "jpeg":
        # A marker check, not a decode: a cut JPEG has no end-of-image marker after its scan
        # data. Decoding here (even in 1/8 draft mode) cost a third of the whole conversion;
        # damage inside the scan data still fails at render time, as corrupt_media.
        if not _jpeg_has_end(im.fp):
            raise CorruptMedia("corrupt or truncated jpeg image: no end-of-image marker")
        return
    try:
        if im.size[0] * im.size[1] <= 40_000_000:
            im.load()
        # Larger non-JPEG images (a 200 MP HEIC) are checked from the header only: decoding
        # them twice would double the cost; render() maps a decode failure to corrupt_media.
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise TooLarge(f"image is too large to decode safely: {err}") from err
    except _PIL_READ_ERRORS as err:
        raise CorruptMedia(f"corrupt or truncated {fmt} image: {err}") from err


def _jpeg_has_end(fp: Any) -> bool:
    """Whether an end-of-image marker (FF D9) follows the first start-of-scan (FF DA)."""
    fp.seek(0)
    try:
        with mmap.mmap(fp.fileno(), 0, access=mmap.ACCESS_READ) as data:
            sos = data.find(b"\xff\xda")
            return sos >= 0 and data.find(b"\xff\xd9", sos + 2) >= 0
    except (OSError, ValueError, io.UnsupportedOperation):
        data_bytes: bytes = fp.read()
        sos = data_bytes.find(b"\xff\xda")
        return sos >= 0 and data_bytes.find(b"\xff\xd9", sos + 2) >= 0


def _png_bit_depth(path: Path) -> int:
    with path.open("rb") as fh:
        head = fh.read(26)
    return head[24] if len(head) >= 25 else 8


def _icc_name(icc: bytes) -> str:
    try:
        from PIL import ImageCms

        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        desc = ImageCms.getProfileDescription(profile).strip()
        return desc or "embedded"
    except Exception:  # a bad ICC is reported as "embedded"; the planner decides what to do
        return "embedded"


# Browsers (Chromium, Firefox, Safari) show a frame whose delay is 10 ms or less for 100 ms:
# old GIFs and ads set 0 or 1 cs to mean "as fast as possible", which would otherwise flash.
# GIF, APNG and WebP alike; ffmpeg's GIF demuxer does the same (min_delay 2 cs ->
# default_delay 10 cs), and the APNG input is told to (see video.APNG_INPUT).
BROWSER_MIN_DELAY_MS = 10
BROWSER_DEFAULT_DELAY_MS = 100


def shown_delay_ms(delay_ms: float) -> float:
    """How long a viewer shows a frame with this stored delay (the browsers' rule)."""
    return float(BROWSER_DEFAULT_DELAY_MS) if delay_ms <= BROWSER_MIN_DELAY_MS else delay_ms


def first_animation_frame(im: Any, fmt: str) -> int:
    """1 for an APNG whose default image is not part of the animation (Pillow's frame 0,
    which players and ffmpeg's demuxer skip), else 0."""
    return 1 if fmt == "png" and im.info.get("default_image") else 0


def frame_delays_ms(im: Any, fmt: str, path: Path) -> list[float]:
    """Every animation frame's display time in ms, as browsers show it, in frame order.

    WebP delays come from the ANMF chunks: Pillow sets a WebP frame's ``duration`` only when
    the frame is decoded, and decoding every frame here would cost a full decode.

    Raises:
        CorruptMedia: the animation cannot be read.
    """
    raw: list[float] = []
    first = first_animation_frame(im, fmt)
    try:
        if fmt == "webp":
            raw = [float(d) for d in _webp_frame_delays_ms(path)]
        if len(raw) != im.n_frames:
            raw = []
            for i in range(first, im.n_frames):
                im.seek(i)
                raw.append(float(im.info.get("duration") or 0))
            im.seek(0)
    except _PIL_READ_ERRORS as err:
        raise CorruptMedia(f"corrupt or truncated animation: {err}") from err
    return [shown_delay_ms(d) for d in raw]


def _webp_frame_delays_ms(path: Path) -> list[int]:
    """The duration field (24-bit little-endian ms) of each ANMF chunk of an animated WebP."""
    delays: list[int] = []
    with path.open("rb") as fh:
        head = fh.read(12)
        end = min(path.stat().st_size, 8 + struct.unpack("<I", head[4:8])[0]) if len(
            head) == 12 else 0
        pos = 12
        while pos + 8 <= end:
            fh.seek(pos)
            kind, size = struct.unpack("<4sI", fh.read(8))
            if kind == b"ANMF":
                body = fh.read(16)
                if len(body) < 16:
                    break
                delays.append(int.from_bytes(body[12:15], "little"))
            pos += 8 + size + (size & 1)
    return delays


# --------------------------------------------------------------------------- video


def ffprobe_argv(path: Path, fmt: str) -> list[str]:
    """The ffprobe argv for a local file: JSON out, only the ``file`` protocol, forced demuxer.

    With the demuxer forced, a playlist (HLS, ``ffconcat``) saved under a video name is read as
    the container we sniffed and fails as corrupt instead of being followed; the protocol
    whitelist stops any reference inside a real container (MOV data references, which the mov
    demuxer also ignores by default) from reaching the network.

    Raises:
        UnsupportedMedia: ``fmt`` has no demuxer of ours: ffprobe is never left to guess.
        ConfigError: ffprobe is not installed.
    """
    if fmt not in ffmpeg.DEMUXERS:
        raise UnsupportedMedia(f"no demuxer is allowed for {fmt!r}")
    return ffmpeg.ffprobe_head("-v", "error", "-print_format", "json", "-show_format",
                               "-show_streams", *ffmpeg.probe_input(path, fmt))


def ffprobe_json(path: Path, fmt: str, *, timeout_s: float) -> dict[str, Any]:
    """Raw ffprobe output for a local file, with the demuxer forced and protocols locked down.

    Raises:
        UnsupportedMedia: no demuxer is allowed for ``fmt``.
        CorruptMedia: ffprobe cannot read the file (the stderr tail is in the message and in
            ``details["stderr"]``).
        FFmpegTimeout: ffprobe ran past ``timeout_s`` and was killed (``processing_timeout``).
        ConfigError: ffprobe is not installed.
    """
    args = ffprobe_argv(path, fmt)
    try:
        out = ffmpeg.run(args, timeout_s=timeout_s).stdout
    except FFmpegTimeout:
        raise
    except FFmpegError as err:
        tail = err.stderr_tail.strip()
        raise CorruptMedia(f"cannot read the {fmt} file: {tail[-300:] or 'ffprobe failed'}",
                           details={"stderr": tail, "returncode": err.returncode}) from err
    try:
        data = json.loads(out or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptMedia("ffprobe returned unreadable output") from err
    if not isinstance(data, dict):
        raise CorruptMedia("ffprobe returned unreadable output")
    return data


def probe_video(path: Path, fmt: str, *, timeout_s: float = 60.0,
                max_side_px: int = MAX_VIDEO_SIDE_PX,
                max_pixels: int = MAX_VIDEO_PIXELS) -> MediaInfo:
    """Probe a video file into :class:`MediaInfo`.

    Raises:
        UnsupportedMedia: no video stream (audio-only), or a codec this ffmpeg cannot decode.
        CorruptMedia: ffprobe fails or reports nonsense.
        TooLarge: the coded or displayed frame is over ``max_side_px`` on a side or over
            ``max_pixels`` (checked from the headers, before anything is decoded).
    """
    data = ffprobe_json(path, fmt, timeout_s=timeout_s)
    streams = data.get("streams") or []
    fmt_info = data.get("format") or {}
    vstreams = [s for s in streams if s.get("codec_type") == "video"
                and not (s.get("disposition") or {}).get("attached_pic")]
    astreams = [s for s in streams if s.get("codec_type") == "audio"]
    if not vstreams:
        if astreams:
            raise UnsupportedMedia("the file has audio but no video stream")
        raise CorruptMedia("no video stream found")
    video = _video_stream(vstreams[0])
    check_frame_size(video, max_side_px=max_side_px, max_pixels=max_pixels)
    packets = _scan_packets(path, fmt, timeout_s=timeout_s)
    video = _with_packet_facts(video, packets)
    audio = _audio_stream(astreams[0]) if astreams else None
    if audio is not None and fmt in ("mp4", "mov"):
        audio = replace(audio, priming_s=_hidden_priming_s(path, fmt, astreams[0],
                                                           timeout_s=timeout_s))
    duration = _float(fmt_info.get("duration")) or _float(vstreams[0].get("duration"))
    start = _float(fmt_info.get("start_time")) or 0.0
    length = packets.end_s - packets.start_s
    if duration and packets.start_s > 0.5 and 0 < length < duration - 0.05:
        # An offset first PTS (10 s) in an MP4/MKV whose declared duration is the end time:
        # the container looks 10 s longer than the video really is.
        duration = length
    if not duration and fmt in ("webm", "matroska") and length > 0:
        # A live recording (unknown-size Segment) declares no duration: the packets tell it.
        duration = length
    if not duration or duration <= 0:
        raise CorruptMedia("the video has no duration")
    moov_first = _moov_first(path) if fmt in ("mp4", "mov") else None
    return MediaInfo(
        kind="video", format_name=fmt, size_bytes=path.stat().st_size,
        width=video.display_width, height=video.display_height, duration_s=duration,
        bitrate_kbps=_kbps(fmt_info.get("bit_rate")), start_time_s=start,
        video=video, audio=audio, moov_first=moov_first,
        edit_list=_has_edit_list(path) if fmt in ("mp4", "mov") else False,
        has_location=_has_location(fmt_info, streams),
        extra_streams=len(streams) - 1 - (1 if astreams else 0),
    )


def check_frame_size(video: VideoStream, *, max_side_px: int, max_pixels: int) -> None:
    """Refuse a frame larger than any platform takes, coded or as displayed (SAR applied).

    Raises:
        TooLarge: a side over ``max_side_px`` or an area over ``max_pixels``.
    """
    for width, height in ((video.width, video.height),
                          (video.display_width, video.display_height)):
        if max(width, height) > max_side_px or width * height > max_pixels:
            raise TooLarge(
                f"video frame {width}x{height} is larger than any platform takes "
                f"(at most {max_side_px} px a side and {max_pixels} pixels)",
                details={"width": width, "height": height, "max_side_px": max_side_px,
                         "max_pixels": max_pixels},
            )


# A frame interval this far from the typical one is irregular (a dropped or held frame)...
_IRREGULAR_INTERVAL = 0.25
# ...and a stream with more than this share of irregular intervals is variable frame rate.
# Phones drop the odd frame: that alone is not VFR to a platform's fps check.
_VFR_SHARE = 0.02


@dataclass(frozen=True, slots=True)
class PacketFacts:
    """What the video packet index says: keyframe spacing and frame timing."""

    packets: int
    max_keyframe_interval_s: float
    irregular: bool
    start_s: float
    end_s: float


def _scan_packets(path: Path, fmt: str, *, timeout_s: float) -> PacketFacts:
    """Read the video packet index (times and key flags, no decoding) with ffprobe.

    The longest keyframe gap includes the stretch from the last keyframe to the end, so a
    clip with one keyframe at 0 s reports its whole length. Every video is scanned (it reads
    the file once, without decoding): the keyframe spacing decides whether a stream can be
    kept, and the first and last timestamps give the real length of an offset stream.

    Raises:
        CorruptMedia: ffprobe cannot read the packets.
        FFmpegTimeout: ffprobe ran past ``timeout_s``.
    """
    # CSV, not JSON: one short line per packet keeps a 1-hour 60 fps file's scan at a few MB
    # (JSON objects cost ~0.75 KB per packet once parsed). ffprobe prints the fields in its own
    # order: pts_time, dts_time, duration_time, flags.
    args = ffmpeg.ffprobe_head("-v", "error", "-select_streams", "v:0",
                               "-show_entries", "packet=pts_time,dts_time,duration_time,flags",
                               "-print_format", "csv=p=0", *ffmpeg.probe_input(path, fmt))
    out = _packets_csv(args, "video", timeout_s=timeout_s)
    times = array.array("d")
    keys = array.array("d")
    end = 0.0
    for line in out.splitlines():
        fields = line.decode("ascii", "replace").split(",")
        if len(fields) < 4:
            continue
        t = _float(fields[0])
        if t is None:
            t = _float(fields[1])
        if t is None:
            continue
        times.append(t)
        end = max(end, t + (_float(fields[2]) or 0.0))
        if "K" in fields[3]:
            keys.append(t)
    if not times:
        raise CorruptMedia("the video stream has no packets")
    times = array.array("d", sorted(times))
    start = times[0]
    marks = sorted(keys) or [start]
    marks.append(end)
    if marks[0] > start:
        marks.insert(0, start)  # frames before the first keyframe cannot be shown on their own
    gap = max((b - a for a, b in itertools.pairwise(marks)), default=0.0)
    deltas = array.array("d", (b - a for a, b in itertools.pairwise(times) if b - a > 1e-6))
    irregular = False
    if len(deltas) >= 3:
        typical = sorted(deltas)[len(deltas) // 2]
        off = sum(1 for d in deltas if abs(d - typical) > typical * _IRREGULAR_INTERVAL)
        irregular = off > max(1, len(deltas) * _VFR_SHARE)
    return PacketFacts(len(times), round(gap, 6), irregular, start, end)


def _with_packet_facts(v: VideoStream, facts: PacketFacts) -> VideoStream:
    # VP9/AV1 have invisible (alt-ref) packets a millisecond apart: only H.264/HEVC packet
    # timing says anything about the frame rate.
    irregular = facts.irregular and v.codec in ("h264", "hevc")
    return replace(v, max_keyframe_interval_s=facts.max_keyframe_interval_s,
                   vfr=v.vfr or irregular,
                   frame_count=v.frame_count or (facts.packets if v.codec in ("h264", "hevc")
                                                 else None))


def _has_location(fmt_info: dict[str, Any], streams: list[dict[str, Any]]) -> bool:
    """GPS/location tags (ISO 6709 in QuickTime/MP4 udta): stripped from outputs for privacy."""
    tag_sets = [fmt_info.get("tags") or {}] + [s.get("tags") or {} for s in streams]
    return any("location" in key.lower() for tags in tag_sets for key in tags)


def _video_stream(s: dict[str, Any]) -> VideoStream:
    codec = s.get("codec_name")
    if not codec or codec == "none":
        raise UnsupportedMedia(f"video codec {s.get('codec_tag_string', '?')!r} is not supported")
    width, height = int(s.get("width") or 0), int(s.get("height") or 0)
    if width <= 0 or height <= 0:
        raise CorruptMedia("the video stream has no picture size")
    sar = _ratio(s.get("sample_aspect_ratio")) or Fraction(1)
    rotation, mirrored, matrix = _rotation(s)
    disp_w = width * sar.numerator / sar.denominator if sar != 1 else width
    disp_w_i, disp_h_i = _floor_even(round(disp_w)), height
    if sar == 1:
        disp_w_i = width
    if rotation in (90, 270):
        disp_w_i, disp_h_i = disp_h_i, disp_w_i
    avg = _ratio(s.get("avg_frame_rate")) or Fraction(0)
    real = _ratio(s.get("r_frame_rate")) or avg
    fps = avg if avg > 0 else real
    vfr = bool(avg and real and abs(float(avg) - float(real)) / float(real) > 0.02)
    pix_fmt = s.get("pix_fmt") or "unknown"
    depth = int(s.get("bits_per_raw_sample") or 0) or (
        10 if "10" in pix_fmt else 12 if "12" in pix_fmt else 8)
    transfer = s.get("color_transfer")
    side = s.get("side_data_list") or []
    hdr = transfer in HDR_TRANSFERS or any(
        d.get("side_data_type") in ("Mastering display metadata", "Content light level metadata")
        and depth > 8 for d in side)
    field_order = s.get("field_order")
    interlaced = field_order not in (None, "progressive", "unknown")
    frames = s.get("nb_frames")
    return VideoStream(
        codec=codec, profile=s.get("profile"), width=width, height=height,
        display_width=disp_w_i, display_height=disp_h_i, rotation_deg=rotation,
        mirrored=mirrored, display_matrix=matrix, sar=sar, fps=fps, fps_real=real, vfr=vfr,
        pix_fmt=pix_fmt, bit_depth=depth, color_transfer=transfer,
        color_primaries=s.get("color_primaries"), color_space=s.get("color_space"),
        color_range=s.get("color_range"), hdr=hdr, interlaced=interlaced,
        bitrate_kbps=_kbps(s.get("bit_rate")),
        frame_count=int(frames) if frames and str(frames).isdigit() else None,
        has_b_frames=int(s.get("has_b_frames") or 0),
    )


def _rotation(s: dict[str, Any]) -> tuple[int, bool, tuple[int, ...] | None]:
    """Clockwise display rotation (0/90/180/270), whether it mirrors, and the raw matrix."""
    rotation = 0.0
    matrix: tuple[int, ...] | None = None
    for d in s.get("side_data_list") or []:
        if d.get("side_data_type") == "Display Matrix":
            rotation = float(d.get("rotation") or 0)
            matrix = _parse_matrix(d.get("displaymatrix") or "")
    if not matrix:
        tag = (s.get("tags") or {}).get("rotate")
        if tag is not None:
            rotation = -float(tag)  # the legacy tag is clockwise; side data is counter-clockwise
    turn = round(-rotation) % 360
    clockwise = min((0, 90, 180, 270), key=lambda a: min(abs(a - turn), 360 - abs(a - turn)))
    # A negative determinant flips the picture. ffmpeg's autorotate applies the flip as well
    # (transpose/hflip/vflip from the matrix signs); ffprobe's "rotation" alone does not say it.
    mirrored = bool(matrix and matrix[0] * matrix[4] - matrix[1] * matrix[3] < 0)
    return clockwise, mirrored, matrix


def _parse_matrix(text: str) -> tuple[int, ...] | None:
    numbers: list[int] = []
    for line in text.strip().splitlines():
        parts = line.split(":", 1)[-1].split()
        numbers += [int(p) for p in parts if p.lstrip("-").isdigit()]
    return tuple(numbers) if len(numbers) == 9 else None


def _hidden_priming_s(path: Path, fmt: str, stream: dict[str, Any], *,
                      timeout_s: float) -> float:
    """How much of the first audio track's start an edit list hides (the encoder's priming:
    1024 samples from ffmpeg, 2112 from Apple's AAC encoder): the first packet's time before
    the stream's start.

    Raises:
        CorruptMedia: ffprobe cannot read the packet.
        FFmpegTimeout: ffprobe ran past ``timeout_s``.
    """
    args = ffmpeg.ffprobe_head("-v", "error", "-select_streams", "a:0",
                               "-read_intervals", "%+#1", "-show_entries", "packet=pts_time",
                               "-print_format", "csv=p=0", *ffmpeg.probe_input(path, fmt))
    out = _packets_csv(args, "audio", timeout_s=timeout_s)
    first = _float(out.decode("ascii", "replace").strip().split(",")[0] if out else None)
    start = _float(stream.get("start_time")) or 0.0
    return max(0.0, start - first) if first is not None else 0.0


def _audio_stream(s: dict[str, Any]) -> AudioStream:
    return AudioStream(
        codec=s.get("codec_name") or "unknown", profile=s.get("profile"),
        sample_rate_hz=int(s.get("sample_rate") or 0), channels=int(s.get("channels") or 0),
        channel_layout=s.get("channel_layout"), bitrate_kbps=_kbps(s.get("bit_rate")),
    )


def _boxes(fh: Any, end: int) -> Iterator[tuple[bytes, int, int]]:
    """Walk ISO-BMFF boxes between the current position and ``end``: (type, start, size)."""
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


def _moov_first(path: Path) -> bool | None:
    """True when the moov box comes before mdat (what `+faststart` produces)."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        for kind, _, _ in _boxes(fh, size):
            if kind == b"moov":
                return True
            if kind == b"mdat":
                return False
    return None


def _has_edit_list(path: Path) -> bool:
    """Whether any track carries an edit list (Instagram and Threads refuse them)."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        for kind, start, box_size in _boxes(fh, size):
            if kind != b"moov":
                continue
            fh.seek(start)
            data = fh.read(min(box_size, 64 * 1024 * 1024))
            return b"elst" in data
    return False


def _ratio(value: Any) -> Fraction | None:
    if not value or not isinstance(value, str):
        return None
    num, _, den = value.partition(":" if ":" in value else "/")
    try:
        n, d = int(num), int(den or 1)
    except ValueError:
        return None
    if n <= 0 or d <= 0:
        return None
    return Fraction(n, d)


def _float(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "N/A") else None
    except (TypeError, ValueError):
        return None


def _kbps(value: Any) -> int | None:
    f = _float(value)
    return round(f / 1000) if f else None


def _floor_even(n: int) -> int:
    """``n`` rounded down to an even number, at least 2."""
    return max(2, n - (n % 2))


def _packets_csv(args: list[str], what: str, *, timeout_s: float) -> bytes:
    """Run an ffprobe packet listing; a file it cannot read is corrupt media.

    Raises:
        CorruptMedia: ffprobe cannot read the packets.
        FFmpegTimeout: ffprobe ran past ``timeout_s``.
    """
    try:
        return ffmpeg.run(args, timeout_s=timeout_s).stdout
    except FFmpegTimeout:
        raise
    except FFmpegError as err:
        raise CorruptMedia(f"cannot read the {what} packets: {err.stderr_tail.strip()[-300:]}",
                           details={"stderr": err.stderr_tail}) from err
