"""Where the subject of a picture is, and whether a platform's UI would sit on it.

The subject is what a viewer must see: faces first (OpenCV's Haar cascades, frontal and both
profiles, shipped inside the opencv-python-headless wheel: nothing is downloaded), and when a
frame has no face, its most salient region (the region of densest detail, which also picks out
text). Frames go in as RGB numpy arrays and boxes come out as fractions of the frame, so
smart framing can reuse :func:`find_subjects` on any frames it has.

``ui_warnings`` is the run's hook: it samples the delivered output (:func:`sample_subjects`)
and names each UI zone of the surfaces using it that covers the subject in at least
``MIN_FRAME_SHARE`` of the frames (:func:`surface_warnings`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..errors import Interrupted, PipelineError
from ..models import MediaInfo
from ..presets import UiZone, Variant
from . import sampling

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    RGBFrame = npt.NDArray[np.uint8]

log = logging.getLogger(__name__)

WARNING_CODE = "subject_under_ui"
SAMPLE_FRAMES = 6  # frames looked at per video: enough to tell a moment from most of the clip
SAMPLE_SIDE_PX = 480  # a face 1/8 of a 9:16 frame's width is still ~34 px here (cascade: 24)
# A zone is reported when it covers the subject in at least this share of the sampled frames
# (a face passing through the caption band for a moment is not worth a warning; one that sits
# there for a third of the clip is), and "covers" means at least this share of the subject box
# lies inside the band.
MIN_FRAME_SHARE = 0.30
MIN_BOX_OVERLAP = 0.25
_SALIENCY_SIDE_PX = 128  # detail is measured on a frame this small: fast, and noise-free
_MIN_EDGE = 40.0  # Sobel magnitude: below this nowhere, the frame has no detail (one colour)


@dataclass(frozen=True, slots=True)
class SubjectBox:
    """A subject in a frame: edges as fractions of the frame (0..1, top-left origin)."""

    kind: Literal["face", "person", "motion", "salient"]
    left: float
    top: float
    right: float
    bottom: float
    confidence: float  # 0..1

    def share_inside(self, zone: UiZone) -> float:
        """How much of this box (by area) lies inside ``zone``'s band."""
        left, top, right, bottom = self.left, self.top, self.right, self.bottom
        if zone.edge == "top":
            bottom = min(bottom, zone.fraction)
        elif zone.edge == "bottom":
            top = max(top, 1.0 - zone.fraction)
        elif zone.edge == "left":
            right = min(right, zone.fraction)
        else:
            left = max(left, 1.0 - zone.fraction)
        area = (self.right - self.left) * (self.bottom - self.top)
        inside = max(0.0, right - left) * max(0.0, bottom - top)
        return inside / area if area > 0 else 0.0


# Frames whose faces are looked for at once: OpenCV scans outside the GIL, so on two cores
# the subject check's six frames take half the time (the cascades are most of its cost).
FACE_THREADS = 2
_CASCADE_PAIRS: queue.SimpleQueue[tuple[Any, Any]] = queue.SimpleQueue()


_OPENCV_LOCK = threading.Lock()


def _load_opencv() -> None:
    """Import OpenCV under a lock before any ``import cv2``: its loader re-imports itself
    (``cv2.bootstrap``), and two threads entering it at once break it (the face threads of
    one check, or two jobs of a batch that runs jobs on threads). Once loaded, a lookup."""
    with _OPENCV_LOCK:
        import cv2  # noqa: F401


@contextlib.contextmanager
def _cascades() -> Iterator[tuple[Any, Any]]:
    """The frontal and profile cascades, for the caller alone while it holds them.

    A classifier keeps the image it scans, so threads never share one: each concurrent
    caller gets its own pair, loaded once and then kept for the next caller.
    """
    try:
        pair = _CASCADE_PAIRS.get_nowait()
    except queue.Empty:
        pair = _load_cascades()
    try:
        yield pair
    finally:
        _CASCADE_PAIRS.put(pair)


