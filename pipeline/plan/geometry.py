"""Geometry: crop, scale and canvas for a displayed picture (shared by images and video)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from fractions import Fraction

from .targets import FitMode, Geometry

# What the manifest says a fit did to the picture.
FIT_ACTIONS = {"crop": "cropped", "pad": "padded", "blur": "blurred", "smart": "reframed"}


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


def fit_geometry(width: int, height: int, *, aspect: Fraction | None, fit: FitMode,
                 max_width: int, max_height: int, min_width: int = 1, min_height: int = 1,
                 max_pixels: int | None = None, max_side_sum: int | None = None,
                 max_short_side: int | None = None, max_long_side: int | None = None,
                 even: bool = False, allow_upscale_to_min: bool = True) -> Geometry:
    """Compute crop, scale and canvas for a displayed ``width`` x ``height`` picture.

    ``aspect`` is the output shape wanted (None: keep the source's). Downscale only, except to
    reach a platform minimum.
    """
    src = Fraction(width, height)
    want = aspect or src
    cx, cy, cw, ch = 0, 0, width, height
    if fit in ("crop", "smart") and want != src:
        # smart: the same window, centred until framing moves it onto the subject
        if src > want:  # too wide: cut the sides
            cw = max(1, round(height * want))
        else:
            ch = max(1, round(width / want))
        cx, cy = (width - cw) // 2, (height - ch) // 2
        frame_w, frame_h = float(cw), float(ch)
    elif fit in ("pad", "blur") and want != src:
        frame_w, frame_h = ((float(height * want), float(height)) if src < want
                            else (float(width), float(width / want)))
    else:
        fit = "none" if want == src else fit
        frame_w, frame_h = float(width), float(height)

    scale = min(1.0, max_width / frame_w, max_height / frame_h)
    if max_pixels:
        scale = min(scale, math.sqrt(max_pixels / (frame_w * frame_h)))
    if max_side_sum:
        scale = min(scale, max_side_sum / (frame_w + frame_h))
    if max_short_side:
        scale = min(scale, max_short_side / min(frame_w, frame_h))
    if max_long_side:
        scale = min(scale, max_long_side / max(frame_w, frame_h))
    upscaled = False
    need = max(min_width / frame_w, min_height / frame_h)
    if allow_upscale_to_min and need > scale:
        scale = need
        upscaled = need > 1.0
    rnd = round_even if even else (lambda v: max(1, round(v)))
    out_w, out_h = rnd(frame_w * scale), rnd(frame_h * scale)

    def over_caps(w: int, h: int) -> bool:
        return (w > max_width or h > max_height
                or (max_pixels is not None and w * h > max_pixels)
                or (max_side_sum is not None and w + h > max_side_sum)
                or (max_short_side is not None and min(w, h) > max_short_side)
                or (max_long_side is not None and max(w, h) > max_long_side))

    # Rounding to whole (or even) pixels can step a pixel over a cap: step back under it.
    for _ in range(64):
        if upscaled or not over_caps(out_w, out_h):
            break
        scale *= 1 - 1 / max(out_w, out_h)
        out_w, out_h = rnd(frame_w * scale), rnd(frame_h * scale)
    if fit in ("pad", "blur"):
        content_w = min(out_w, rnd(cw * scale))
        content_h = min(out_h, rnd(ch * scale))
    else:
        content_w, content_h = out_w, out_h
    return Geometry(width=out_w, height=out_h, content_width=content_w, content_height=content_h,
                    crop_x=cx, crop_y=cy, crop_width=cw, crop_height=ch,
                    fit=fit if (fit != "none" or want != src) else "none",
                    source_width=width, source_height=height, upscaled=upscaled)
