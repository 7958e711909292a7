"""Decoding with Pillow: the upright picture, no larger than the output needs, within the budget.

A JPEG is decoded at 1/2, 1/4 or 1/8 scale by libjpeg (draft mode) when the output is that much
smaller, or when the process-wide decode budget allows no more; other big pictures are
box-reduced by an integer factor before the final Lanczos pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..budget import BUDGET, decode_cost_bytes, too_large
from ..errors import CorruptMedia, PipelineError, TooLarge
from ..geometry import Geometry
from ..models import MediaInfo
from ..plan import ImageTarget
from ..probe import open_image
from .canvas import REDUCING_GAP
from .colour import to_srgb_8bit
from .heif import DECODE_ERRORS, decode_heif_buffer, scale_buffer

# EXIF orientation → the Image.Transpose that makes the stored pixels upright (1: none).
_TRANSPOSE = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE",
              6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90"}
# Modes Image.reduce() handles.
_REDUCIBLE = ("L", "LA", "RGB", "RGBA", "RGBX", "CMYK", "I", "F")


def decode_image(src: Path, fmt: str, target: ImageTarget, *, min_draft: int = 1
                 ) -> tuple[Any, Geometry, tuple[str, ...]]:
    """The upright picture in 8-bit sRGB, decoded no larger than ``target`` needs.

    Args:
        src: the source file.
        fmt: its sniffed format.
        target: the planned target (its geometry says how many pixels are needed).
        min_draft: decode a JPEG at 1/``min_draft`` scale at least (2, 4 or 8), even when the
            output needs more pixels: what the memory budget allows (:func:`decode_plan`).

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
    im = to_srgb_8bit(im, target, warnings)
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


def decode_plan(src: Path, fmt: str, target: ImageTarget) -> tuple[int, int, bool]:
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



def decode_preview(src: Path, info: MediaInfo, *, max_side: int) -> Any:
    """The upright picture in RGB, its longer side at most ``max_side``: what analysis sees.

    Decoded the way an output is, as small as the format allows (JPEG draft scaling, HEIF
    band scaling, an integer box reduction) and inside the process-wide decode budget, so
    looking at a 28000x14000 JPEG for smart framing costs what a small output of it costs,
    not the 1.2 GB of its full decode. Every format an output can be made from is read,
    HEIC and AVIF included.

    Args:
        src: the source file.
        info: its probe result (displayed size, sniffed format, EXIF orientation).
        max_side: the longer side of the picture returned, in pixels.

    Returns:
        A Pillow ``RGB`` image (transparent parts on black; the first frame of an animation).

    Raises:
        TooLarge: even its smallest decode is over the decode budget, or a bomb.
        CorruptMedia: it cannot be decoded.
    """
    from .canvas import apply_geometry

    width, height = info.width, info.height
    scale = min(1.0, max_side / max(width, height, 1))
    small_w, small_h = max(1, round(width * scale)), max(1, round(height * scale))
    whole = Geometry(width=small_w, height=small_h, content_width=small_w,
                     content_height=small_h, crop_x=0, crop_y=0, crop_width=width,
                     crop_height=height, fit="none", source_width=width, source_height=height)
    orientation = info.image.exif_orientation if info.image is not None else 1
    target = ImageTarget(format="jpeg", geometry=whole, background="black", max_bytes=0,
                         quality=0, quality_floor=0, animated=False, passthrough=False,
                         orientation=orientation, to_srgb=False)
    fmt = info.format_name
    with typed_decode_errors(fmt):
        draft, cost, _ = decode_plan(src, fmt, target)
        with BUDGET.reserve(cost, f"the {fmt} image"):
            im, geometry, _ = decode_image(src, fmt, target, min_draft=draft)
            return apply_geometry(im, geometry, "black").convert("RGB")


@contextmanager
def typed_decode_errors(fmt: str) -> Iterator[None]:
    """Pillow's and libheif's own errors, raised inside the block, as pipeline errors.

    Raises:
        TooLarge: out of memory, or a decompression bomb.
        CorruptMedia: the picture cannot be decoded (truncated, damaged).
    """
    try:
        yield
    except PipelineError:
        raise
    except MemoryError as err:
        raise TooLarge(f"not enough memory to convert the {fmt} image") from err
    except DECODE_ERRORS as err:
        if _is_bomb(err):
            raise TooLarge(f"the image is too large to decode safely: {err}") from err
        raise CorruptMedia(f"cannot decode the {fmt} image: {err}") from err


def _is_bomb(err: BaseException) -> bool:
    from PIL import Image

    return isinstance(err, Image.DecompressionBombError | Image.DecompressionBombWarning)
