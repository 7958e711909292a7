"""The camera of one shot, chosen the way an editor would, and its path as a crop expression.

Pure functions over what the analysis found (:mod:`pipeline.vision.framing` finds it):

- :func:`follow` picks *one* subject per shot and holds it: the whole group when every
  subject of the shot fits the window together, else the largest, most central one, followed
  from sample to sample by position (never hopping to whoever moves);
- :func:`plan_shot` gives a **still** camera whenever the subject's whole range over the shot
  fits inside the window's dead zone (no drift at all: a still subject gets a still window),
  and a **pan** only for a subject that travels further: smoothed (locally linear, so steady
  motion is followed without lag), speed-capped and simplified to a few keyframes;
- :func:`crop_offset_expr` turns the shots into the ``x``/``y`` expression of ffmpeg's
  ``crop`` filter, which evaluates it per frame.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Literal

from ..plan.targets import ReframeShot
from .subject import SubjectBox

Axis = Literal["x", "y"]
KINDS = ("face", "motion", "person", "salient")  # a shot follows one kind of subject
FACE_SHARE = 0.34  # of a shot's samples with a face: the shot is about that face
Extent = tuple[float, float]  # a subject's first and last pixel along the axis

DEAD_ZONE_MARGIN = 0.06  # of the window, kept free on each side of a still camera's subject
MIN_TRAVEL = 0.12  # of the window: a subject whose centre moves less never gets a pan
SMOOTH_S = 0.4  # width (sigma) of the path's local-linear smoothing: no jitter, no lag
MAX_SPEED_WINDOWS_PER_S = 1.5  # a faster pan is a whip-pan a viewer cannot follow
SIMPLIFY_SHARE = 0.01  # keyframes dropped while the path stays within 1 % of the window
TRACK_GATE = 0.25  # of the frame: a subject further from the last position is someone else
CUT_MARGIN_S = 0.0005  # a frame at a cut's time (rounded to 0.1 ms) is on the new shot's side


def _lo(b: SubjectBox, axis: Axis) -> float:
    return b.left if axis == "x" else b.top


def _hi(b: SubjectBox, axis: Axis) -> float:
    return b.right if axis == "x" else b.bottom


def _size(b: SubjectBox) -> float:
    return (b.right - b.left) * (b.bottom - b.top)


def _score(b: SubjectBox) -> float:
    """Big and central wins (a face at the edge is rarely the one the shot is about)."""
    off = math.hypot((b.left + b.right) / 2 - 0.5, (b.top + b.bottom) / 2 - 0.5)
    return _size(b) * (1.0 - off)


def follow(boxes: Sequence[Sequence[SubjectBox]], axis: Axis, window_share: float
           ) -> list[Extent | None]:
    """The one subject held through a shot: per sample its extent along ``axis`` (fractions
    of the frame), or None where it was not seen.

    Args:
        boxes: per sample of the shot, the subjects found in it.
        axis: the axis the window moves along.
        window_share: the window's size as a fraction of the frame along ``axis``.

    Raises:
        Nothing.
    """
    kind = _shot_kind(boxes)
    if kind is None:
        return [None] * len(boxes)
    boxes = [[b for b in per if b.kind == kind] for per in boxes]
    seen = [b for per in boxes for b in per]
    first = min(_lo(b, axis) for b in seen)
    last = max(_hi(b, axis) for b in seen)
    if last - first <= window_share * (1 - 2 * DEAD_ZONE_MARGIN):
        # The whole group, over the whole shot, fits: frame all of them.
        return [(min(_lo(b, axis) for b in per), max(_hi(b, axis) for b in per)) if per
                else None for per in boxes]
    start = max(range(len(boxes)), key=lambda i: max((_score(b) for b in boxes[i]), default=0))
    out: list[Extent | None] = [None] * len(boxes)
    anchor = max(boxes[start], key=_score)
    for order in (range(start, len(boxes)), range(start - 1, -1, -1)):
        held = anchor
        for i in order:
            near = [b for b in boxes[i] if _distance(b, held) <= TRACK_GATE]
            if near:
                held = min(near, key=lambda b: _distance(b, held))
                out[i] = (_lo(held, axis), _hi(held, axis))
    return out


def _shot_kind(boxes: Sequence[Sequence[SubjectBox]]) -> str | None:
    """The one kind of subject a shot follows: faces when they are seen in at least
    ``FACE_SHARE`` of its samples (what moves in the others is the same person, whose face was
    just not found), else the kind seen in the most samples."""
    counts = {k: sum(any(b.kind == k for b in per) for per in boxes) for k in KINDS}
    if counts["face"] and counts["face"] >= FACE_SHARE * len(boxes):
        return "face"
    best = max(KINDS[1:], key=lambda k: counts[k])  # ties: the earlier kind
    return best if counts[best] else ("face" if counts["face"] else None)


def _distance(a: SubjectBox, b: SubjectBox) -> float:
    return math.hypot((a.left + a.right - b.left - b.right) / 2,
                      (a.top + a.bottom - b.top - b.bottom) / 2)


def plan_shot(times: Sequence[float], extents: Sequence[Extent | None], *, start_s: float,
              end_s: float, span_px: int, window_px: int, axis: Axis) -> ReframeShot:
    """The camera for one shot: still while the subject stays in the dead zone, else a pan.

    Args:
        times: sample times in the shot (seconds, increasing).
        extents: the subject's first and last pixel along ``axis`` per sample, in source
            pixels (None: not seen in that sample; the nearest sighting is held).
        start_s: where the shot starts (its first frame); end_s: where it ends.
        span_px: the source's size along ``axis``; window_px: the crop window's.
        axis: "x" (the sides are cut) or "y" (top and bottom are cut).

    Raises:
        Nothing.
    """
    top = span_px - window_px
    known = [(t, e) for t, e in zip(times, extents, strict=True) if e is not None]
    if not known:  # no subject in this shot: the centre, as a plain crop would
        return ReframeShot(start_s, end_s, "still", axis, ((start_s, top // 2),))
    still = _still_centre([e for _, e in known], window_px)
    if still is not None:
        offset = min(max(still - window_px / 2, 0.0), float(top))
        return ReframeShot(start_s, end_s, "still", axis, ((start_s, round(offset)),))
    return _pan(times, [_nearest(known, t) for t in times], start_s=start_s, end_s=end_s,
                top=top, window_px=window_px, axis=axis)


def _still_centre(extents: Sequence[Extent], window_px: int) -> float | None:
    """Where a still window is centred, or None when the subject travels and needs a pan.

    Still when the subject's whole range over the shot (a stray sighting or two at either end
    left out) fits the window less its margins: the window then never moves. A subject too big
    for that (a close-up) still gets a still window while its centre moves less than
    ``MIN_TRAVEL`` of the window: a pan would only chase its sway.
    """
    lows = sorted(e[0] for e in extents)
    highs = sorted(e[1] for e in extents)
    centres = sorted((e[0] + e[1]) / 2 for e in extents)
    cut = len(extents) // 20  # 5 % at each end: a detector's stray box does not move a camera
    first, last = lows[cut], highs[len(highs) - 1 - cut]
    if last - first <= window_px * (1 - 2 * DEAD_ZONE_MARGIN):
        return (first + last) / 2
    low, high = centres[cut], centres[len(centres) - 1 - cut]
    if high - low <= MIN_TRAVEL * window_px:
        return (low + high) / 2
    return None


def _nearest(known: Sequence[tuple[float, Extent]], t: float) -> float:
    """The centre of the sighting nearest to ``t`` (held where the subject was not seen)."""
    lo, hi = min(known, key=lambda k: abs(k[0] - t))[1]
    return (lo + hi) / 2


def _pan(times: Sequence[float], centres: Sequence[float], *, start_s: float, end_s: float,
         top: int, window_px: int, axis: Axis) -> ReframeShot:
    """A pan that keeps the travelling subject centred: smoothed, speed-capped, simplified."""
    wanted = [min(max(c - window_px / 2, 0.0), float(top)) for c in centres]
    smooth = _local_linear(times, wanted, SMOOTH_S)
    # Speed cap, then the same smoothing again so the capped corners do not jerk.
    max_step = MAX_SPEED_WINDOWS_PER_S * window_px
    capped = [smooth[0]]
    for i in range(1, len(smooth)):
        dt = times[i] - times[i - 1]
        step = min(max(smooth[i] - capped[-1], -max_step * dt), max_step * dt)
        capped.append(capped[-1] + step)
    path = _local_linear(times, capped, SMOOTH_S / 2)
    # The shot's ends carry on at the speed of its first and last samples (a mover keeps
    # moving until the cut), so the camera does not stop dead before it.
    head = path[0] - _slope(times[:2], path[:2]) * (times[0] - start_s)
    tail = path[-1] + _slope(times[-2:], path[-2:]) * (end_s - times[-1])
    points = [(t, min(max(v, 0.0), float(top)))
              for t, v in ((start_s, head), *zip(times, path, strict=True), (end_s, tail))]
    points = [p for i, p in enumerate(points) if i == 0 or p[0] > points[i - 1][0] + 1e-6]
    keys = _simplify(points, max(1.0, SIMPLIFY_SHARE * window_px))
    return ReframeShot(start_s, end_s, "pan", axis, tuple((round(t, 4), round(x)) for t, x in keys))


def _local_linear(times: Sequence[float], values: Sequence[float], sigma_s: float) -> list[float]:
    """Gaussian-weighted local linear fit at each time: steady motion passes through unlagged."""
    out = []
    for t0 in times:
        sw = swt = swv = swtt = swtv = 0.0
        for t, v in zip(times, values, strict=True):
            w = math.exp(-0.5 * ((t - t0) / sigma_s) ** 2)
            dt = t - t0
            sw += w
            swt += w * dt
            swv += w * v
            swtt += w * dt * dt
            swtv += w * dt * v
        det = sw * swtt - swt * swt
        out.append((swtt * swv - swt * swtv) / det if det > 1e-9 else swv / sw)
    return out


def _simplify(points: list[tuple[float, float]], tolerance: float) -> list[tuple[float, float]]:
    """Ramer-Douglas-Peucker on a path ``x(t)``: the fewest keyframes within ``tolerance`` px."""
    if len(points) <= 2:
        return points
    (t0, x0), (t1, x1) = points[0], points[-1]
    worst, at = -1.0, 0
    for i in range(1, len(points) - 1):
        t, x = points[i]
        line = x0 + (x1 - x0) * (t - t0) / (t1 - t0) if t1 > t0 else x0
        if abs(x - line) > worst:
            worst, at = abs(x - line), i
    if worst <= tolerance:
        return [points[0], points[-1]]
    return _simplify(points[:at + 1], tolerance)[:-1] + _simplify(points[at:], tolerance)


def _slope(times: Sequence[float], values: Sequence[float]) -> float:
    if len(times) < 2 or times[-1] <= times[0]:
        return 0.0
    return (values[-1] - values[0]) / (times[-1] - times[0])


def crop_offset_expr(shots: Sequence[ReframeShot]) -> str:
    """The path as an ffmpeg expression of ``t``: one linear piece per keyframe interval.

    The pieces are chosen by a balanced tree of ``if(lt(t,T),...)``: ffmpeg refuses an
    expression nested more than ~100 deep, which a chain of one ``if`` per piece reaches at
    ~100 keyframes (a fast-cut minute); a tree of N pieces is only log2(N) deep, and each
    frame evaluates log2(N) tests. A shot's pieces start at its first frame (the boundary
    sits a hair before the cut's time, so the cut frame itself gets the new window).

    Raises:
        Nothing.
    """
    pieces: list[tuple[float, str]] = []  # (from_s, expression valid from then on)
    for shot in shots:
        keys = shot.keys
        if len(keys) == 1:
            pieces.append((shot.start_s, str(keys[0][1])))
            continue
        for k, ((t0, x0), (t1, x1)) in enumerate(itertools.pairwise(keys)):
            slope = (x1 - x0) / (t1 - t0) if t1 > t0 else 0.0
            expr = f"{x0}" if abs(slope) < 1e-6 else f"{x0}+{slope:.4f}*(t-{t0:.4f})"
            pieces.append((shot.start_s if k == 0 else t0, expr))
    return _pick(pieces, 0, len(pieces))


def _pick(pieces: Sequence[tuple[float, str]], lo: int, hi: int) -> str:
    """The expression choosing among ``pieces[lo:hi]`` by time, as a balanced tree."""
    if hi - lo == 1:
        return pieces[lo][1]
    mid = (lo + hi) // 2
    return (f"if(lt(t,{pieces[mid][0] - CUT_MARGIN_S:.4f}),{_pick(pieces, lo, mid)},"
            f"{_pick(pieces, mid, hi)})")
