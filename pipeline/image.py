"""Image engine (Pillow, pillow-heif): orientation, sRGB, alpha, geometry, byte budget, metadata.

One rendition is made in three steps: :func:`decode_image` (the upright picture, in 8-bit sRGB,
decoded no larger than the output needs), :func:`apply_geometry` (crop, resize, pad or blurred
fill) and :func:`save_within_budget` (a quality search, then downscaling, under the byte cap).

Big photos never cost their full size more often than they must: a JPEG is decoded at 1/2, 1/4
or 1/8 scale by libjpeg (draft mode) when the output is that much smaller, and a HEIC is scaled
from libheif's decoded buffer band by band, so a 200 MP phone photo needs its decoded RGB once
plus a few megabytes, never a second full-size copy.

No metadata reaches an output: encoded images are written without EXIF, XMP, IPTC or ICC (an
untagged image is sRGB, which is what every output is). An input that already conforms passes
through byte-identical apart from its metadata segments (:func:`strip_metadata`): the
compressed picture data is copied, never re-encoded.
"""

from __future__ import annotations

import io
import logging
import math
import struct
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .budget import BUDGET, decode_cost_bytes, too_large
from .errors import CannotFit, CorruptMedia, PipelineError, TooLarge
from .plan import ANIMATION_PIXEL_BUDGET, Geometry, ImageTarget
from .probe import open_image

log = logging.getLogger(__name__)

MIME = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif",
        "bmp": "image/bmp", "tiff": "image/tiff", "heif": "image/heic", "avif": "image/avif"}
# Keep at least this many source pixels per output pixel when reducing by an integer factor
# before the final Lanczos pass: Pillow's own ``reducing_gap`` advice, where the two-step
# result cannot be told from a single Lanczos pass.
REDUCING_GAP = 2.0
# Output rows resampled per band when scaling a decoded HEIC buffer (a few MB per band).
BAND_ROWS = 256
# Lanczos' support (taps each side, in source pixels at scale 1).
LANCZOS_SUPPORT = 3
# A byte budget search shrinks the picture by the square root of (cap / bytes at the floor
# quality), with this margin, bounded per round so one bad estimate cannot overshoot.
SHRINK_MARGIN = 0.95
SHRINK_MIN, SHRINK_MAX = 0.5, 0.92
MAX_SHRINK_ROUNDS = 12
# The smallest picture a byte budget may shrink to, besides the variant's minimum size.
MIN_SIDE_PX = 16
# JPEGs up to this many pixels keep full-resolution colour (4:4:4).
FULL_CHROMA_MAX_PIXELS = 1_000_000
# Pictures up to this many pixels get the slower, smaller progressive/optimised encoding.
POLISH_MAX_PIXELS = 16_000_000
# EXIF orientation → the Image.Transpose that makes the stored pixels upright (1: none).
_TRANSPOSE = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE",
              6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90"}
# Modes Image.reduce() handles.
_REDUCIBLE = ("L", "LA", "RGB", "RGBA", "RGBX", "CMYK", "I", "F")
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, struct.error, EOFError, IndexError,
                  KeyError, TypeError, ZeroDivisionError, RuntimeError)


@dataclass(frozen=True, slots=True)
class ImageResult:
    """A written image and what had to be done beyond the plan."""

    path: Path
    mime: str
    width: int
    height: int
    extra_actions: tuple[str, ...]
    warnings: tuple[str, ...]


def render_image(src: Path, src_format: str, target: ImageTarget, out: Path, *,
                 heif_cache: HeifCache | None = None) -> ImageResult:
    """Produce ``out`` from ``src`` as ``target`` says.

    Args:
        src: the source file (already sniffed and probed).
        src_format: its sniffed format (``jpeg``, ``png``, ``heif``, ...).
        target: the planned image target.
        out: where to write the result.
        heif_cache: keeps a decoded HEIF between calls for the same source, so a phone photo
            going to ten platforms is decoded once, not ten times.

    Returns:
        The written file, its size, and actions/warnings the plan could not foresee (a byte
        budget that needed a lower quality or a smaller picture).

    Raises:
        CorruptMedia: the image cannot be decoded (truncated, damaged).
        CannotFit: it cannot be brought under the byte cap above the quality floor and the
            variant's minimum size, or it is a decompression bomb.
    """
    try:
        if target.passthrough:
            data = strip_metadata(src.read_bytes(), src_format)
            if len(data) <= target.max_bytes:
                out.write_bytes(data)
                g = target.geometry
                return ImageResult(out, MIME[src_format], g.width, g.height, (), ())
            raise CannotFit(f"the image is {len(data)} bytes without its metadata, over the "
                            f"{target.max_bytes}-byte cap")
        if src_format == "heif" and heif_cache is not None:
            return render_decoded(heif_cache.get(src), target, out)  # the cache holds the cost
        draft, cost, reduced = _decode_plan(src, src_format, target)
        # Every decode draws on one budget for the whole process: jobs on other threads wait
        # rather than decode at the same time past the machine's memory.
        with BUDGET.reserve(cost, f"the {src_format} image"):
            if target.animated:
                return _render_animated(src, src_format, target, out)
            if src_format == "heif":
                return render_decoded(decode_heif_buffer(src), target, out)
            im, geometry, warnings = decode_image(src, src_format, target, min_draft=draft)
            if reduced:
                warnings = (*warnings, "downscaled_for_memory")
            return _finish(im, geometry, warnings, target, out)
    except PipelineError:
        raise
    except MemoryError as err:
        raise TooLarge(f"not enough memory to convert the {src_format} image") from err
    except _DECODE_ERRORS as err:
        if _is_bomb(err):
            raise TooLarge(f"the image is too large to decode safely: {err}") from err
        raise CorruptMedia(f"cannot decode the {src_format} image: {err}") from err


