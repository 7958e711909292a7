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

- :mod:`.decode`: Pillow decoding and the decode plan (draft scale, memory budget);
- :mod:`.heif`: libheif decoding, band-by-band scaling and :class:`HeifCache`;
- :mod:`.colour` and :mod:`.geometry`: sRGB 8-bit, alpha, crop/resize/canvas;
- :mod:`.encode`: the byte-budget search; :mod:`.animation`: GIF re-encoding;
- :mod:`.strip`: metadata removal for pass-through outputs.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from ..budget import BUDGET
from ..errors import CannotFit
from ..geometry import Geometry
from ..plan import ImageTarget
from .animation import render_animated
from .canvas import apply_geometry
from .colour import flatten_alpha, to_srgb_8bit
from .decode import decode_image, decode_plan, decode_preview, typed_decode_errors
from .encode import MIME, ImageResult, save_within_budget
from .heif import DecodedBuffer, HeifCache, decode_heif_buffer, scale_buffer
from .strip import strip_metadata

__all__ = [
    "MIME", "DecodedBuffer", "HeifCache", "ImageResult", "apply_geometry", "decode_heif_buffer",
    "decode_image", "decode_preview", "flatten_alpha", "render_decoded", "render_image",
    "save_within_budget", "scale_buffer", "strip_metadata", "typed_decode_errors",
]


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
    with typed_decode_errors(src_format):
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
        draft, cost, reduced = decode_plan(src, src_format, target)
        # Every decode draws on one budget for the whole process: jobs on other threads wait
        # rather than decode at the same time past the machine's memory.
        with BUDGET.reserve(cost, f"the {src_format} image"):
            if target.animated:
                return render_animated(src, src_format, target, out)
            if src_format == "heif":
                return render_decoded(decode_heif_buffer(src), target, out)
            im, geometry, warnings = decode_image(src, src_format, target, min_draft=draft)
            if reduced:
                warnings = (*warnings, "downscaled_for_memory")
            return _finish(im, geometry, warnings, target, out)


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
    im = to_srgb_8bit(im, target, warnings)
    return _finish(im, geometry, tuple(warnings), target, out)


def _finish(im: Any, geometry: Geometry, warnings: tuple[str, ...], target: ImageTarget,
            out: Path) -> ImageResult:
    result = save_within_budget(apply_geometry(im, geometry, target.background), target, out)
    return replace(result, warnings=(*warnings, *result.warnings))

