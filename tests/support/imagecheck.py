"""Look at an image output the way a platform would, and build the picture it should show.

Nothing here uses the engine under test: formats, sizes, shapes and metadata are read back with
Pillow and by walking the file's own structure, and the reference picture is the source decoded,
turned upright by its EXIF orientation and colour-managed to sRGB with ImageCms.
"""

from __future__ import annotations

import io
import struct
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageChops, ImageCms, ImageOps, ImageStat

from pipeline.geometry import Geometry
from pipeline.presets import ImageSpec

PIL_FORMAT = {"JPEG": "jpeg", "PNG": "png", "WEBP": "webp", "GIF": "gif"}
# Bytes that must never be in an output: EXIF, XMP, the MPF index of a gain map or a second
# picture, a Motion Photo's MP4.
FORBIDDEN = (b"Exif\x00\x00", b"http://ns.adobe.com/xap/1.0/", b"MPF\x00", b"ftypmp4",
             b"ftypisom", b"GCamera", b"hdrgm")


def jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, segment) up to the first start of scan."""
    out = []
    pos = 2
    while pos + 4 <= len(data):
        marker = data[pos + 1]
        if marker == 0xDA:
            break
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        out.append((marker, data[pos:pos + 2 + length]))
        pos += 2 + length
    return out


def jpeg_scan_bytes(data: bytes) -> bytes:
    """The compressed picture: from the first start of scan to the first end of image."""
    sos = 2 + sum(len(seg) for _, seg in jpeg_segments(data))
    assert data[sos:sos + 2] == b"\xff\xda"
    return data[sos:data.index(b"\xff\xd9", sos) + 2]


def png_chunks(data: bytes) -> list[bytes]:
    kinds = []
    pos = 8
    while pos + 8 <= len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        kinds.append(data[pos + 4:pos + 8])
        pos += 12 + length
    return kinds


def exact_aspect_ok(w: int, h: int, lo: Fraction | None, hi: Fraction | None) -> bool:
    """In range, allowing only what rounding to whole pixels cannot avoid."""
    return ((lo is None or Fraction(2 * w + 1, 2 * h - 1) >= lo)
            and (hi is None or Fraction(2 * w - 1, 2 * h + 1) <= hi))


def platform_problems(path: Path, spec: ImageSpec, max_bytes: int) -> list[str]:
    """What a platform with this variant's rules would refuse or flag in the file."""
    data = path.read_bytes()
    problems: list[str] = []
    with Image.open(path) as im:
        fmt = PIL_FORMAT.get(im.format or "", im.format)
        frames = getattr(im, "n_frames", 1)
        allowed = spec.animated_formats if frames > 1 else spec.formats
        if fmt not in allowed:
            problems.append(f"format {fmt} ({frames} frames) not in {allowed}")
        cap = min(max_bytes, (spec.max_animated_bytes or spec.max_bytes) if frames > 1
                  else spec.max_bytes)
        if len(data) > cap:
            problems.append(f"{len(data)} bytes > {cap}")
        if frames > 1 and spec.max_animated_frames and frames > spec.max_animated_frames:
            problems.append(f"{frames} frames")
        w, h = im.size
        if not (spec.min_width <= w <= spec.max_width and spec.min_height <= h <= spec.max_height):
            problems.append(f"size {w}x{h}")
        if spec.max_pixels and w * h > spec.max_pixels:
            problems.append("pixels")
        if spec.max_side_sum and w + h > spec.max_side_sum:
            problems.append("side sum")
        if spec.max_short_side and min(w, h) > spec.max_short_side:
            problems.append("short side")
        if not exact_aspect_ok(w, h, spec.aspect_min, spec.aspect_max):
            problems.append(f"aspect {w}:{h}")
        if len(im.getexif()):
            problems.append(f"EXIF tags {dict(im.getexif())}")
        if any(k in im.info for k in ("xmp", "XML:com.adobe.xmp", "comment", "exif")):
            problems.append(f"metadata in {sorted(im.info)}")
        icc = im.info.get("icc_profile")
        if icc:
            desc = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
            if not desc.strip().lower().startswith("srgb"):
                problems.append(f"ICC {desc!r}")
        if im.mode not in ("RGB", "RGBA", "L", "LA", "P", "PA"):
            problems.append(f"mode {im.mode}")
        im.load()  # the whole picture decodes
    if fmt == "jpeg":
        if not data.endswith(b"\xff\xd9") or data.count(b"\xff\xd8\xff") != 1:
            problems.append("JPEG carries another picture or trailing data")
        apps = [seg[4:9] for marker, seg in jpeg_segments(data) if 0xE1 <= marker <= 0xEF]
        if any(a not in (b"ICC_P", b"Adobe") for a in apps):
            problems.append(f"APP segments {apps}")
    if fmt == "png":
        kinds = png_chunks(data)
        if set(kinds) & {b"eXIf", b"tEXt", b"iTXt", b"zTXt", b"tIME"} or kinds[-1] != b"IEND":
            problems.append(f"PNG chunks {kinds}")
    problems += [f"{bad!r} in the file" for bad in FORBIDDEN if bad in data]
    return problems