def render_decoded(buf: DecodedBuffer, target: ImageTarget, out: Path) -> ImageResult:
    """Produce ``out`` from an already decoded HEIF picture (:func:`decode_heif_buffer`).

    Decoding is the expensive part of a phone photo (about 10 s for 200 MP), so a caller making
    several targets of one HEIC can decode it once and call this for each.

    Raises:
        CannotFit: it cannot be brought under the byte cap (see :func:`save_within_budget`).
        ValueError: Pillow refuses the buffer (mapped to ``corrupt_media`` by render_image).
    """
    im, geometry = scale_buffer(buf, target.geometry)
    warnings: list[str] = []
    im = _to_srgb_8bit(im, target, warnings)
    return _finish(im, geometry, tuple(warnings), target, out)


def _finish(im: Any, geometry: Geometry, warnings: tuple[str, ...], target: ImageTarget,
            out: Path) -> ImageResult:
    result = save_within_budget(apply_geometry(im, geometry, target.background), target, out)
    return replace(result, warnings=(*warnings, *result.warnings))


def _is_bomb(err: BaseException) -> bool:
    from PIL import Image

    return isinstance(err, Image.DecompressionBombError | Image.DecompressionBombWarning)


# --------------------------------------------------------------------------- decode


def decode_image(src: Path, fmt: str, target: ImageTarget, *, min_draft: int = 1
                 ) -> tuple[Any, Geometry, tuple[str, ...]]:
    """The upright picture in 8-bit sRGB, decoded no larger than ``target`` needs.

    Args:
        src: the source file.
        fmt: its sniffed format.
        target: the planned target (its geometry says how many pixels are needed).
        min_draft: decode a JPEG at 1/``min_draft`` scale at least (2, 4 or 8), even when the
            output needs more pixels: what the memory budget allows (:func:`_decode_plan`).

    Returns:
        ``(image, geometry, warnings)``: a Pillow image in ``RGB``, ``RGBA`` or ``L`` mode, and
        the target's geometry re-expressed for that image (a HEIC comes back already cropped
        and scaled to the content size).

    Raises:
        CorruptMedia: undecodable.
        TooLarge: a decompression bomb.
        OSError: Pillow's own errors, mapped by :func:`render_image`.
    """
    if fmt == "heif":
        buf = decode_heif_buffer(src)
        im, geometry = scale_buffer(buf, target.geometry)
        del buf  # the full-size buffer goes as soon as the scaled copy exists
    else:
        im = _decode_pillow(src, fmt, target, min_draft=min_draft)
        geometry = target.geometry
    warnings: list[str] = []
    im = _to_srgb_8bit(im, target, warnings)
    return im, geometry, tuple(warnings)


def _scale_needed(g: Geometry) -> float:
    """Output pixels per source pixel of the content (at most 1: we never decode upscaled)."""
    if g.crop_width <= 0 or g.crop_height <= 0:
        return 1.0
    return min(1.0, max(g.content_width / g.crop_width, g.content_height / g.crop_height))


def _needed_size(target: ImageTarget, fmt: str) -> tuple[int, int, float]:
    """(width, height) of the whole picture the output needs, in stored orientation, and the
    scale that is of the source."""
    g = target.geometry
    scale = _scale_needed(g)
    need_w = max(1, math.ceil(g.source_width * scale))
    need_h = max(1, math.ceil(g.source_height * scale))
    if target.orientation in (5, 6, 7, 8) and fmt != "tiff":  # Pillow's TIFF is upright
        need_w, need_h = need_h, need_w  # EXIF 5-8 swap the axes
    return need_w, need_h, scale