def _load_cascades() -> tuple[Any, Any]:
    _load_opencv()
    import cv2

    # cv2.data is a plain sub-package the wheel's type stubs do not declare
    base = Path(cv2.data.haarcascades)  # type: ignore[attr-defined]
    frontal = cv2.CascadeClassifier(str(base / "haarcascade_frontalface_default.xml"))
    profile = cv2.CascadeClassifier(str(base / "haarcascade_profileface.xml"))
    if frontal.empty() or profile.empty():  # a broken opencv install, not bad input
        raise RuntimeError(f"OpenCV's face cascades are missing from {base}")
    return frontal, profile


def find_faces(frame: RGBFrame, *, contrast: Literal["global", "local"] = "global",
               profiles: Literal["always", "without_frontal", "never"] = "always"
               ) -> tuple[SubjectBox, ...]:
    """Faces in an RGB frame (frontal, then profiles facing either way).

    ``contrast`` "local" evens the light tile by tile (CLAHE) instead of over the whole
    frame, which finds small and partly lit faces (measured in BENCHMARKS.md, "Subjects").
    ``profiles`` says when the two profile passes (two thirds of the cost) run: always, only
    when no frontal face was found, or never.
    """
    _load_opencv()
    import cv2
    import numpy as np

    height, width = frame.shape[:2]
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    gray = (cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(grey)
            if contrast == "local" else cv2.equalizeHist(grey))
    min_side = max(20, min(width, height) // 16)
    found: list[SubjectBox] = []
    with _cascades() as (frontal, profile):
        for cascade, flip in ((frontal, False), (profile, False), (profile, True)):
            if cascade is profile and (profiles == "never"
                                       or (profiles == "without_frontal" and found)):
                break
            image = np.ascontiguousarray(gray[:, ::-1]) if flip else gray
            boxes, hits = cascade.detectMultiScale2(image, scaleFactor=1.1, minNeighbors=5,
                                                    minSize=(min_side, min_side))
            for (x, y, w, h), n in zip(boxes, hits, strict=True):
                left = width - x - w if flip else x
                _add_new(found, SubjectBox("face", float(left / width), float(y / height),
                                           float((left + w) / width), float((y + h) / height),
                                           min(1.0, float(n) / 20.0)))
    return tuple(found)


@functools.cache
def _people_detector() -> Any:
    _load_opencv()
    import cv2
    import numpy as np

    hog = cv2.HOGDescriptor()  # the default people model ships inside OpenCV itself
    hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), np.float32))
    return hog


PERSON_UPSCALE = 2.0  # HOG's window is 64x128: at 2x a 384 px sample finds people 1/3 as tall
PERSON_MIN_WEIGHT = 1.0  # SVM margin: below it, 0.36 false people a frame on clips of none


def find_people(frame: RGBFrame) -> tuple[SubjectBox, ...]:
    """Whole people (standing or walking, faces not needed): OpenCV's HOG people detector.

    For subjects seen from afar or from behind, where no face is found.
    """
    _load_opencv()
    import cv2

    height, width = frame.shape[:2]
    big = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY),
                     (round(width * PERSON_UPSCALE), round(height * PERSON_UPSCALE)),
                     interpolation=cv2.INTER_LINEAR)
    rects, weights = _people_detector().detectMultiScale(big, winStride=(8, 8),
                                                         padding=(8, 8), scale=1.1)
    found: list[SubjectBox] = []
    scale_w, scale_h = width * PERSON_UPSCALE, height * PERSON_UPSCALE
    for (x, y, w, h), weight in sorted(zip(rects, weights, strict=True),
                                       key=lambda r: -float(r[1])):
        if float(weight) < PERSON_MIN_WEIGHT:
            continue
        _add_new(found, SubjectBox("person", float(x / scale_w), float(y / scale_h),
                                   float((x + w) / scale_w), float((y + h) / scale_h),
                                   min(1.0, float(weight) / 2)))
    return tuple(found)


