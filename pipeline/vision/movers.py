"""Subjects that are not faces: whole people (OpenCV's HOG detector) and what moves.

For smart framing and cover choice, where a subject seen from afar, from behind or in motion
matters; the ``subject_under_ui`` check itself needs only faces and salient detail
(:mod:`.subject`).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from .subject import SubjectBox, add_distinct, load_opencv

if TYPE_CHECKING:
    from .subject import RGBFrame


@functools.cache
def _people_detector() -> Any:
    load_opencv()
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
    load_opencv()
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
        add_distinct(found, SubjectBox("person", float(x / scale_w), float(y / scale_h),
                                   float((x + w) / scale_w), float((y + h) / scale_h),
                                   min(1.0, float(weight) / 2)))
    return tuple(found)


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
    load_opencv()
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
