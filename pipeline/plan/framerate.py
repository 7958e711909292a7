"""Frame rate: the constant output rate a video takes, snapped and clamped to the variant."""

from __future__ import annotations

from fractions import Fraction

from ..models import MediaInfo
from ..presets import VideoSpec

STANDARD_RATES = (Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001),
                  Fraction(30), Fraction(48), Fraction(50), Fraction(60000, 1001), Fraction(60))
# A source rate within 1 % of a standard rate is that rate with timing jitter (a phone's
# "29.87 fps" average is 30 fps that dropped a frame).
SNAP_TOLERANCE = 0.01
# Clamping rates: above the maximum we keep every 2nd/3rd frame of a standard rate when one
# divides the source (120 -> 60, 90 -> 30), below the minimum we show every frame 2, 3... times
# (15 -> 30, 12 -> 24), so motion stays even instead of juddering.
_DOWN_RATES = (Fraction(60), Fraction(60000, 1001), Fraction(50), Fraction(30),
               Fraction(30000, 1001), Fraction(25), Fraction(24), Fraction(24000, 1001))
_UP_RATES = (Fraction(24), Fraction(25), Fraction(30))
# An animation has frame delays, not a rate: they are resampled onto this constant rate.
ANIMATION_FPS = Fraction(30)


def choose_fps(info: MediaInfo, spec: VideoSpec) -> tuple[Fraction, bool]:
    """The constant output rate, and whether it differs from the source's.

    Variable-rate sources take their base rate (``r_frame_rate``: the finest spacing, so no
    frame is dropped), snapped to a standard rate; rates outside the preset's range are
    clamped to an even multiple or divisor where one exists.

    Raises:
        Nothing: ``info`` must have a video stream.
    """
    v = info.video
    assert v is not None
    rate = v.fps if v.fps > 0 else v.fps_real
    if v.vfr or not 0 < rate <= 240:
        candidates = (v.fps_real, v.fps, Fraction(30))
        rate = next(r for r in candidates if 0 < r <= 240)
    rate = _snap_rate(rate)
    if rate > spec.fps_max:
        rate = _rate_down(rate, spec.fps_max)
    elif rate < spec.fps_min:
        rate = _rate_up(rate, spec.fps_min, spec.fps_max)
    changed = v.vfr or v.fps <= 0 or abs(float(rate - v.fps)) > float(v.fps) * SNAP_TOLERANCE
    return rate, changed


def output_fps(info: MediaInfo, spec: VideoSpec) -> tuple[Fraction, bool]:
    """:func:`choose_fps` for a video; an animation (no video stream) always gets a new rate.

    Raises:
        Nothing.
    """
    if info.video is not None:
        return choose_fps(info, spec)
    return min(max(ANIMATION_FPS, spec.fps_min), spec.fps_max), True


def _snap_rate(rate: Fraction) -> Fraction:
    near = min(STANDARD_RATES, key=lambda r: abs(float(r - rate)))
    if abs(float(near - rate)) <= float(near) * SNAP_TOLERANCE:
        return near
    return rate.limit_denominator(1001)


def _is_multiple(big: Fraction, small: Fraction) -> bool:
    ratio = float(big / small)
    return round(ratio) >= 1 and abs(ratio - round(ratio)) < 0.001


def _rate_down(rate: Fraction, fps_max: Fraction) -> Fraction:
    allowed = [r for r in _DOWN_RATES if r <= fps_max]
    if not allowed:
        return fps_max
    even = [r for r in allowed if r >= 30 and _is_multiple(rate, r)]
    return even[0] if even else allowed[0]


def _rate_up(rate: Fraction, fps_min: Fraction, fps_max: Fraction) -> Fraction:
    allowed = [r for r in _UP_RATES if fps_min <= r <= fps_max]
    if not allowed:
        return fps_min
    even = [r for r in allowed if _is_multiple(r, rate)]
    return even[0] if even else allowed[0]