def to_srgb(im: Image.Image) -> Image.Image:
    """8-bit RGB/RGBA in sRGB, colour-managed from the embedded ICC profile when there is one."""
    icc = im.info.get("icc_profile")
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        im = im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("LA", "PA"):
        im = im.convert("RGBA")
    if icc:
        out_mode = "RGBA" if im.mode == "RGBA" else "RGB"
        im = ImageCms.profileToProfile(im, ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                                       ImageCms.createProfile("sRGB"), outputMode=out_mode)
    return im.convert("RGBA" if im.mode == "RGBA" else "RGB")


@lru_cache(maxsize=2)
def upright_reference(src: Path) -> Image.Image:
    """The source as it should look: first frame, EXIF orientation applied, in sRGB."""
    with Image.open(src) as im:
        im.seek(0)
        im.load()
        icc = im.info.get("icc_profile")
        upright = ImageOps.exif_transpose(im)
        if icc:
            upright.info["icc_profile"] = icc
        return to_srgb(upright)


def flatten(im: Image.Image, background: str = "#ffffff") -> Image.Image:
    if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        base = Image.new("RGBA", rgba.size, background)
        base.alpha_composite(rgba)
        return base.convert("RGB")
    return im.convert("RGB")


def mean_error(a: Image.Image, b: Image.Image, size: tuple[int, int] = (96, 96)) -> float:
    """Mean absolute per-channel difference (0-255) of two pictures compared at a small size."""
    a2 = flatten(a).resize(size, Image.Resampling.BOX)
    b2 = flatten(b).resize(size, Image.Resampling.BOX)
    return sum(ImageStat.Stat(ImageChops.difference(a2, b2)).mean) / 3


def content_error(out_path: Path, reference: Image.Image, g: Geometry,
                  background: str = "#ffffff") -> float:
    """Compare the output's picture area with the reference's planned crop.

    The output may be smaller than planned (a byte budget shrinks it), so the picture area is
    located proportionally.
    """
    with Image.open(out_path) as out:
        out.seek(0)
        picture = flatten(out.convert("RGBA"), background)
    s = picture.size[0] / g.width
    left = (g.width - g.content_width) // 2 * s
    top = (g.height - g.content_height) // 2 * s
    area = picture.crop((round(left), round(top), round(left + g.content_width * s),
                         round(top + g.content_height * s)))
    crop = reference.crop((g.crop_x, g.crop_y, g.crop_x + g.crop_width, g.crop_y + g.crop_height))
    long_side = 128
    size = ((long_side, max(1, round(long_side * area.size[1] / area.size[0])))
            if area.size[0] >= area.size[1]
            else (max(1, round(long_side * area.size[0] / area.size[1])), long_side))
    return mean_error(area, flatten(crop, background), size)