_DRAFT_MODES = ("RGB", "L", "CMYK")
_DRAFT_STEPS = (1, 2, 4, 8)  # libjpeg's IDCT scales


def _decode_plan(src: Path, fmt: str, target: ImageTarget) -> tuple[int, int, bool]:
    """(JPEG draft reduction, estimated bytes, reduced below what the output needs) of the
    decode :func:`render_image` is about to do, from the header alone.

    A JPEG whose decode at the size the output needs is over the budget is decoded at the
    next 1/2, 1/4 or 1/8 scale that fits instead (a 200 MP photo for a 6144x8192 output is
    decoded at half size and scaled up by 0.4 %).

    Raises:
        TooLarge: even the smallest decode is over the budget.
        CorruptMedia: the header cannot be read.
    """
    limit = BUDGET.total_bytes
    with open_image(src, fmt) as im:
        width, height = im.size
        mode = im.mode
    bits = 16 if mode.startswith("I;16") or mode in ("I", "F") or _png_bits(src, fmt) == 16 else 8
    natural = 1
    if fmt == "jpeg" and mode in _DRAFT_MODES:
        need_w, need_h, scale = _needed_size(target, fmt)
        if scale <= 0.5:
            fits = min(width // need_w, height // need_h)
            natural = max(s for s in _DRAFT_STEPS if s <= max(1, fits))
        steps = [s for s in _DRAFT_STEPS if s >= natural]
    else:
        steps = [1]
    cost = 0
    for step in steps:
        cost = decode_cost_bytes(-(-width // step), -(-height // step), fmt=fmt, mode=mode,
                                 bits=bits)
        if cost <= limit:
            return step, cost, step > natural
    raise too_large(f"the {width}x{height} {fmt} image", cost, limit, width=width,
                    height=height, mode=mode, bits=bits)


def _png_bits(src: Path, fmt: str) -> int:
    """Bit depth from a PNG's IHDR (Pillow reports 16-bit RGB as 8-bit ``RGB``)."""
    if fmt != "png":
        return 8
    with src.open("rb") as fh:
        head = fh.read(25)
    return head[24] if len(head) >= 25 else 8


def _decode_pillow(src: Path, fmt: str, target: ImageTarget, *, min_draft: int = 1) -> Any:
    from PIL import Image

    im = open_image(src, fmt)
    need_w, need_h, scale = _needed_size(target, fmt)
    if fmt == "jpeg" and im.mode in _DRAFT_MODES and (scale <= 0.5 or min_draft > 1):
        # libjpeg scales by 1/2, 1/4 or 1/8 inside the IDCT, never below the size asked for
        # (unless the memory budget asks for a coarser step: min_draft).
        if min_draft > 1:
            need_w = min(need_w, max(1, im.size[0] // min_draft))
            need_h = min(need_h, max(1, im.size[1] // min_draft))
        im.draft(im.mode, (need_w, need_h))
    if getattr(im, "n_frames", 1) > 1:
        im.seek(0)
    im.load()
    # A big non-JPEG picture: an integer box reduction first, keeping REDUCING_GAP x the pixels
    # the final Lanczos pass needs; the colour conversion then runs on the smaller image.
    factor = int(min(im.size[0] / need_w, im.size[1] / need_h) / REDUCING_GAP)
    if factor >= 2 and im.mode in _REDUCIBLE:
        im = im.reduce(factor)
    orientation = target.orientation
    if fmt == "tiff":
        # Pillow's TIFF loader turns the picture upright itself when it loads it, and drops
        # the tag: apply only what is left (nothing, with this Pillow).
        orientation = int(im.getexif().get(0x0112, 1) or 1)
    method = _TRANSPOSE.get(orientation)
    if method is not None:
        im = im.transpose(Image.Transpose[method])  # keeps im.info (the ICC profile)
    return im


@dataclass(frozen=True, slots=True)
class DecodedBuffer:
    """A decoded picture as libheif hands it over: rows of ``stride`` bytes in ``mode``."""

    mode: str
    width: int
    height: int
    stride: int
    data: memoryview
    icc_profile: bytes | None


def decode_heif_buffer(src: Path) -> DecodedBuffer:
    """Decode a HEIC/HEIF's primary picture with libheif, upright, in 8 bits.

    libheif applies the container's rotation and mirroring (irot/imir) while decoding, and the
    HEIF rules make those win over an EXIF orientation, so none is applied afterwards
    (pillow-heif's Pillow plugin, which probing uses, resets the EXIF orientation to 1 for the
    same reason): an iPhone photo carrying both is rotated once, not twice.

    Raises:
        CorruptMedia: libheif cannot decode it, or its pixel layout is not RGB(A)/grey.
    """
    import pillow_heif

    try:
        heif = pillow_heif.open_heif(src, convert_hdr_to_8bit=True, remove_stride=False)
        picture = heif[heif.primary_index]
        mode, (width, height) = picture.mode, picture.size
        icc = picture.info.get("icc_profile")
        icc_bytes = bytes(icc) if isinstance(icc, bytes | bytearray) and icc else None
        data = memoryview(picture.data)  # decodes: the one full-size copy we hold
        stride = picture.stride
    except _DECODE_ERRORS as err:
        raise CorruptMedia(f"cannot decode the HEIF image: {err}") from err
    if mode not in ("RGB", "RGBA", "L"):
        raise CorruptMedia(f"unsupported HEIF pixel layout {mode}")
    return DecodedBuffer(mode, width, height, stride, data, icc_bytes)


class HeifCache:
    """The last decoded HEIF picture, by source path (one at a time: a 200 MP decode is ~600 MB)."""

    def __init__(self) -> None:
        self._src: Path | None = None
        self._buf: DecodedBuffer | None = None
        self._cost = 0

    def get(self, src: Path) -> DecodedBuffer:
        """The decoded picture of ``src``, decoding it only if it is not the one held.

        Raises:
            CorruptMedia: libheif cannot decode it.
        """
        if self._src != src or self._buf is None:
            self.clear()
            cost = _heif_cost(src)
            BUDGET.acquire(cost, "the heif image")
            try:
                self._buf = decode_heif_buffer(src)
            except BaseException:
                BUDGET.release(cost)
                raise
            self._src, self._cost = src, cost
        return self._buf

    def clear(self) -> None:
        """Let the held picture go (and its share of the decode budget)."""
        self._src, self._buf = None, None
        if self._cost:
            BUDGET.release(self._cost)
            self._cost = 0


def _heif_cost(src: Path) -> int:
    """Estimated bytes to decode a HEIF (from its header).

    Raises:
        TooLarge: over the decode budget.
        CorruptMedia: the header cannot be read.
    """
    with open_image(src, "heif") as im:
        width, height = im.size
        mode = im.mode
    cost = decode_cost_bytes(width, height, fmt="heif", mode=mode)
    if cost > BUDGET.total_bytes:
        raise too_large(f"the {width}x{height} heif image", cost, BUDGET.total_bytes,
                        width=width, height=height, mode=mode)
    return cost


def scale_buffer(buf: DecodedBuffer, g: Geometry) -> tuple[Any, Geometry]:
    """Crop and scale a decoded buffer to ``g``'s content size, a band of rows at a time.

    Each band is copied out of the buffer, box-reduced by an integer factor where the scale
    allows it and Lanczos-resampled, with enough rows of margin that the result matches a
    whole-picture resample; so memory beyond the buffer is a few megabytes, not a second copy.

    Returns:
        ``(image, geometry)``: the crop at (at most) the content size, and ``g`` re-expressed
        for it, so :func:`apply_geometry` only upscales to a minimum and draws the canvas.

    Raises:
        ValueError: Pillow refuses the buffer layout (mapped to ``corrupt_media``).
    """
    from PIL import Image

    mode, width, height, stride, data = buf.mode, buf.width, buf.height, buf.stride, buf.data
    sx, sy = width / g.source_width, height / g.source_height
    box = (g.crop_x * sx, g.crop_y * sy, (g.crop_x + g.crop_width) * sx,
           (g.crop_y + g.crop_height) * sy)
    out_w = max(1, min(g.content_width, round(box[2] - box[0])))
    out_h = max(1, min(g.content_height, round(box[3] - box[1])))
    scaled = Image.new(mode, (out_w, out_h))
    rows_per_out = (box[3] - box[1]) / out_h
    # As in _decode_pillow: an integer box reduction first where the scale allows it, then
    # Lanczos; bands start on a multiple of the factor so the blocks match a whole-image reduce.
    factor = max(1, int(min((box[2] - box[0]) / out_w, rows_per_out) / REDUCING_GAP))
    margin = (LANCZOS_SUPPORT * max(1.0, rows_per_out / factor) + 2) * factor
    for top_out in range(0, out_h, BAND_ROWS):
        bottom_out = min(out_h, top_out + BAND_ROWS)
        top = box[1] + top_out * rows_per_out
        bottom = box[1] + bottom_out * rows_per_out
        first = max(0, math.floor((top - margin) / factor) * factor)
        last = min(height, first + math.ceil((bottom + margin - first) / factor) * factor)
        rows = data[first * stride:last * stride]  # a view, not a copy
        band = Image.frombuffer(mode, (width, last - first), rows,  # type: ignore[arg-type]
                                "raw", mode, stride, 1)
        if factor > 1:
            band = band.reduce(factor)
        part = band.resize((out_w, bottom_out - top_out), Image.Resampling.LANCZOS,
                           box=(box[0] / factor, (top - first) / factor, box[2] / factor,
                                (bottom - first) / factor))
        scaled.paste(part, (0, top_out))
        del band, part, rows
    if buf.icc_profile:
        scaled.info["icc_profile"] = buf.icc_profile
    # The picture now is the crop, scaled down: what remains is an upscale to a platform
    # minimum (never done in the bands above) and the canvas (pad or blurred fill).
    done = replace(g, crop_x=0, crop_y=0, crop_width=out_w, crop_height=out_h,
                   source_width=out_w, source_height=out_h)
    return scaled, done


def _to_srgb_8bit(im: Any, target: ImageTarget, warnings: list[str]) -> Any:
    """8-bit RGB/RGBA/L in sRGB; alpha kept only where the output format has it."""
    from PIL import ImageCms

    icc = im.info.get("icc_profile")
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # Pillow's convert("L") clips 16-bit values; scale 0..65535 to 0..255 instead.
        im = im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    elif im.mode in ("F", "1"):
        im = im.convert("L")
    elif im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode in ("LA", "PA", "La", "RGBa"):
        im = im.convert("RGBA")
    elif im.mode in ("RGBX", "YCbCr", "HSV"):
        im = im.convert("RGB")
    if icc and target.to_srgb and im.mode in ("RGB", "RGBA", "L", "CMYK"):
        try:
            src_profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            out_mode = "RGBA" if im.mode == "RGBA" else "RGB"
            im = ImageCms.profileToProfile(im, src_profile, ImageCms.createProfile("sRGB"),
                                           renderingIntent=ImageCms.Intent.PERCEPTUAL,
                                           outputMode=out_mode)
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as err:
            log.warning("unusable ICC profile (%s): colours converted without it", err)
            warnings.append("colour_profile_ignored")
    if im.mode == "CMYK":
        # No profile: Pillow's conversion (its JPEG decoder has already undone Adobe's
        # inverted CMYK/YCCK), as browsers without colour management show it.
        im = im.convert("RGB")
    elif im.mode not in ("RGB", "RGBA", "L"):
        im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
    if im.mode == "RGBA":
        alpha_min = im.getchannel("A").getextrema()[0]
        if alpha_min == 255:
            im = im.convert("RGB")  # an alpha channel with nothing transparent in it
        elif target.format not in ("png", "webp", "gif"):
            im = flatten_alpha(im, target.background)
    im.info.clear()  # no EXIF/XMP/ICC reaches the encoder by accident
    return im


def flatten_alpha(im: Any, background: str) -> Any:
    """Composite an RGBA picture onto a solid background colour (for formats without alpha)."""
    from PIL import Image

    base = Image.new("RGBA", im.size, background)
    base.alpha_composite(im)
    return base.convert("RGB")


# --------------------------------------------------------------------------- geometry


def apply_geometry(im: Any, g: Geometry, background: str) -> Any:
    """Crop, resize and place on a padded or blurred canvas, as planned.

    ``g`` is in the coordinates of the full-size upright picture; ``im`` may be smaller
    (decoded in draft mode or reduced), so the crop is scaled to it.
    """
    from PIL import Image, ImageFilter

    sx = im.size[0] / g.source_width
    sy = im.size[1] / g.source_height
    box = (g.crop_x * sx, g.crop_y * sy, (g.crop_x + g.crop_width) * sx,
           (g.crop_y + g.crop_height) * sy)
    cropping = any(abs(a - b) > 1e-6 for a, b in zip(box, (0, 0, *im.size), strict=True))
    if (g.content_width, g.content_height) != im.size or cropping:
        im = im.resize((g.content_width, g.content_height), Image.Resampling.LANCZOS,
                       box=box, reducing_gap=REDUCING_GAP)
    if (g.width, g.height) == im.size:
        return im
    if g.fit == "blur":
        canvas = _cover_resize(im, (g.width, g.height))
        radius = max(8, min(g.width, g.height) // 30)
        canvas = canvas.filter(ImageFilter.GaussianBlur(radius))
    else:
        canvas = Image.new(im.mode, (g.width, g.height), background)
    canvas.paste(im, ((g.width - im.size[0]) // 2, (g.height - im.size[1]) // 2))
    return canvas


def _resize(im: Any, size: tuple[int, int]) -> Any:
    from PIL import Image

    return im.resize(size, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)


def _cover_resize(im: Any, size: tuple[int, int]) -> Any:
    """Scale to cover ``size`` and centre-crop: the background of a blurred fill.

    Made from a quarter-size copy: it is blurred afterwards, so detail would be wasted.
    """
    from PIL import Image

    w, h = size
    scale = max(w / im.size[0], h / im.size[1])
    quarter = (max(1, round(im.size[0] * scale / 4)), max(1, round(im.size[1] * scale / 4)))
    small = im.resize(quarter, Image.Resampling.BILINEAR)
    big = small.resize((max(w, round(im.size[0] * scale)), max(h, round(im.size[1] * scale))),
                       Image.Resampling.BILINEAR)
    left, top = (big.size[0] - w) // 2, (big.size[1] - h) // 2
    return big.crop((left, top, left + w, top + h))


# --------------------------------------------------------------------------- encode


def _encode(im: Any, fmt: str, quality: int, *, final: bool) -> bytes:
    """Encode without any metadata. ``final``: spend the time on the smallest file.

    The quality search encodes with libjpeg's defaults (fast); the delivered JPEG is progressive
    with optimised Huffman tables, which is smaller for the same quality.
    """
    buf = io.BytesIO()
    if fmt == "jpeg":
        if im.mode not in ("RGB", "L"):
            im = im.convert("RGB")
        # Full-resolution colour for small pictures (graphics, text: red on black bleeds at
        # 4:2:0), where it costs few bytes; camera-style 4:2:0 above a megapixel.
        subsampling = "4:4:4" if im.size[0] * im.size[1] <= FULL_CHROMA_MAX_PIXELS else "4:2:0"
        try:
            im.save(buf, "JPEG", quality=quality, subsampling=subsampling,
                    optimize=final, progressive=final)
        except OSError:
            if not final:
                raise
            # Pillow sizes the buffer of an optimised encode at one byte per pixel, which very
            # noisy pictures overflow ("broken data stream"); the streaming baseline encoder has
            # no such limit.
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=quality, subsampling=subsampling)
    elif fmt == "webp":
        im.save(buf, "WEBP", quality=quality, method=4 if final else 2)
    elif fmt == "png":
        # zlib's best level is slow on big pictures and gains a few percent at most.
        im.save(buf, "PNG", optimize=final and im.size[0] * im.size[1] <= 4_000_000)
    elif fmt == "gif":
        im.save(buf, "GIF")
    else:  # pragma: no cover - the planner only asks for the formats above
        raise ValueError(f"cannot write {fmt}")
    return buf.getvalue()


def save_within_budget(im: Any, target: ImageTarget, out: Path) -> ImageResult:
    """Encode a decoded picture as ``target.format`` under its byte cap.

    JPEG and WebP search the highest quality between the floor and the preset's quality that
    fits; when even the floor is over the cap the picture is scaled down (by the square root of
    how far over it is) and searched again, never below the variant's minimum size.

    Args:
        im: an 8-bit RGB/RGBA/L picture at the target's size.
        target: the target (format, qualities, cap, minimum size).
        out: where to write.

    Returns:
        The result, with ``recompressed`` at a lower quality, ``resized`` after a shrink, and
        the warnings ``quality_floor_reached`` and ``downscaled_for_byte_budget``.

    Raises:
        CannotFit: not even the quality floor at the minimum size fits.
    """
    fmt = target.format
    extra: list[str] = []
    warnings: list[str] = []
    floor = min(target.quality_floor, target.quality)
    current = im
    for _round in range(MAX_SHRINK_ROUNDS):
        data, quality, smallest = _best_quality(current, fmt, target.quality, floor,
                                                target.max_bytes)
        if data is not None:
            out.write_bytes(data)
            if quality is not None and quality <= floor < target.quality:
                warnings.append("quality_floor_reached")
            return ImageResult(out, MIME[fmt], current.size[0], current.size[1], tuple(extra),
                               tuple(warnings))
        ratio = math.sqrt(target.max_bytes / smallest) * SHRINK_MARGIN
        ratio = min(SHRINK_MAX, max(SHRINK_MIN, ratio))
        w, h = math.floor(current.size[0] * ratio), math.floor(current.size[1] * ratio)
        if w < max(target.min_width, 1) or h < max(target.min_height, 1) or min(w, h) < MIN_SIDE_PX:
            break
        current = _resize(im, (w, h))  # from the planned picture: no blur upon blur
        if "resized" not in extra:
            extra.append("resized")
            warnings.append("downscaled_for_byte_budget")
    how = f"at quality {floor} " if fmt in ("jpeg", "webp") else ""
    raise CannotFit(
        f"cannot fit the image under {target.max_bytes} bytes as {fmt} {how}at any size the "
        f"platform allows (smallest tried {current.size[0]}x{current.size[1]})"
    )


def _best_quality(im: Any, fmt: str, hi: int, lo: int, cap: int
                  ) -> tuple[bytes | None, int | None, int]:
    """The encoding at the highest quality in [lo, hi] that fits ``cap``.

    Returns:
        ``(data, quality, bytes_at_lowest_tried)``; ``data`` is None when nothing fits.
    """
    # Progressive, optimised encoding saves a few percent and doubles the encode time; on a
    # picture the size of a 50 MP Facebook photo that is seconds per encode for little gain.
    polish = im.size[0] * im.size[1] <= POLISH_MAX_PIXELS
    if fmt not in ("jpeg", "webp"):
        data = _encode(im, fmt, 100, final=polish)
        return (data if len(data) <= cap else None), None, len(data)
    final = _encode(im, fmt, hi, final=polish)
    if len(final) <= cap:
        return final, hi, len(final)
    # Binary search with the fast encoder; the final encode of the winner is smaller still,
    # and is kept only if it really is (never trusted blindly).
    best: tuple[bytes, int] | None = None
    smallest = len(final)
    low, high = lo, hi - 1
    while low <= high:
        mid = (low + high) // 2
        data = _encode(im, fmt, mid, final=False)
        smallest = min(smallest, len(data))
        if len(data) <= cap:
            best = (data, mid)
            low = mid + 1
        else:
            high = mid - 1
    if best is None:
        return None, None, smallest
    data, quality = best
    if not polish:
        return data, quality, smallest
    polished = _encode(im, fmt, quality, final=True)
    return (polished if len(polished) <= len(data) else data), quality, smallest


# --------------------------------------------------------------------------- animation


def _render_animated(src: Path, fmt: str, target: ImageTarget, out: Path) -> ImageResult:
    """Re-encode an animation (GIF) frame by frame into the planned geometry.

    Raises:
        TooLarge: the animation is over the pixel budget.
        CannotFit: re-encoded, it is over the byte cap.
    """
    from PIL import ImageSequence

    g = target.geometry
    im = open_image(src, fmt)
    frames_total = int(getattr(im, "n_frames", 1))
    if g.width * g.height * frames_total > ANIMATION_PIXEL_BUDGET:
        raise TooLarge(f"the animation is {g.width}x{g.height} x {frames_total} frames, over the "
                       f"{ANIMATION_PIXEL_BUDGET:,} pixel budget")
    frames = []
    durations = []
    for frame in ImageSequence.Iterator(im):
        rgba = frame.convert("RGBA")
        rgba.info.clear()
        frames.append(apply_geometry(rgba, g, target.background))
        durations.append(int(frame.info.get("duration", 0) or 0))
    buf = io.BytesIO()
    first, rest = frames[0], frames[1:]
    options: dict[str, Any] = {"save_all": True, "append_images": rest, "duration": durations,
                               "disposal": 2, "optimize": False}
    if "loop" in im.info:
        options["loop"] = im.info["loop"]
    first.save(buf, "GIF", **options)
    data = buf.getvalue()
    if len(data) > target.max_bytes:
        raise CannotFit(f"the animation re-encoded is {len(data)} bytes, over the "
                        f"{target.max_bytes}-byte cap")
    out.write_bytes(data)
    return ImageResult(out, MIME["gif"], g.width, g.height, (), ())


# --------------------------------------------------------------------------- metadata


# APPn segments kept: JFIF, the ICC profile (only an sRGB one can reach a pass-through: the
# planner converts any other), and Adobe's (its colour-transform flag changes how the pixels
# decode). Dropped: EXIF and XMP (APP1: GPS, serial numbers, maker notes, a Motion Photo's
# description), MPF (APP2: the index of a gain map or second picture), IPTC (APP13), comments.
_JPEG_KEEP_APP = {0xE0: b"JFIF\0", 0xE2: b"ICC_PROFILE\0", 0xEE: b"Adobe"}
# Markers without a length field.
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}


def strip_metadata(data: bytes, fmt: str) -> bytes:
    """Remove EXIF/XMP/IPTC/comments without re-encoding, and anything after the picture.

    A JPEG keeps everything up to its first end-of-image marker minus the metadata segments, so
    a Motion Photo's appended MP4 and an Ultra HDR gain map are dropped with it; the entropy-coded
    scans are copied byte for byte.

    Raises:
        CorruptMedia: the marker or chunk structure is broken.
    """
    if fmt == "jpeg":
        return _strip_jpeg(data)
    if fmt == "png":
        return _strip_png(data)
    if fmt == "webp":
        return _strip_webp(data)
    if fmt == "gif":
        return _strip_gif(data)
    raise CorruptMedia(f"cannot remove metadata from a {fmt} file without re-encoding it")


def _strip_jpeg(data: bytes) -> bytes:
    if data[:2] != b"\xff\xd8":
        raise CorruptMedia("not a JPEG stream")
    out = bytearray(data[:2])
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise CorruptMedia("malformed JPEG marker stream")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            out += data[pos:pos + 2]
            pos += 2
            continue
        if marker == 0xDA:  # start of scan: the compressed data, to the first end of image
            eoi = data.find(b"\xff\xd9", pos)
            # 0xFF is always followed by 0x00 or a restart marker inside entropy-coded data, so
            # the first FFD9 is the end of this picture; what follows is another file.
            out += data[pos:eoi + 2] if eoi >= 0 else data[pos:]
            return bytes(out)
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        segment = data[pos:pos + 2 + length]
        if length < 2 or len(segment) < 2 + length:
            raise CorruptMedia("truncated JPEG segment")
        is_meta = 0xE0 <= marker <= 0xEF or marker == 0xFE
        keep_id = _JPEG_KEEP_APP.get(marker)
        if not is_meta or (keep_id is not None and segment[4:4 + len(keep_id)] == keep_id):
            out += segment
        pos += 2 + length
    raise CorruptMedia("JPEG without picture data")


# Text chunks (tEXt/zTXt/iTXt: XMP, ImageMagick's "Raw profile type exif", comments), EXIF,
# and the modification time. Colour chunks (iCCP, sRGB, gAMA, cHRM) stay: they change how the
# pixels look.
_PNG_DROP = {b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"tIME"}


def _strip_png(data: bytes) -> bytes:
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise CorruptMedia("not a PNG stream")
    out = bytearray(data[:8])
    pos = 8
    while pos + 12 <= len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        kind = data[pos + 4:pos + 8]
        chunk = data[pos:pos + 12 + length]
        if len(chunk) < 12 + length:
            raise CorruptMedia("truncated PNG chunk")
        if kind not in _PNG_DROP:
            out += chunk
        pos += 12 + length
        if kind == b"IEND":
            return bytes(out)
    raise CorruptMedia("PNG without an end chunk")


def _strip_webp(data: bytes) -> bytes:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise CorruptMedia("not a WebP stream")
    chunks = bytearray()
    pos = 12
    vp8x_at = None
    end = min(len(data), 8 + struct.unpack("<I", data[4:8])[0])
    while pos + 8 <= end:
        kind = data[pos:pos + 4]
        size = struct.unpack("<I", data[pos + 4:pos + 8])[0]
        chunk = data[pos:pos + 8 + size + (size & 1)]
        if len(chunk) < 8 + size:
            raise CorruptMedia("truncated WebP chunk")
        if kind not in (b"EXIF", b"XMP "):
            if kind == b"VP8X":
                vp8x_at = len(chunks)
            chunks += chunk
        pos += 8 + size + (size & 1)
    if vp8x_at is not None:
        chunks[vp8x_at + 8] &= ~0x0C & 0xFF  # clear the EXIF (0x08) and XMP (0x04) flags
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WEBP" + bytes(chunks)


# Application extensions kept in a GIF: the loop count (NETSCAPE2.0 and its ANIMEXTS twin).
_GIF_KEEP_APP = (b"NETSCAPE2.0", b"ANIMEXTS1.0")


def _gif_sub_blocks_end(data: bytes, pos: int) -> int:
    """Index just past the sub-block chain starting at ``pos`` (its zero-length terminator)."""
    while True:
        if pos >= len(data):
            raise CorruptMedia("truncated GIF data block")
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos


def _strip_gif(data: bytes) -> bytes:
    """Drop comment extensions and application extensions other than the loop count (XMP)."""
    if data[:6] not in (b"GIF87a", b"GIF89a") or len(data) < 13:
        raise CorruptMedia("not a GIF stream")
    flags = data[10]
    pos = 13 + (3 * (2 << (flags & 7)) if flags & 0x80 else 0)
    out = bytearray(data[:pos])
    while pos < len(data):
        block = data[pos]
        if block == 0x3B:  # trailer: anything after it is another file
            out.append(0x3B)
            return bytes(out)
        if block == 0x2C:  # image descriptor, optional local colour table, LZW data
            if pos + 10 > len(data):
                raise CorruptMedia("truncated GIF image descriptor")
            local = data[pos + 9]
            start = pos
            pos += 10 + (3 * (2 << (local & 7)) if local & 0x80 else 0) + 1
            pos = _gif_sub_blocks_end(data, pos)
            out += data[start:pos]
        elif block == 0x21:  # extension
            label = data[pos + 1] if pos + 1 < len(data) else -1
            start = pos
            end = _gif_sub_blocks_end(data, pos + 2)
            keep = label in (0xF9, 0x01) or (
                label == 0xFF and data[pos + 3:pos + 14] in _GIF_KEEP_APP)
            if keep:
                out += data[start:end]
            pos = end
        else:
            raise CorruptMedia("malformed GIF block structure")
    raise CorruptMedia("GIF without a trailer")
