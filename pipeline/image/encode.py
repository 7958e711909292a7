"""Encoding within a byte budget: a quality search, then smaller pictures, never any metadata."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CannotFit
from ..plan import ImageTarget
from .canvas import resize

MIME = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif",
        "bmp": "image/bmp", "tiff": "image/tiff", "heif": "image/heic", "avif": "image/avif"}
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


@dataclass(frozen=True, slots=True)
class ImageResult:
    """A written image and what had to be done beyond the plan."""

    path: Path
    mime: str
    width: int
    height: int
    extra_actions: tuple[str, ...]
    warnings: tuple[str, ...]


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
        current = resize(im, (w, h))  # from the planned picture: no blur upon blur
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

