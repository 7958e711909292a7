"""Face finding measured on real frames: recall and false positives of each detector variant.

``python -m bench.subjects`` samples the corpus talking head (``face.mp4``: a real speaker who
turns her head) and makes three sets from it at run time: the frames as filmed, the same
frames small (a third of the size, on a wider wall), and partly lit (one side darkened to
a fifth). Frames of clips without a face (a cartoon, a road) count false positives. The truth
is where the speaker's face is: the frontal cascade at full resolution, its median box over
the clip (she stays in place), widened by 40 %; a detection whose centre lies in it is a hit.

Prints one JSON object (the figures in BENCHMARKS.md, "Subjects").
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import probe
from pipeline.vision.movers import find_people
from pipeline.vision.sampling import sample_rate
from pipeline.vision.subject import SubjectBox, find_faces

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "videos"
SIDE = 384  # the analysis samples' size (pipeline.vision.framing.SAMPLE_SIDE_PX)
Box = tuple[float, float, float, float]


def _frames(name: str, fps: float, side: int) -> list[np.ndarray[Any, Any]]:
    path = CORPUS / name
    return [np.asarray(p) for p in sample_rate(path, probe.probe(path), fps=fps, max_side=side,
                                               timeout_s=120)]


def _truth(full: list[np.ndarray[Any, Any]]) -> Box:
    boxes = [b for f in full for b in find_faces(f)[:1]]
    med = [float(np.median([getattr(b, k) for b in boxes]))
           for k in ("left", "top", "right", "bottom")]
    w, h = med[2] - med[0], med[3] - med[1]
    return med[0] - 0.2 * w, med[1] - 0.2 * h, med[2] + 0.2 * w, med[3] + 0.2 * h


def _small(frame: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    import cv2

    h, w = frame.shape[:2]
    canvas = np.empty_like(frame)
    canvas[:] = frame[: h // 8, : w // 8].reshape(-1, 3).mean(axis=0)  # the wall's colour
    small = cv2.resize(frame, (w // 3, h // 3), interpolation=cv2.INTER_AREA)
    canvas[h // 3: h // 3 + small.shape[0], w // 3: w // 3 + small.shape[1]] = small
    return canvas


def _half_lit(frame: np.ndarray[Any, Any], truth: Box) -> np.ndarray[Any, Any]:
    w = frame.shape[1]
    middle = (truth[0] + truth[2]) / 2 * w
    gain = np.clip((np.arange(w) - middle) / (0.1 * w) + 0.5, 0.2, 1.0)  # dark left of the face
    return (frame.astype(np.float32) * gain[None, :, None]).astype(np.uint8)


def _score(detect: Callable[[np.ndarray[Any, Any]], tuple[SubjectBox, ...]],
           frames: list[np.ndarray[Any, Any]], truth: Box | None) -> dict[str, float]:
    hits = false = 0
    started = time.perf_counter()
    for frame in frames:
        found = detect(frame)
        inside = [truth is not None and truth[0] <= (b.left + b.right) / 2 <= truth[2]
                  and truth[1] <= (b.top + b.bottom) / 2 <= truth[3] for b in found]
        hits += any(inside)
        false += inside.count(False)
    spent = (time.perf_counter() - started) / len(frames) * 1000
    out = {"false_per_frame": round(false / len(frames), 3), "ms_per_frame": round(spent, 1)}
    if truth is not None:
        out["recall"] = round(hits / len(frames), 3)
    return out


def main() -> None:
    import cv2

    cv2.setNumThreads(1)  # as measured per core, whatever the machine's load
    full = _frames("face.mp4", 2.0, 854)
    truth = _truth(full)
    filmed = _frames("face.mp4", 2.0, SIDE)
    sets = {"filmed": filmed, "small": [_small(f) for f in filmed],
            "half_lit": [_half_lit(f, truth) for f in filmed]}
    small_truth = (1 / 3 + truth[0] / 3, 1 / 3 + truth[1] / 3, 1 / 3 + truth[2] / 3,
                   1 / 3 + truth[3] / 3)
    negatives = (_frames("bbb_800x640_768kbps_30fps_avc_2b_firstpts_10_sec.mp4", 4.0, SIDE)
                 + _frames("roadtrip-vp92-10bit.webm", 4.0, SIDE))
    detectors: dict[str, Callable[[np.ndarray[Any, Any]], tuple[SubjectBox, ...]]] = {
        "haar_frontal_only": _frontal,
        "haar_frontal_profile_global": find_faces,
        "haar_frontal_profile_local": lambda f: find_faces(f, contrast="local"),
        "haar_global_then_local": lambda f: find_faces(f) or find_faces(f, contrast="local"),
        "kept_for_framing": lambda f: (find_faces(f, profiles="without_frontal")
                                       or find_faces(f, contrast="local", profiles="never")),
        "hog_people": find_people,
    }
    report: dict[str, Any] = {"frames": {k: len(v) for k, v in sets.items()},
                              "negatives": len(negatives)}
    for name, detect in detectors.items():
        row = {k: _score(detect, v, small_truth if k == "small" else truth)
               for k, v in sets.items()}
        row["no_face_clips"] = _score(detect, negatives, None)
        report[name] = row
    json.dump(report, sys.stdout, indent=1)
    print()


def _frontal(frame: np.ndarray[Any, Any]) -> tuple[SubjectBox, ...]:
    """The frontal cascade alone, as the faces' first pass runs it."""
    import cv2

    from pipeline.vision.subject import _cascades

    height, width = frame.shape[:2]
    gray = cv2.equalizeHist(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))
    side = max(20, min(width, height) // 16)
    boxes, _ = _cascades()[0].detectMultiScale2(gray, scaleFactor=1.1, minNeighbors=5,
                                               minSize=(side, side))
    return tuple(SubjectBox("face", x / width, y / height, (x + w) / width, (y + h) / height, 1)
                 for x, y, w, h in boxes)


if __name__ == "__main__":
    main()