def find_salient(frame: RGBFrame) -> SubjectBox | None:
    """The most salient region: where fine detail (edges: text, a sharp subject) is densest.

    A contrast map rather than colour: the blurred fill around a 16:9 video in a 9:16 frame,
    a sky or a gradient have no detail, so the sharp picture or the caption text wins.
    Returns None for a frame with no detail at all (one colour, a fade).
    """
    _load_opencv()
    import cv2
    import numpy as np

    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    height, width = gray.shape[:2]
    scale = _SALIENCY_SIDE_PX / max(height, width)
    small = cv2.resize(gray, (max(8, round(width * scale)), max(8, round(height * scale))),
                       interpolation=cv2.INTER_AREA).astype(np.float32)
    gx = cv2.Sobel(small, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(small, cv2.CV_32F, 0, 1, ksize=3)
    energy = cv2.GaussianBlur(cv2.magnitude(gx, gy), (0, 0), 2.0)
    peak = float(energy.max())
    if peak < _MIN_EDGE:
        return None
    mask = (energy >= 0.35 * peak).astype(np.uint8)
    # Letters of a line of text are separate peaks: join neighbours into one region.
    joined = cv2.dilate(mask, np.ones((3, 7), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(joined)
    if count < 2:
        return None
    weight = [float(energy[labels == i].sum()) for i in range(1, count)]
    best = 1 + int(np.argmax(weight))
    x, y, w, h = (int(v) for v in stats[best, :4])
    sh, sw = energy.shape[:2]
    return SubjectBox("salient", x / sw, y / sh, (x + w) / sw, (y + h) / sh,
                      min(1.0, weight[best - 1] / max(sum(weight), 1e-6)))


MOTION_LEVEL = 25  # grey-level change that counts as movement (above compression noise)
MOTION_MIN_SHARE = 0.001  # of the frame: less is noise
MOTION_MAX_SHARE = 0.5  # more is the camera moving or a cut, not a subject


def find_moving(frame: RGBFrame, prev: RGBFrame | None, nxt: RGBFrame | None
                ) -> SubjectBox | None:
    """What moves in ``frame``: three-frame differencing against its neighbours in the shot.

    A pixel is moving when it differs from both neighbours (only one when the frame is the
    shot's first or last), which keeps the object where it is now, not where it was. Used by
    smart framing (``framing.py``) when a frame has no face.

    Returns:
        The largest moving region, or None (no neighbour, nothing moves, or everything does).
    """
    _load_opencv()
    import cv2
    import numpy as np

    if prev is None and nxt is None:
        return None

    def soft(f: RGBFrame) -> Any:
        return cv2.GaussianBlur(f, (5, 5), 0)

    # The largest change of any colour channel: a red object crossing a blue background of
    # the same brightness moves in colour, not in grey.
    cur = soft(frame)
    masks = [cv2.absdiff(cur, soft(other)).max(axis=2) > MOTION_LEVEL
             for other in (prev, nxt) if other is not None]
    moving = masks[0] if len(masks) == 1 else np.logical_and(masks[0], masks[1])
    share = float(moving.mean())
    if not MOTION_MIN_SHARE <= share <= MOTION_MAX_SHARE:
        return None
    joined = cv2.dilate(moving.astype(np.uint8), np.ones((5, 5), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(joined)
    if count < 2:
        return None
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) for v in stats[best, :4])
    height, width = cur.shape[:2]
    return SubjectBox("motion", x / width, y / height, (x + w) / width, (y + h) / height,
                      min(1.0, share / MOTION_MIN_SHARE / 10))


def find_subjects(frame: RGBFrame) -> tuple[SubjectBox, ...]:
    """The frame's subject: its faces, or else its most salient region, or nothing.

    Args:
        frame: an RGB ``uint8`` array of shape (height, width, 3).

    Returns:
        Boxes as fractions of the frame, faces first; empty for a flat frame.
    """
    return find_faces(frame) or _salient(frame)


def _salient(frame: RGBFrame) -> tuple[SubjectBox, ...]:
    salient = find_salient(frame)
    return (salient,) if salient is not None else ()


def subjects_of(shots: Sequence[RGBFrame]) -> Subjects:
    """:func:`find_subjects` of each frame, the same boxes in the same order, faster: the
    faces of ``FACE_THREADS`` frames are looked for at once (the salient regions after,
    here: only the cascades are what takes the time).
    """
    with ThreadPoolExecutor(max_workers=FACE_THREADS) as pool:
        faces = list(pool.map(find_faces, shots))
    return tuple(found or _salient(shot) for found, shot in zip(faces, shots, strict=True))


def zones_under(subjects: Sequence[Sequence[SubjectBox]], zones: Iterable[UiZone], *,
                min_frame_share: float = MIN_FRAME_SHARE,
                min_box_overlap: float = MIN_BOX_OVERLAP) -> list[UiZone]:
    """The zones that cover the subject in at least ``min_frame_share`` of the frames.

    Args:
        subjects: per sampled frame, the boxes :func:`find_subjects` found.
        zones: the surface's UI zones.
        min_frame_share: share of frames the zone must cover a subject in.
        min_box_overlap: share of a box's area that must lie in the band.
    """
    if not subjects:
        return []
    hit = []
    for zone in zones:
        frames_hit = sum(1 for boxes in subjects
                         if any(b.share_inside(zone) >= min_box_overlap for b in boxes))
        if frames_hit / len(subjects) >= min_frame_share:
            hit.append(zone)
    return hit


def ui_warnings(path: Path, info: MediaInfo, variants: Iterable[Variant], *,
                timeout_s: float) -> tuple[str, ...]:
    """``subject_under_ui`` warnings for a delivered output, one per covering zone.

    :func:`sample_subjects` then :func:`surface_warnings`; see both.

    Raises:
        Interrupted: stopped by a signal while sampling.
    """
    variants = tuple(variants)
    subjects = sample_subjects(path, info, variants, timeout_s=timeout_s)
    return surface_warnings(subjects or (), variants)


Subjects = tuple[tuple[SubjectBox, ...], ...]


def sample_subjects(path: Path, info: MediaInfo, variants: Iterable[Variant], *,
                    timeout_s: float) -> Subjects | None:
    """The subject boxes of the output's sampled frames, when a surface using it needs them.

    Only surfaces with UI zones and a vertical output are looked at: ``None`` when no variant
    has UI zones, ``()`` for a horizontal output or one we cannot sample (it was verified
    already; no warning is better than a failed account). The boxes depend on the output's
    pixels alone, so a stored output keeps them and a later job that reuses it names its own
    surfaces' zones from them (:func:`surface_warnings`) without decoding it again.

    Raises:
        Interrupted: stopped by a signal while sampling.

    Args:
        path: the delivered output (video or image) on local disk.
        info: its probe result.
        variants: every variant that uses this output.
        timeout_s: limit for sampling the frames.
    """
    if not any(v.ui_zones for v in variants):
        return None
    if info.height <= info.width:
        return ()
    import numpy as np

    try:
        if info.kind == "video":
            # Where the subject sits, not which exact frame: keyframes do (issue 26: the
            # full decode of the output was most of conform's own overhead on a video).
            shots = sampling.sample_video(path, info, count=SAMPLE_FRAMES,
                                          max_side=SAMPLE_SIDE_PX, timeout_s=timeout_s,
                                          keyframes=True)
        else:
            shots = [sampling.still(path, max_side=SAMPLE_SIDE_PX)]
    except Interrupted:
        raise
    except PipelineError as err:
        log.warning("no subject check for %s: %s", path.name, err.message)
        return ()
    return subjects_of([np.asarray(shot) for shot in shots])


def surface_warnings(subjects: Subjects, variants: Iterable[Variant]) -> tuple[str, ...]:
    """One warning per UI zone of each variant that covers the subject in enough frames.

    A warning reads ``subject_under_ui: bottom: caption, name, music (tiktok-video)``.
    """
    out = []
    for variant in variants:
        if not variant.ui_zones:
            continue
        for zone in zones_under(subjects, variant.ui_zones):
            out.append(f"{WARNING_CODE}: {zone.name} ({variant.id})")
    return tuple(out)


def _add_new(found: list[SubjectBox], box: SubjectBox) -> None:
    """Keep ``box`` unless it is one already found (the same subject seen by another pass or
    at another scale: overlapping by more than 30 %)."""
    if not any(_iou(box, f) > 0.3 for f in found):
        found.append(box)


def _iou(a: SubjectBox, b: SubjectBox) -> float:
    left, top = max(a.left, b.left), max(a.top, b.top)
    right, bottom = min(a.right, b.right), min(a.bottom, b.bottom)
    inter = max(0.0, right - left) * max(0.0, bottom - top)
    union = ((a.right - a.left) * (a.bottom - a.top) + (b.right - b.left) * (b.bottom - b.top)
             - inter)
    return inter / union if union > 0 else 0.0
