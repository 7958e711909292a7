"""Cut detection measured against PySceneDetect on the same edits of real footage.

``python -m bench.shots`` makes edits from the corpus at run time (jump cuts of the talking
head ``face.mp4``, hard cuts to a cartoon and a road clip, 0.4 s dissolves, pans, a strobe),
then finds their cuts with ``pipeline.vision.cuts`` (what smart framing uses) and with
PySceneDetect's ``ContentDetector`` and ``AdaptiveDetector`` at their defaults, when
``scenedetect`` (or ``scenedetect-headless``) is installed. Per detector: cuts found on their
exact frame, within one frame, missed, and false; and the seconds spent (ours: the one tiny
decode included).

Prints one JSON object (the figures in BENCHMARKS.md, "Shots").
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pipeline import probe
from pipeline.vision import cuts, sampling
from tests.support.edits import Edit, Piece, make_edit

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "videos"
FACE = CORPUS / "face.mp4"
BBB = CORPUS / "bbb_800x640_768kbps_30fps_avc_2b_firstpts_10_sec.mp4"  # 4 s; cuts 0.2, 2.5 s
ROAD = CORPUS / "roadtrip-vp92-10bit.webm"  # a cut at 1.75 s


def edits(folder: Path) -> dict[str, Edit]:
    """The edits, each with the frames its shots start on."""
    plans = {
        "jump_cuts": [Piece(FACE, 0.0, 2.0, zoom=0.7, crop_x=0.0),
                      Piece(FACE, 2.0, 2.0, zoom=0.7, crop_x=1.0),
                      Piece(FACE, 4.0, 1.5, zoom=0.7, crop_x=0.0),
                      Piece(FACE, 5.5, 2.0, zoom=0.85, crop_x=0.5),
                      Piece(FACE, 7.5, 1.0, zoom=0.7, crop_x=0.2)],
        "small_jumps": [Piece(FACE, 0.0, 2.0, zoom=0.9, crop_x=0.3),
                        Piece(FACE, 2.0, 2.0, zoom=0.9, crop_x=0.7),
                        Piece(FACE, 4.0, 2.0, zoom=0.9, crop_x=0.4)],
        "hard_cuts": [Piece(FACE, 0.0, 2.0), Piece(BBB, 0.4, 2.0), Piece(ROAD, 0.0, 1.6),
                      Piece(FACE, 5.0, 2.0)],
        "dissolves": [Piece(FACE, 0.0, 2.5), Piece(BBB, 0.4, 2.0, join="dissolve"),
                      Piece(FACE, 6.0, 2.5, zoom=0.7, crop_x=0.0, join="dissolve")],
        "pans": [Piece(FACE, 0.0, 4.0, zoom=0.5, crop_x=0.0, pan_to_x=1.0),
                 Piece(ROAD, 0.0, 1.6, zoom=0.6, crop_x=1.0, pan_to_x=0.0)],
    }
    return {name: make_edit(p, folder / f"{name}.mp4") for name, p in plans.items()}


def ours(path: Path) -> list[int]:
    tiny, rate = sampling.every_frame(path, probe.probe(path), max_side=cuts.CUT_SIDE_PX,
                                    max_frames=cuts.MAX_FRAMES, timeout_s=300)
    return cuts.find_cuts(tiny, rate=rate)


def scenedetect(kind: str) -> Any:
    import scenedetect as sd

    def run(path: Path) -> list[int]:
        detector = sd.ContentDetector() if kind == "content" else sd.AdaptiveDetector()
        scenes = sd.detect(str(path), detector)
        return [start.frame_num for start, _ in scenes[1:]]
    return run


def score(found: list[int], truth: tuple[int, ...]) -> dict[str, int]:
    exact = sum(t in found for t in truth)
    near = sum(any(abs(f - t) <= 1 for f in found) for t in truth)
    false = sum(all(abs(f - t) > 1 for t in truth) for f in found)
    return {"cuts": len(truth), "exact": exact, "within_1": near, "missed": len(truth) - near,
            "false": false}


def main() -> None:
    detectors = {"conform": ours}
    try:
        for kind in ("content", "adaptive"):
            detectors[f"pyscenedetect_{kind}"] = scenedetect(kind)
    except ImportError:
        print("scenedetect is not installed: only conform's detector is measured",
              file=sys.stderr)
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        made = edits(Path(tmp))
        for name, detect in detectors.items():
            rows: dict[str, Any] = {}
            spent = 0.0
            for edit_name, edit in made.items():
                started = time.perf_counter()
                found = detect(edit.path)
                spent += time.perf_counter() - started
                rows[edit_name] = {**score(found, edit.cuts), "found": found,
                                   "truth": list(edit.cuts)}
            rows["seconds"] = round(spent, 2)
            rows["frames"] = sum(e.frames for e in made.values())
            report[name] = rows
    json.dump(report, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
