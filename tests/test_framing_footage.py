"""Smart framing on real footage: the corpus talking head (``face.mp4``, MIT) cut into an edit
at test time (jump cuts between its own segments, a hard cut to a cartoon and back), checked
from the pixels: the speaker's face whole in the delivered window in >= 98 % of its frames
(around every cut too), and a window that does not move within a shot while she stays put.

The window's position in each delivered frame is found by matching it against the edit's
frame; the face's box in the edit's frame by the frontal cascade at full size (the truth is
only taken where it finds one).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.vision.subject import find_faces
from tests.support.edits import Piece, make_edit, window_lefts
from tests.test_framing import conform, output_path

SIZE = (640, 360)
WINDOW = (202, 360)  # TikTok's 9:16 window of a 640x360 source


def rgb_frames(path: Path, size: tuple[int, int]) -> np.ndarray[Any, Any]:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-vf",
                          f"scale={size[0]}:{size[1]}", "-f", "rawvideo", "-pix_fmt", "rgb24",
                          "pipe:1"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, size[1], size[0], 3)


@pytest.mark.ffmpeg
def test_a_real_talking_head_edit_keeps_the_face_whole_and_the_camera_still(
        corpus: Path, tmp_path: Path) -> None:
    face = corpus / "videos" / "face.mp4"
    bbb = corpus / "videos" / "bbb_800x640_768kbps_30fps_avc_2b_firstpts_10_sec.mp4"
    edit = make_edit([Piece(face, 0.0, 2.0, zoom=0.85, crop_x=0.0),
                      Piece(face, 2.0, 2.0, zoom=0.85, crop_x=1.0),  # jump: she moves left
                      Piece(bbb, 0.4, 1.5),  # hard cut to a cartoon
                      Piece(face, 5.0, 2.0, zoom=1.0),  # and back, wide
                      Piece(face, 8.0, 2.0, zoom=0.85, crop_x=0.3)],  # jump in
                     tmp_path / "edit.mp4", size=SIZE)
    manifest = conform(tmp_path, "edit.mp4", [{"id": "tt", "platform": "tiktok"}])
    path, media = output_path(tmp_path, manifest)
    assert "reframed" in media["actions"]
    source = rgb_frames(edit.path, SIZE)
    delivered = rgb_frames(path, (media["width"], media["height"]))
    assert len(delivered) == len(source) == edit.frames
    lefts = window_lefts(source, delivered, WINDOW)
    face_shots = [s for i, s in enumerate(edit.shots) if i != 2]
    whole = judged = 0
    misses = []
    for first, last in face_shots:
        for i in range(first, last + 1):
            boxes = find_faces(source[i])
            if not boxes:
                continue
            box = max(boxes, key=lambda b: (b.right - b.left))
            judged += 1
            inside = lefts[i] <= box.left * SIZE[0] and box.right * SIZE[0] <= lefts[i] + WINDOW[0]
            whole += inside
            if not inside:
                misses.append(i)
        # She sways a little in every shot: the window stays put (a still camera).
        assert max(lefts[first:last + 1]) - min(lefts[first:last + 1]) <= 3, (first, last)
    around_cuts = [i for c in edit.cuts for i in range(c - 3, c + 3)]
    figures = {"face_frames": judged, "whole": whole, "share": round(whole / judged, 4),
               "missed_near_cuts": sorted(set(misses) & set(around_cuts)),
               "cameras": [s["camera"] for s in media["reframe"]],
               "cuts": list(edit.cuts), "found": [round(s["start_s"] * edit.fps)
                                                  for s in media["reframe"][1:]]}
    print(json.dumps(figures))
    assert judged >= 0.8 * sum(b - a + 1 for a, b in face_shots)
    assert whole >= 0.98 * judged, figures
    assert not figures["missed_near_cuts"]
    assert figures["found"] == list(edit.cuts)
