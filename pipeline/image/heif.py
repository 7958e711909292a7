"""HEIC/HEIF decoding with libheif: one full-size buffer, scaled band by band, cached per source.

A 200 MP phone photo needs its decoded RGB once plus a few megabytes: the buffer is cropped and
scaled without a second full-size copy, and :class:`HeifCache` keeps it for the next target of
the same source (a photo going to ten platforms is decoded once).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..budget import BUDGET, decode_cost_bytes, too_large
from ..errors import CorruptMedia
from ..geometry import Geometry
from ..probe import open_image
from .canvas import REDUCING_GAP

# Output rows resampled per band when scaling a decoded HEIC buffer (a few MB per band).
BAND_ROWS = 256
# Lanczos' support (taps each side, in source pixels at scale 1).
LANCZOS_SUPPORT = 3
# What Pillow and libheif raise on a damaged picture (besides the decompression-bomb errors);
# render_image maps them to corrupt_media.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, struct.error, EOFError, IndexError,
                 KeyError, TypeError, ZeroDivisionError, RuntimeError)


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
    except DECODE_ERRORS as err:
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
    # As in decode._decode_pillow: an integer box reduction first where the scale allows it, then
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

