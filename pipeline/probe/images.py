"""Image probing with Pillow: header facts, limits, EXIF/ICC/bit depth and animation timing.

Only the decoder of the sniffed format may open a file (:data:`PIL_FORMATS`), and every limit
(pixels, frames, decode memory) is checked from the header before anything decodes.
"""

from __future__ import annotations

import io
import logging
import mmap
import struct
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..budget import BUDGET, MAX_DECODE_BYTES, decode_cost_bytes, return_freed_memory, too_large
from ..errors import CorruptMedia, PipelineError, TooLarge
from ..models import ImageFacts, MediaInfo

log = logging.getLogger(__name__)

# Pillow decoders we allow, by sniffed format (Image.open(formats=...)).
PIL_FORMATS = {
    "jpeg": ("JPEG", "MPO"), "png": ("PNG",), "webp": ("WEBP",), "gif": ("GIF",),
    "heif": ("HEIF",), "avif": ("AVIF", "HEIF"), "tiff": ("TIFF",), "bmp": ("BMP", "DIB"),
}
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


def ensure_pillow(max_pixels: int, max_decode_bytes: int) -> None:
    """:func:`setup_pillow`, unless it ran already (library use without the runner or CLI)."""
    if not _pillow_ready:
        setup_pillow(max_pixels, max_decode_bytes)


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
    with open_image(path, fmt) as im:
        width, height = im.size
        bits = _check_header(im, path, fmt, max_pixels=max_pixels,
                             max_decode_bytes=max_decode_bytes)
        # Probing may decode (Pillow's PNG getexif(), GIF frame seeks, the truncation check):
        # that draws on the process-wide decode budget. A JPEG is never decoded here.
        hold = 0 if fmt == "jpeg" else decode_cost_bytes(width, height, fmt=fmt, mode=im.mode,
                                                         bits=bits)
        with BUDGET.reserve(hold, f"the {fmt} image"):
            facts = _read_facts(im, fmt, width=width, height=height, bits=bits,
                                max_frames=max_frames)
            duration = None
            if facts.frames > 1:
                duration = sum(frame_delays_ms(im, fmt, path)) / 1000.0
                facts = replace(facts, loops_forever=im.info.get("loop") == 0)
    # Pillow's TIFF plugin reports the size already upright (see _read_facts).
    turned = facts.exif_orientation in _SWAPS_AXES and fmt != "tiff"
    return MediaInfo(
        kind="image", format_name=fmt, size_bytes=path.stat().st_size,
        width=height if turned else width, height=width if turned else height,
        duration_s=duration, bitrate_kbps=None, start_time_s=0.0, image=facts,
    )


# EXIF orientations 5-8 turn the picture a quarter: width and height swap when it is shown.
_SWAPS_AXES = (5, 6, 7, 8)


def _check_header(im: Any, path: Path, fmt: str, *, max_pixels: int,
                  max_decode_bytes: int) -> int:
    """Refuse, from the header alone, a picture too big to decode; its bits per sample.

    Raises:
        CorruptMedia: no picture size.
        TooLarge: over ``max_pixels`` or, estimated, over ``max_decode_bytes``.
    """
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
    return bits


def _read_facts(im: Any, fmt: str, *, width: int, height: int, bits: int,
                max_frames: int) -> ImageFacts:
    """Frames, EXIF, colour and alpha facts, after a truncation check.

    The order matters: the EXIF, ICC and alpha facts are read before the check decodes the
    picture, the XMP after it (a PNG's text chunks after the image data appear only then).

    Raises:
        CorruptMedia: truncated or damaged.
        TooLarge: more than ``max_frames`` frames.
    """
    frames = _frame_count(im, fmt, max_frames)
    orientation, has_gps, has_exif = _exif_facts(im)
    icc = im.info.get("icc_profile")
    has_alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
    _check_decodable(im, fmt)
    if fmt == "tiff" and orientation in _SWAPS_AXES:
        # Pillow's TIFF plugin reports the size already upright (it applies the
        # orientation itself when it loads the picture).
        width, height = height, width
    return ImageFacts(
        mode=im.mode, bits=bits, has_alpha=has_alpha,
        icc_profile=_icc_name(icc) if icc else None,
        exif_orientation=orientation, has_gps=has_gps, has_exif=has_exif,
        has_xmp=bool(im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")),
        frames=frames, stored_width=width, stored_height=height,
    )


def _frame_count(im: Any, fmt: str, max_frames: int) -> int:
    """How many frames the file has (1 for a still).

    Raises:
        CorruptMedia: the animation cannot be counted (truncated).
        TooLarge: more than ``max_frames``.
    """
    try:
        frames = int(getattr(im, "n_frames", 1) or 1)
    except _PIL_READ_ERRORS as err:
        raise CorruptMedia(f"corrupt or truncated {fmt} animation: {err}") from err
    if frames > max_frames:
        raise TooLarge(f"animation has {frames} frames, over the {max_frames} limit",
                       details={"frames": frames, "max_frames": max_frames})
    return frames


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


