"""Image engine (Pillow): orientation, sRGB, alpha, crop/pad/blur, format, byte budget, metadata.

Draft-mode JPEG decoding and ``Image.reduce`` keep a 24 MP photo from being decoded and resized
at full size when the target is 1080 px wide. Metadata (EXIF with GPS, XMP, IPTC, maker notes)
never reaches an output; an input that already conforms is passed through byte-identical apart
from the metadata segments, without re-encoding.
"""

from __future__ import annotations

import io
import logging
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CorruptMedia, TooLarge
from .plan import Geometry, ImageTarget
from .probe import open_image

log = logging.getLogger(__name__)

MIME = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif",
        "bmp": "image/bmp", "tiff": "image/tiff", "heif": "image/heic", "avif": "image/avif"}
PIL_SAVE = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF", "bmp": "BMP",
            "tiff": "TIFF"}
# When even the quality floor is over the byte cap, shrink by this factor and try again.
SHRINK_STEP = 0.85
MAX_SHRINK_ROUNDS = 12


@dataclass(frozen=True, slots=True)
class ImageResult:
    """A written image and what had to be done beyond the plan."""

    path: Path
    mime: str
    width: int
    height: int
    extra_actions: tuple[str, ...]
    warnings: tuple[str, ...]


def render_image(src: Path, src_format: str, target: ImageTarget, out: Path) -> ImageResult:
    """Produce ``out`` from ``src`` as ``target`` says.

    Raises:
        CorruptMedia: the image cannot be decoded.
        TooLarge: it cannot be brought under the byte cap above the quality floor and minimum size.
    """
    if target.passthrough and src_format in ("jpeg", "png", "webp", "gif"):
        data = strip_metadata(src.read_bytes(), src_format)
        if len(data) <= target.max_bytes:
            out.write_bytes(data)
            g = target.geometry
            return ImageResult(out, MIME[src_format], g.width, g.height, (), ())
    try:
        if target.animated:
            return _render_animated(src, src_format, target, out)
        image = _decode(src, src_format, target)
        image = _to_rgb(image, target)
        image = apply_geometry(image, target.geometry, target.background)
        return save_within_budget(image, target, out)
    except (TooLarge, CorruptMedia):
        raise
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as err:
        raise CorruptMedia(f"cannot decode the {src_format} image: {err}") from err


# --------------------------------------------------------------------------- decode


def _decode(src: Path, fmt: str, target: ImageTarget) -> Any:
    from PIL import Image, ImageOps

    im = open_image(src, fmt)
    g = target.geometry
    if fmt == "jpeg" and im.mode in ("RGB", "L", "CMYK"):
        # Draft decoding: libjpeg scales by 1/2, 1/4 or 1/8 while decoding, as long as the
        # result stays at least as large as what we need (in stored orientation).
        need_w, need_h = _needed_source_size(g)
        if target.orientation in (5, 6, 7, 8):
            need_w, need_h = need_h, need_w
        scale_w = im.size[0] / max(1, need_w)
        scale_h = im.size[1] / max(1, need_h)
        if min(scale_w, scale_h) >= 2:
            im.draft(im.mode, (max(1, need_w), max(1, need_h)))
    im.load()
    if getattr(im, "n_frames", 1) > 1:
        im.seek(0)
    transposed = ImageOps.exif_transpose(im)
    if transposed is not None:
        im = transposed
    # The plan's coordinates are for the full-size upright image; draft may have shrunk it,
    # so apply_geometry scales them by the decoded size.
    return im


def _needed_source_size(g: Geometry) -> tuple[int, int]:
    """Source pixels needed: the crop scaled by at least the content scale factor."""
    if g.crop_width == 0 or g.crop_height == 0:
        return g.content_width, g.content_height
    factor = max(g.content_width / g.crop_width, g.content_height / g.crop_height)
    return int(g.source_width * factor) + 1, int(g.source_height * factor) + 1


def _to_rgb(im: Any, target: ImageTarget) -> Any:
    """Colour-manage into sRGB, bring to 8 bits, and flatten alpha where the format has none."""
    from PIL import Image, ImageCms

    icc = im.info.get("icc_profile")
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        im = im.point(lambda v: v / 256).convert("L")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("LA", "PA"):
        im = im.convert("RGBA")
    if icc and target.to_srgb:
        try:
            src_profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            srgb = ImageCms.createProfile("sRGB")
            mode = "RGBA" if im.mode == "RGBA" else "RGB"
            im = ImageCms.profileToProfile(im, src_profile, srgb, outputMode=mode,
                                           renderingIntent=ImageCms.Intent.PERCEPTUAL)
        except (ImageCms.PyCMSError, OSError, ValueError) as err:
            log.warning("ICC conversion failed (%s); converting without colour management", err)
    if im.mode not in ("RGB", "RGBA", "L"):
        im = im.convert("RGBA" if im.mode.endswith("A") else "RGB")
    keep_alpha = target.format in ("png", "webp", "gif") and im.mode == "RGBA"
    if im.mode == "RGBA" and not keep_alpha:
        bg = Image.new("RGB", im.size, target.background)
        bg.paste(im, mask=im.getchannel("A"))
        im = bg
    im.info.clear()  # no EXIF/XMP/ICC is carried into the encoder by accident
    return im


