"""Does a smart-framed video's cover cut its subject off? (the ``cover_subject_cut`` warning)

A frame cover is the delivered frame at the requested time, which is right, but the frame can
be a bad one: a face half out of the crop window (a subject entering the shot, a bystander at
the window's edge, a pan that has not caught up). The delivered frame alone cannot tell a
face cut by the window from a face at the edge of the picture, so this looks where the
window came from: the source's frames around the time (one decode of ``SEARCH_S`` either
side, at most :data:`SIDE_PX` and :data:`MAX_FPS`: at most 31 frames of 640 px), their faces
(else people) found by :mod:`pipeline.vision.subject` the way smart framing finds them, and the
window's position at each frame's time from the target's reframe path. A subject is *cut*
when it overlaps the window but more than ``CUT_SHARE`` of it lies outside; a frame is
*whole* when it shows a subject and none is cut. When the requested frame is cut, the warning
names the nearest whole frame within ``SEARCH_S``, or says there is none.

The check only advises: when the source cannot be decoded, or the time is past the source's
end (a looped clip), it says nothing and the cover is made as asked.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

from ..deadline import Deadline
from ..errors import CorruptMedia, FFmpegError
from ..models import MediaInfo
from ..plan.targets import ReframeShot, VideoTarget
from . import sampling
from .movers import find_people
from .subject import SubjectBox, find_faces

log = logging.getLogger(__name__)

CODE = "cover_subject_cut"
SEARCH_S = 0.5  # how far either side of the requested time a whole frame is looked for
# The source frames' longer side: larger than smart framing's samples (384), since one frame
# decides here; a face 1/8 of a 16:9 frame's height is 45 px (measured: Pillow's test face at
# 58 px was found in 1 of 12 frames at 384, in all at 640).
SIDE_PX = 640
MAX_FPS = 30.0  # frames looked at per second of the search (a 60 fps source: every other)
CUT_SHARE = 0.15  # of a subject's width or height outside the window: cut (box slack below)

Box = tuple[float, float, float, float]  # left, top, right, bottom as fractions of the frame


def window_at(target: VideoTarget, t_s: float) -> Box:
    """The crop window at ``t_s`` in fractions of the displayed source (the reframe path's
    piecewise-linear offset along its axis; the geometry's crop on the other)."""
    g = target.geometry
    shots = target.reframe
    starts = [s.start_s for s in shots]
    shot = shots[max(0, bisect.bisect_right(starts, t_s) - 1)]
    offset = _offset(shot, t_s)
    x, y = (offset, g.crop_y) if shot.axis == "x" else (g.crop_x, offset)
    return (x / g.source_width, y / g.source_height, (x + g.crop_width) / g.source_width,
            (y + g.crop_height) / g.source_height)


def _offset(shot: ReframeShot, t_s: float) -> float:
    keys = shot.keys
    if t_s <= keys[0][0]:
        return float(keys[0][1])
    for (t0, v0), (t1, v1) in pairwise(keys):
        if t_s <= t1:
            return v0 + (v1 - v0) * ((t_s - t0) / (t1 - t0) if t1 > t0 else 1.0)
    return float(keys[-1][1])


def _outside_share(box: SubjectBox, window: Box) -> float:
    """How much of the subject lies outside the window, along the worse axis (0..1)."""
    w, h = box.right - box.left, box.bottom - box.top
    inside_w = max(0.0, min(box.right, window[2]) - max(box.left, window[0]))
    inside_h = max(0.0, min(box.bottom, window[3]) - max(box.top, window[1]))
    return max(1 - inside_w / w if w > 0 else 0.0, 1 - inside_h / h if h > 0 else 0.0)


def judge(subjects: Sequence[SubjectBox], window: Box) -> str:
    """``"cut"``, ``"whole"`` or ``"none"`` (no subject in the window) for one frame."""
    seen = [b for b in subjects if _outside_share(b, window) < 1.0]
    if not seen:
        return "none"
    return "cut" if any(_outside_share(b, window) > CUT_SHARE for b in seen) else "whole"


def _subjects(frame: object) -> tuple[SubjectBox, ...]:
    import numpy as np

    pixels = np.asarray(frame)
    # as smart framing looks for faces (pipeline.vision.framing): light evened over the frame, else
    # tile by tile (small and partly lit faces)
    return (find_faces(pixels, profiles="without_frontal")
            or find_faces(pixels, contrast="local", profiles="never") or find_people(pixels))


def subject_cut_warning(source: Path, info: MediaInfo, target: VideoTarget, at_ms: int, *,
                        timeout_s: float, deadline: Deadline | None = None) -> str | None:
    """The ``cover_subject_cut`` warning for a frame cover at ``at_ms`` of a smart-framed
    video made from ``source``, or ``None`` (subject whole, none found, or not reframed).

    Raises:
        DeadlineExceeded: the job ran out of time (checked between the frames judged).
        Nothing of the media: an undecodable source is logged and not judged.
    """
    at_s = at_ms / 1000
    duration_s = info.duration_s or 0.0
    if not target.reframe or at_s >= duration_s:
        return None
    fps = min(MAX_FPS, float(info.video.fps) if info.video and info.video.fps > 0 else MAX_FPS)
    # on the source's frame grid when it is sampled at its own rate: the times named are
    # frames' times
    start_s = max(0.0, math.floor((at_s - SEARCH_S) * fps + 1e-6) / fps)
    try:
        pics = sampling.sample_rate(source, info, fps=fps, max_side=SIDE_PX, timeout_s=timeout_s,
                                  start_s=start_s, length_s=at_s + SEARCH_S - start_s)
    except (FFmpegError, CorruptMedia) as err:
        log.warning("cover subject check skipped: %s", err.message)
        return None
    times = [start_s + i / fps for i in range(len(pics))]
    # the cover is the last frame at or before at_ms
    at = max(0, min(len(pics) - 1, math.floor((at_s - start_s) * fps + 1e-6)))
    if judge(_subjects(pics[at]), window_at(target, times[at])) != "cut":
        return None
    order = sorted((i for i in range(len(pics)) if i != at),
                   key=lambda i: (abs(times[i] - times[at]), times[i]))
    for i in order:
        if deadline is not None:
            deadline.check("cover subject check")
        if judge(_subjects(pics[i]), window_at(target, times[i])) == "whole":
            return (f"{CODE}: the subject is cut off by the frame at {at_ms} ms; the nearest "
                    f"frame where it is whole is at {round(times[i] * 1000)} ms")
    return (f"{CODE}: the subject is cut off by the frame at {at_ms} ms, and no frame within "
            f"{SEARCH_S} s shows it whole")
