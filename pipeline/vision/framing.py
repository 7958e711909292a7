"""Smart framing: where the crop window sits when a picture changes shape (fit ``smart``).

Analysis (:func:`analyse_video`, :func:`analyse_image`) looks at small frames: a video's cuts
are found on their frame by :mod:`pipeline.vision.cuts` (every frame, tiny, one decode), then it is
sampled at ``SAMPLE_FPS`` at ``SAMPLE_SIDE_PX`` in one more decode, and each sample's subject
is found by :mod:`pipeline.vision.subject` (faces, else what moves, else the most salient region).
Path planning (:func:`plan_shot`) is pure: per shot a still camera when the subject moves
little against the window, else a pan that follows it, smoothed (locally linear, so steady
motion is followed without lag), speed-capped and simplified to a few keyframes.
:func:`crop_offset_expr` turns the path into the ``x``/``y`` expression of ffmpeg's ``crop``
filter, which evaluates it per frame, so the crop renders in the same pass as the rest of the
conform.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..deadline import Deadline
from ..errors import Interrupted, PipelineError
from ..models import MediaInfo, MediaRef
from ..plan.targets import ImageTarget, ReframeShot, VideoTarget
from . import cuts, sampling
from .camera import crop_offset_expr, follow, plan_shot
from .movers import find_moving, find_people
from .subject import SubjectBox, find_faces, find_salient

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from ..plan import JobPlan

log = logging.getLogger(__name__)

WARNING_CODE = "no_subject"
SAMPLE_FPS = 4.0  # samples per second: a cut is placed within 1/8 s, a pan keyframed at 4 Hz
MAX_SAMPLES = 300  # longer clips are sampled more sparsely (memory: 300 small RGB frames)
SAMPLE_SIDE_PX = 384  # a face 1/10 of a 16:9 frame's height is ~22 px here (cascade: 20)
# At least this share of a clip's samples must show a subject, else the variant's normal fit.
MIN_SUBJECT_SHARE = 0.5
# The crop expression's length cap: one argv string holds at most 128 KiB (Linux
# MAX_ARG_STRLEN) and the graph's escaping and other filters share it. ~2,000 keyframes.
MAX_CROP_EXPR_CHARS = 90_000

FramingKey = tuple[str, int, int]  # (source sha256, crop width, crop height)


@dataclass(frozen=True, slots=True)
class FramingJob:
    """One analysis to run before the final plan: a source and the crop window it needs."""

    key: FramingKey
    ref: MediaRef
    kind: Literal["video", "image"]
    crop_width: int
    crop_height: int


# --------------------------------------------------------------------------- analysis


def _centre(boxes: Sequence[SubjectBox], axis: Literal["x", "y"], window: float) -> float:
    """Centre (fraction of the frame) of the subject: every face if they fit the window."""
    def lo(b: SubjectBox) -> float:
        return b.left if axis == "x" else b.top

    def hi(b: SubjectBox) -> float:
        return b.right if axis == "x" else b.bottom

    first, last = min(lo(b) for b in boxes), max(hi(b) for b in boxes)
    if last - first > window:  # the group does not fit: follow the biggest
        big = max(boxes, key=lambda b: (b.right - b.left) * (b.bottom - b.top))
        first, last = lo(big), hi(big)
    return (first + last) / 2


def analyse_video(path: Path, info: MediaInfo, *, crop_width: int, crop_height: int,
                  deadline: Deadline, timeout_s: float) -> tuple[ReframeShot, ...] | None:
    """The crop window's path through a video; None without a confident subject, ``()`` when
    the path cannot be rendered (the variant's fit is used either way).

    The cost is bounded by the clip's length: one tiny decode of every frame (the cuts), one
    decode at ``SAMPLE_FPS`` (the subjects, at most ``MAX_SAMPLES`` of them), however many
    cuts or flashes the clip has. The job's deadline is checked between the two and between
    samples.

    Args:
        path: the source video on local disk.
        info: its probe result (display size, duration).
        crop_width: the window's width in displayed source pixels; crop_height its height.
        deadline: the job's; each decode gets at most what is left of it.
        timeout_s: limit for each decode.

    Raises:
        FFmpegError: ffmpeg could not decode the source.
        FFmpegTimeout: a decode took longer than its time.
        CorruptMedia: no frame could be decoded.
        DeadlineExceeded: the job ran out of time during the analysis.
    """
    import numpy as np

    axis: Literal["x", "y"] = "x" if crop_width < info.width else "y"
    span, window = (info.width, crop_width) if axis == "x" else (info.height, crop_height)
    duration_s = max(info.duration_s or 0.0, 0.04)
    deadline.check("smart framing")
    tiny, cut_rate = sampling.every_frame(path, info, max_side=cuts.CUT_SIDE_PX,
                                        max_frames=cuts.MAX_FRAMES,
                                        timeout_s=min(timeout_s, deadline.remaining()))
    starts = [0.0, *(round(f / cut_rate, 4) for f in cuts.find_cuts(tiny, rate=cut_rate))]
    del tiny
    deadline.check("smart framing")
    rate = min(SAMPLE_FPS, MAX_SAMPLES / duration_s)
    pics = [np.asarray(p) for p in sampling.sample_rate(
        path, info, fps=rate, max_side=SAMPLE_SIDE_PX,
        timeout_s=min(timeout_s, deadline.remaining()))]
    times = [i / rate for i in range(len(pics))]
    shot_of = [bisect.bisect_right(starts, t + 1e-6) - 1 for t in times]
    boxes = _subjects(pics, shot_of, deadline)
    if sum(bool(b) for b in boxes) < MIN_SUBJECT_SHARE * len(pics):
        return None
    out = []
    for k, start_s in enumerate(starts):
        end_s = starts[k + 1] if k + 1 < len(starts) else duration_s
        mine = [i for i, s in enumerate(shot_of) if s == k]
        held = follow([boxes[i] for i in mine], axis, window / span)
        out.append(plan_shot([times[i] for i in mine],
                             [None if e is None else (e[0] * span, e[1] * span) for e in held],
                             start_s=start_s, end_s=end_s, span_px=span, window_px=window,
                             axis=axis))
    if len(crop_offset_expr(out)) > MAX_CROP_EXPR_CHARS:
        log.warning("smart framing of %s: a path of %d shots is too long to render",
                    path.name, len(out))
        return ()
    return tuple(out)


def _subjects(pics: Sequence[npt.NDArray[np.uint8]], shot_of: Sequence[int],
              deadline: Deadline) -> list[tuple[SubjectBox, ...]]:
    """Per sample, its subjects (see :func:`_subjects_of`); neighbours in the same shot
    tell what moves.

    Raises:
        DeadlineExceeded: the job ran out of time.
    """
    found: list[tuple[SubjectBox, ...]] = []
    for i, pic in enumerate(pics):
        deadline.check("smart framing")
        same = [j for j in (i - 1, i + 1) if 0 <= j < len(pics) and shot_of[j] == shot_of[i]]
        prev = pics[i - 1] if i - 1 in same else None
        nxt = pics[i + 1] if i + 1 in same else None
        found.append(_subjects_of(pic, prev, nxt))
    return found


def _subjects_of(pic: npt.NDArray[np.uint8], prev: npt.NDArray[np.uint8] | None,
                 nxt: npt.NDArray[np.uint8] | None) -> tuple[SubjectBox, ...]:
    """Faces (evened light over the frame; else frontal ones with light evened tile by tile:
    small and partly lit faces), else what moves, else whole people (no face seen), else the
    most salient region. The profile passes run only when no frontal face is found: they are
    two thirds of the cost (see BENCHMARKS.md, "Subjects")."""
    faces = (find_faces(pic, profiles="without_frontal")
             or find_faces(pic, contrast="local", profiles="never"))
    if faces:
        return faces
    moving = find_moving(pic, prev, nxt)
    if moving is not None:
        return (moving,)
    people = find_people(pic)
    if people:
        return people
    salient = find_salient(pic)
    return (salient,) if salient is not None else ()


def analyse_image(path: Path, info: MediaInfo, *, crop_width: int, crop_height: int
                  ) -> tuple[ReframeShot, ...] | None:
    """Where the crop window of an image goes (a one-key still "shot"), or None.

    The source is looked at through a small decode (:func:`pipeline.image.decode_preview`:
    JPEG draft scaling, HEIF/AVIF band scaling, the decode budget), never at full size.

    Raises:
        CorruptMedia: the image cannot be read for analysis.
        TooLarge: even its smallest decode is over the decode budget.
    """
    import numpy as np

    from ..image import decode_preview

    axis: Literal["x", "y"] = "x" if crop_width < info.width else "y"
    span, window = (info.width, crop_width) if axis == "x" else (info.height, crop_height)
    pic = np.asarray(decode_preview(path, info, max_side=SAMPLE_SIDE_PX * 2))
    boxes: Sequence[SubjectBox] = find_faces(pic)
    if not boxes:
        salient = find_salient(pic)
        boxes = [salient] if salient is not None else []
    if not boxes:
        return None
    centre = _centre(boxes, axis, window / span) * span
    offset = round(min(max(centre - window / 2, 0.0), float(span - window)))
    return (ReframeShot(0.0, 0.0, "still", axis, ((0.0, offset),)),)


def framing_jobs(jobplan: JobPlan) -> list[FramingJob]:
    """The analyses a plan needs: one per source and crop window of every smart target.

    Raises:
        Nothing.
    """
    out: dict[FramingKey, FramingJob] = {}
    for r in jobplan.renditions:
        t = r.target
        g = t.geometry
        if g.fit != "smart" or (g.crop_width, g.crop_height) == (g.source_width,
                                                                  g.source_height):
            continue
        if isinstance(t, VideoTarget) and t.action != "transcode":
            continue
        key = (r.source_sha256, g.crop_width, g.crop_height)
        kind: Literal["video", "image"] = "image" if isinstance(t, ImageTarget) else "video"
        out.setdefault(key, FramingJob(key, r.ref, kind, g.crop_width, g.crop_height))
    return list(out.values())


def analyse(jobs: Iterable[FramingJob], paths: Mapping[MediaRef, Path],
            infos: Mapping[MediaRef, MediaInfo], *, deadline: Deadline, timeout_s: float
            ) -> dict[FramingKey, tuple[ReframeShot, ...] | None]:
    """Run every analysis; a source that cannot be analysed gets None (the normal fit).

    Once the job's deadline passes, the analyses left are skipped (None): the outputs then
    fail as ``deadline_exceeded`` where the run checks the deadline, and the manifest says so.

    Args:
        jobs: from :func:`framing_jobs`.
        paths: local source files by reference.
        infos: probe results by reference.
        deadline: the job's, checked inside each analysis.
        timeout_s: limit for each decode (never more than the deadline leaves).

    Raises:
        Interrupted: stopped by a signal.
    """
    out: dict[FramingKey, tuple[ReframeShot, ...] | None] = {}
    for job in jobs:
        path, info = paths[job.ref], infos[job.ref]
        if deadline.expired():
            out[job.key] = None
            continue
        try:
            if job.kind == "video":
                out[job.key] = analyse_video(path, info, crop_width=job.crop_width,
                                             crop_height=job.crop_height, deadline=deadline,
                                             timeout_s=timeout_s)
            else:
                out[job.key] = analyse_image(path, info, crop_width=job.crop_width,
                                             crop_height=job.crop_height)
        except Interrupted:
            raise
        except PipelineError as err:
            log.warning("no smart framing for %s: %s", path.name, err.message)
            out[job.key] = None
    return out