# --------------------------------------------------------------------------- geometry


def apply_geometry(im: Any, g: Geometry, background: str) -> Any:
    """Crop, resize and place on a pad or blurred canvas, as planned."""
    from PIL import Image, ImageFilter

    sx = im.size[0] / g.source_width
    sy = im.size[1] / g.source_height
    if (g.crop_width, g.crop_height) != (g.source_width, g.source_height):
        box = (round(g.crop_x * sx), round(g.crop_y * sy),
               round((g.crop_x + g.crop_width) * sx), round((g.crop_y + g.crop_height) * sy))
        im = im.crop(box)
    if im.size != (g.content_width, g.content_height):
        im = _resize(im, (g.content_width, g.content_height))
    if (g.width, g.height) == im.size:
        return im
    if g.fit == "blur":
        back = _cover_resize(im, (g.width, g.height))
        radius = max(8, min(g.width, g.height) // 30)
        back = back.filter(ImageFilter.GaussianBlur(radius))
        canvas = back.convert(im.mode) if back.mode != im.mode else back
    else:
        canvas = Image.new(im.mode, (g.width, g.height),
                           background if im.mode != "RGBA" else (0, 0, 0, 0))
        if im.mode == "RGBA":
            canvas = Image.new("RGBA", (g.width, g.height), background)
    canvas.paste(im, ((g.width - im.size[0]) // 2, (g.height - im.size[1]) // 2))
    return canvas


def _resize(im: Any, size: tuple[int, int]) -> Any:
    from PIL import Image

    w, h = size
    # reduce() by an integer factor first (fast box filter), then a Lanczos pass for quality.
    factor = min(im.size[0] // max(1, w), im.size[1] // max(1, h))
    if factor >= 3:
        im = im.reduce(factor // 2)
    return im.resize(size, Image.Resampling.LANCZOS)


def _cover_resize(im: Any, size: tuple[int, int]) -> Any:
    """Scale to cover ``size`` and centre-crop (the blurred background)."""
    from PIL import Image

    w, h = size
    scale = max(w / im.size[0], h / im.size[1])
    small = im.resize((max(1, round(im.size[0] * scale / 4)), max(1, round(im.size[1] * scale / 4))),
                      Image.Resampling.BILINEAR)
    big = small.resize((max(w, round(im.size[0] * scale)), max(h, round(im.size[1] * scale))),
                       Image.Resampling.BILINEAR)
    left, top = (big.size[0] - w) // 2, (big.size[1] - h) // 2
    return big.crop((left, top, left + w, top + h))


# --------------------------------------------------------------------------- encode


def _encode(im: Any, fmt: str, quality: int) -> bytes:
    buf = io.BytesIO()
    if fmt == "jpeg":
        if im.mode not in ("RGB", "L"):
            im = im.convert("RGB")
        im.save(buf, "JPEG", quality=quality, optimize=True, progressive=True,
                subsampling="4:2:0" if quality < 90 else "4:4:4")
    elif fmt == "webp":
        im.save(buf, "WEBP", quality=quality, method=4)
    elif fmt == "png":
        im.save(buf, "PNG", optimize=quality >= 100 or im.size[0] * im.size[1] < 4_000_000)
    else:
        im.save(buf, PIL_SAVE.get(fmt, "PNG"))
    return buf.getvalue()


def save_within_budget(im: Any, target: ImageTarget, out: Path) -> ImageResult:
    """Encode a decoded RGB/RGBA image as ``target.format`` under its byte cap.

    Raises:
        TooLarge: not even the quality floor at the minimum size fits.
    """
    fmt = target.format
    extra: list[str] = []
    warnings: list[str] = []
    for _round in range(MAX_SHRINK_ROUNDS):
        data, quality = _best_quality(im, fmt, target)
        if data is not None:
            out.write_bytes(data)
            if quality is not None and quality < target.quality:
                extra.append("recompressed")
            if quality is not None and quality <= target.quality_floor:
                warnings.append("quality_floor_reached")
            return ImageResult(out, MIME[fmt], im.size[0], im.size[1], tuple(extra),
                               tuple(warnings))
        new_size = (round(im.size[0] * SHRINK_STEP), round(im.size[1] * SHRINK_STEP))
        if new_size[0] < target.min_width or new_size[1] < target.min_height or min(new_size) < 16:
            break
        im = _resize(im, new_size)
        if "resized" not in extra:
            extra.append("resized")
            warnings.append("downscaled_for_byte_budget")
    raise TooLarge(
        f"cannot fit the image under {target.max_bytes} bytes as {fmt} above quality "
        f"{target.quality_floor} and the platform's minimum size"
    )


def _best_quality(im: Any, fmt: str, target: ImageTarget) -> tuple[bytes | None, int | None]:
    """Highest quality in [floor, quality] whose encoding fits; None when even the floor is over."""
    if fmt not in ("jpeg", "webp"):
        data = _encode(im, fmt, 100)
        return (data if len(data) <= target.max_bytes else None), None
    data = _encode(im, fmt, target.quality)
    if len(data) <= target.max_bytes:
        return data, target.quality
    lo, hi = target.quality_floor, target.quality - 1
    best: tuple[bytes, int] | None = None
    while lo <= hi:
        mid = (lo + hi) // 2
        data = _encode(im, fmt, mid)
        if len(data) <= target.max_bytes:
            best = (data, mid)
            lo = mid + 1
        else:
            hi = mid - 1
    return (best[0], best[1]) if best else (None, None)


# --------------------------------------------------------------------------- animation


def _render_animated(src: Path, fmt: str, target: ImageTarget, out: Path) -> ImageResult:
    from PIL import ImageSequence

    im = open_image(src, fmt)
    g = target.geometry
    frames = []
    durations = []
    for frame in ImageSequence.Iterator(im):
        rgba = frame.convert("RGBA")
        frames.append(apply_geometry(rgba, g, target.background))
        durations.append(int(frame.info.get("duration", 100) or 100))
    buf = io.BytesIO()
    first, rest = frames[0], frames[1:]
    save_fmt = PIL_SAVE.get(target.format, "GIF")
    first.save(buf, save_fmt, save_all=True, append_images=rest, duration=durations,
               loop=im.info.get("loop", 0), disposal=2, optimize=False)
    data = buf.getvalue()
    if len(data) > target.max_bytes:
        raise TooLarge(f"the animation is {len(data)} bytes, over the {target.max_bytes}-byte cap")
    out.write_bytes(data)
    return ImageResult(out, MIME[target.format], g.width, g.height, (), ())


# --------------------------------------------------------------------------- metadata


# APPn segments we keep: JFIF, the ICC profile (not MPF, which points at a gain-map image we
# drop), and Adobe's (its colour-transform flag changes how the pixels decode).
_JPEG_KEEP_APP = {0xE0: b"JFIF\0", 0xE2: b"ICC_PROFILE\0", 0xEE: b"Adobe"}


def strip_metadata(data: bytes, fmt: str) -> bytes:
    """Remove EXIF/XMP/IPTC/comments without re-encoding; also drops data after the image end."""
    if fmt == "jpeg":
        return _strip_jpeg(data)
    if fmt == "png":
        return _strip_png(data)
    if fmt == "webp":
        return _strip_webp(data)
    return data


def _strip_jpeg(data: bytes) -> bytes:
    out = bytearray(data[:2])
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise CorruptMedia("malformed JPEG marker stream")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:  # start of scan: entropy-coded data up to the first EOI
            eoi = data.find(b"\xff\xd9", pos)
            # Anything after the first image (a Motion Photo's MP4, an MPF gain map) is dropped.
            out += data[pos:eoi + 2 if eoi >= 0 else len(data)]
            return bytes(out)
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        segment = data[pos:pos + 2 + length]
        keep = not (0xE0 <= marker <= 0xEF or marker == 0xFE) or (
            marker in _JPEG_KEEP_APP and segment[4:4 + len(_JPEG_KEEP_APP[marker])]
            == _JPEG_KEEP_APP[marker])
        if keep:
            out += segment
        pos += 2 + length
    return bytes(out)


_PNG_DROP = {b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"tIME"}


def _strip_png(data: bytes) -> bytes:
    out = bytearray(data[:8])
    pos = 8
    while pos + 12 <= len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        kind = data[pos + 4:pos + 8]
        chunk = data[pos:pos + 12 + length]
        if kind not in _PNG_DROP:
            out += chunk
        pos += 12 + length
        if kind == b"IEND":
            break
    return bytes(out)


def _strip_webp(data: bytes) -> bytes:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return data
    chunks = bytearray()
    pos = 12
    vp8x_at = None
    while pos + 8 <= len(data):
        kind = data[pos:pos + 4]
        size = struct.unpack("<I", data[pos + 4:pos + 8])[0]
        chunk = data[pos:pos + 8 + size + (size & 1)]
        if kind not in (b"EXIF", b"XMP "):
            if kind == b"VP8X":
                vp8x_at = len(chunks)
            chunks += chunk
        pos += 8 + size + (size & 1)
    if vp8x_at is not None:
        flags = chunks[vp8x_at + 8] & ~0x0C  # clear the EXIF (0x08) and XMP (0x04) flags
        chunks[vp8x_at + 8] = flags
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WEBP" + bytes(chunks)
