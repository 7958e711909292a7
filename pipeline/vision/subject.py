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
import math
import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..errors import Interrupted, PipelineError
from ..geometry import Geometry
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


def load_opencv() -> None:
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


_WARM_UP_STARTED = threading.Event()


def warm_up() -> None:
    """Load OpenCV and the face threads' cascades on a background thread, once per process.

    Called when an encode starts whose output the check will look at: importing numpy and
    OpenCV and parsing the cascades (~0.15 s, BENCHMARKS.md "Overhead") then happens while
    x264 runs instead of after it. The check does not depend on it: what is not loaded yet
    when it starts, it loads itself, and a failure here is only logged (the check meets it
    again and reports it in its own way).
    """
    if _WARM_UP_STARTED.is_set():
        return
    _WARM_UP_STARTED.set()
    threading.Thread(target=_warm, name="subject-warm-up", daemon=True).start()


def _warm() -> None:
    try:
        for _ in range(FACE_THREADS):
            _CASCADE_PAIRS.put(_load_cascades())
    except Exception as err:
        log.debug("OpenCV warm-up failed: %s", err)


def _load_cascades() -> tuple[Any, Any]:
    load_opencv()
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
    load_opencv()
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
                add_distinct(found, SubjectBox("face", float(left / width), float(y / height),
                                           float((left + w) / width), float((y + h) / height),
                                           min(1.0, float(n) / 20.0)))
    return tuple(found)


def find_salient(frame: RGBFrame) -> SubjectBox | None:
    """The most salient region: where fine detail (edges: text, a sharp subject) is densest.

    A contrast map rather than colour: the blurred fill around a 16:9 video in a 9:16 frame,
    a sky or a gradient have no detail, so the sharp picture or the caption text wins.
    Returns None for a frame with no detail at all (one colour, a fade).
    """
    load_opencv()
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


# Where an output's own picture sits on its canvas, as fractions (left, top, right, bottom);
# the rest is the fill (blurred copy or bars) a fit added around it.
Region = tuple[float, float, float, float]


def picture_region(geometry: Geometry) -> Region | None:
    """Where the picture sits on an output's canvas; None when it fills the canvas."""
    g = geometry
    if (g.content_width, g.content_height) == (g.width, g.height):
        return None
    left = (g.width - g.content_width) / 2 / g.width
    top = (g.height - g.content_height) / 2 / g.height
    return left, top, 1.0 - left, 1.0 - top


def faces_within(frame: RGBFrame, region: Region | None) -> tuple[SubjectBox, ...]:
    """:func:`find_faces` in the ``region`` of the frame only (boxes still as fractions of
    the whole frame).

    A fill is a copy of the picture blurred (or bars): a face found there is not a
    subject, and the UI covering it hides nothing. Searching the picture alone also costs
    a third of the whole frame for a landscape clip on a 9:16 canvas (the cascades are
    most of the check's time).
    """
    if region is None:
        return find_faces(frame)
    height, width = frame.shape[:2]
    x0, y0 = math.floor(region[0] * width), math.floor(region[1] * height)
    x1, y1 = math.ceil(region[2] * width), math.ceil(region[3] * height)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return ()
    inner_w, inner_h = x1 - x0, y1 - y0
    return tuple(SubjectBox(b.kind, (x0 + b.left * inner_w) / width,
                            (y0 + b.top * inner_h) / height,
                            (x0 + b.right * inner_w) / width,
                            (y0 + b.bottom * inner_h) / height, b.confidence)
                 for b in find_faces(frame[y0:y1, x0:x1]))


def find_subjects(frame: RGBFrame) -> tuple[SubjectBox, ...]:
    """The frame's subject: its faces, or else its most salient region, or nothing.

    Args:
        frame: an RGB ``uint8`` array of shape (height, width, 3).

    Returns:
        Boxes as fractions of the frame, faces first; empty for a flat frame.
    """
    return find_faces(frame) or salient_of(frame)


def salient_of(frame: RGBFrame) -> tuple[SubjectBox, ...]:
    """:func:`find_salient` as a frame's subjects: its region, or none."""
    salient = find_salient(frame)
    return (salient,) if salient is not None else ()


def subjects_of(shots: Sequence[RGBFrame], picture: Region | None = None) -> Subjects:
    """:func:`find_subjects` of each frame, faces looked for in its ``picture`` only
    (:func:`faces_within`). The faces of ``FACE_THREADS`` frames are looked for at once
    (the salient regions after, here: only the cascades are what takes the time).
    """
    with ThreadPoolExecutor(max_workers=FACE_THREADS) as pool:
        faces = list(pool.map(functools.partial(faces_within, region=picture), shots))
    return tuple(found or salient_of(shot) for found, shot in zip(faces, shots, strict=True))


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
                    timeout_s: float, picture: Region | None = None) -> Subjects | None:
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
        picture: where the output's picture sits when a fill surrounds it
            (:func:`picture_region`): faces are looked for there only.
    """
    if not any(v.ui_zones for v in variants):
        return None
    if not looks_at(variants, info.width, info.height):
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
    return subjects_of([np.asarray(shot) for shot in shots], picture)


def looks_at(variants: Iterable[Variant], width: int, height: int) -> bool:
    """Whether the check samples an output of this size used by ``variants``: a vertical
    picture on a surface with UI zones (a horizontal one is shown whole, below the UI)."""
    return height > width and any(v.ui_zones for v in variants)


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


def add_distinct(found: list[SubjectBox], box: SubjectBox) -> None:
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
