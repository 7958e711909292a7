"""Geometry: crop, scale and canvas for a displayed picture (shared by images and video).

A leaf: the planner, the engines, the sampled frames and the platform rules (an animation's
delivered size) all use it, so it imports nothing of the pipeline.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

# What the manifest says a fit did to the picture.
FIT_ACTIONS = {"crop": "cropped", "pad": "padded", "blur": "blurred", "smart": "reframed"}

FitMode = Literal["none", "crop", "pad", "blur", "smart"]


@dataclass(frozen=True, slots=True)
class Geometry:
    """How the displayed picture becomes the output frame.

    ``crop_*`` is a rectangle of the displayed (upright) source; the content is scaled to
    ``content_*`` and placed centred on a ``width`` x ``height`` canvas (pad or blur fill).
    """

    width: int
    height: int
    content_width: int
    content_height: int
    crop_x: int
    crop_y: int
    crop_width: int
    crop_height: int
    fit: FitMode
    source_width: int
    source_height: int
    upscaled: bool = False

    @property
    def resized(self) -> bool:
        """The content changed size."""
        return (self.content_width, self.content_height) != (self.crop_width, self.crop_height)



def clamp_aspect(aspect: Fraction, lo: Fraction | None, hi: Fraction | None) -> Fraction:
    if lo is not None and aspect < lo:
        return lo
    if hi is not None and aspect > hi:
        return hi
    return aspect


def nearest_ratio(aspect: Fraction, choices: Iterable[Fraction]) -> Fraction:
    """The choice closest to ``aspect`` on a log scale (4:5 vs 1.91:1 are symmetric errors)."""
    return min(choices, key=lambda r: abs(math.log(aspect / r)))


def round_even(n: float) -> int:
    """``n`` rounded to the nearest even whole number, at least 2 (a YUV 4:2:0 frame side).

    Raises:
        Nothing.
    """
    return max(2, round(n / 2) * 2)


@dataclass(frozen=True, slots=True)
class _Frame:
    """The part of the source that is kept (crop) and the frame it fills before scaling."""

    crop_x: int
    crop_y: int
    crop_width: int
    crop_height: int
    width: float
    height: float
    fit: FitMode


@dataclass(frozen=True, slots=True)
class _Caps:
    """The size limits an output must stay within (None: no such limit)."""

    max_width: int
    max_height: int
    max_pixels: int | None
    max_side_sum: int | None
    max_short_side: int | None
    max_long_side: int | None

    def scale(self, w: float, h: float) -> float:
        """The largest scale, at most 1, that brings a ``w`` x ``h`` frame within every cap."""
        scales = [1.0, self.max_width / w, self.max_height / h]
        if self.max_pixels:
            scales.append(math.sqrt(self.max_pixels / (w * h)))
        if self.max_side_sum:
            scales.append(self.max_side_sum / (w + h))
        if self.max_short_side:
            scales.append(self.max_short_side / min(w, h))
        if self.max_long_side:
            scales.append(self.max_long_side / max(w, h))
        return min(scales)

    def exceeded(self, w: int, h: int) -> bool:
        """Whether a ``w`` x ``h`` picture breaks any cap."""
        return (w > self.max_width or h > self.max_height
                or (self.max_pixels is not None and w * h > self.max_pixels)
                or (self.max_side_sum is not None and w + h > self.max_side_sum)
                or (self.max_short_side is not None and min(w, h) > self.max_short_side)
                or (self.max_long_side is not None and max(w, h) > self.max_long_side))


def fit_geometry(width: int, height: int, *, aspect: Fraction | None, fit: FitMode,
                 max_width: int, max_height: int, min_width: int = 1, min_height: int = 1,
                 max_pixels: int | None = None, max_side_sum: int | None = None,
                 max_short_side: int | None = None, max_long_side: int | None = None,
                 even: bool = False, allow_upscale_to_min: bool = True) -> Geometry:
    """Compute crop, scale and canvas for a displayed ``width`` x ``height`` picture.

    ``aspect`` is the output shape wanted (None: keep the source's). Downscale only, except to
    reach a platform minimum.

    Raises:
        Nothing.
    """
    frame = _frame(width, height, aspect or Fraction(width, height), fit)
    caps = _Caps(max_width, max_height, max_pixels, max_side_sum, max_short_side,
                 max_long_side)
    scale = caps.scale(frame.width, frame.height)
    rnd = round_even if even else _round_whole
    # A minimum that rounding meets anyway (1 px, 2 px when even) never pulls the scale up: a
    # 8192x2 strip brought to a 1920 px cap is 1920x1, not scaled to keep its 2nd pixel row.
    floor_px = rnd(0)
    need = max(min_width / frame.width if min_width > floor_px else 0.0,
               min_height / frame.height if min_height > floor_px else 0.0)
    upscaled = allow_upscale_to_min and need > 1.0 and need > scale
    if allow_upscale_to_min and need > scale:
        scale = need
    if not upscaled:
        scale = _under_caps(caps, frame, scale, rnd)
    out_w, out_h = rnd(frame.width * scale), rnd(frame.height * scale)
    content_w, content_h = out_w, out_h
    if frame.fit in ("pad", "blur"):
        content_w = min(out_w, rnd(frame.crop_width * scale))
        content_h = min(out_h, rnd(frame.crop_height * scale))
    return Geometry(width=out_w, height=out_h, content_width=content_w, content_height=content_h,
                    crop_x=frame.crop_x, crop_y=frame.crop_y, crop_width=frame.crop_width,
                    crop_height=frame.crop_height, fit=frame.fit, source_width=width,
                    source_height=height, upscaled=upscaled)


def _frame(width: int, height: int, want: Fraction, fit: FitMode) -> _Frame:
    """Crop to the wanted shape (crop, smart), or frame it on a wider/taller canvas (pad, blur).

    A picture already of the wanted shape, or a fit of ``none``, keeps its own frame.
    """
    src = Fraction(width, height)
    if want == src:
        return _Frame(0, 0, width, height, float(width), float(height), "none")
    if fit in ("crop", "smart"):
        # smart: the same window, centred until framing moves it onto the subject
        cw, ch = width, height
        if src > want:  # too wide: cut the sides
            cw = max(1, round(height * want))
        else:
            ch = max(1, round(width / want))
        return _Frame((width - cw) // 2, (height - ch) // 2, cw, ch, float(cw), float(ch), fit)
    if fit in ("pad", "blur"):
        if src < want:
            return _Frame(0, 0, width, height, float(height * want), float(height), fit)
        return _Frame(0, 0, width, height, float(width), float(width / want), fit)
    return _Frame(0, 0, width, height, float(width), float(height), "none")


def _round_whole(v: float) -> int:
    return max(1, round(v))


def _under_caps(caps: _Caps, frame: _Frame, scale: float, rnd: Callable[[float], int]) -> float:
    """Rounding to whole (or even) pixels can step a pixel over a cap: step back under it."""
    for _ in range(64):
        out_w, out_h = rnd(frame.width * scale), rnd(frame.height * scale)
        if not caps.exceeded(out_w, out_h):
            break
        scale *= 1 - 1 / max(out_w, out_h)
    return scale
