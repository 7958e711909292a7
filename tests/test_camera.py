"""The camera an editor would choose, checked from the delivered pixels on edits made at test
time: a still subject gets a still window, a jump cut gets a new window on its first frame
(no pan across it), and a crowd gets one framing held for the shot.

The subjects are Grace Hopper's face in a pure-green frame (see ``test_framing``): the green
box's columns in each output frame say whether the face is whole, and, against where the test
drew it in the source, where the crop window was.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.vision.camera import follow, plan_shot
from pipeline.vision.subject import SubjectBox
from tests.test_framing import (
    BORDER,
    FACE_PX,
    OUT,
    SRC,
    WINDOW,
    conform,
    decode,
    make_face,
    marker_box,
    output_path,
)

FPS = 24
SIDE = FACE_PX + 2 * BORDER
SCALE = OUT[0] / WINDOW  # output px per source px


@pytest.fixture(scope="module")
def face(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_face(corpus, tmp_path_factory.mktemp("face"))


def render(out: Path, seconds: float, inputs: list[str], graph: str) -> Path:
    """A clip from a textured grey room (so nothing but the subjects moves) and overlays."""
    w, h = SRC
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
         f"color=c=0x707070:s={w}x{h}:r={FPS}:d={seconds}",
         *inputs, "-filter_complex", f"[0]noise=alls=6:allf=p,boxblur=1[room];{graph}",
         "-map", "[v]", "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast",
         "-crf", "16", "-pix_fmt", "yuv420p", "-r", str(FPS), str(out)],
        check=True, capture_output=True)
    return out


def window_lefts(frames: np.ndarray[Any, Any], src_left: list[float]
                 ) -> tuple[list[bool], list[float | None]]:
    """Per output frame: is the face whole, and the window's left edge in source pixels."""
    whole, lefts = [], []
    for frame, left in zip(frames, src_left, strict=False):
        box = marker_box(frame, "green")
        ok = (box is not None and box[0] > 0 and box[1] < OUT[0] - 1
              and box[1] - box[0] + 1 >= 0.95 * SIDE * SCALE)
        whole.append(ok)
        lefts.append(left - box[0] / SCALE if ok and box is not None else None)
    return whole, lefts


def spread(values: list[float | None]) -> float:
    known = [v for v in values if v is not None]
    return max(known) - min(known)


@pytest.mark.ffmpeg
def test_a_still_subject_gets_a_window_that_does_not_move(face: Path, tmp_path: Path) -> None:
    """A face that sways 40 px left and right (a speaker breathing, a bird on a branch) for
    5 s: the window stays put (the old camera panned after any 15 % drift)."""
    seconds = 5.0
    clip = render(tmp_path / "still.mp4", seconds, ["-loop", "1", "-i", str(face)],
                  f"[room][1]overlay=x='300+20*sin(2*PI*t/2.5)':y={(SRC[1] - SIDE) // 2}"
                  ",format=yuv420p[v]")
    manifest = conform(tmp_path, clip.name, [{"id": "tt", "platform": "tiktok"}])
    path, media = output_path(tmp_path, manifest)
    frames = decode(path, OUT)
    truth = [300 + 20 * np.sin(2 * np.pi * (i / FPS) / 2.5) for i in range(len(frames))]
    whole, lefts = window_lefts(frames, truth)
    assert sum(whole) >= 0.98 * len(frames)
    assert spread(lefts) <= 3.0  # rounding of the overlay's and the marker's columns
    assert [s["camera"] for s in media["reframe"]] == ["still"]


@pytest.mark.ffmpeg
def test_a_jump_cut_gets_a_new_window_on_its_first_frame(face: Path, tmp_path: Path) -> None:
    """Same room, the speaker jumps from the left to the right at 2.5 s: no pan across the
    cut, the face whole in every frame around it, and each shot's window still."""
    seconds, cut_s = 5.0, 2.5
    clip = render(tmp_path / "jump.mp4", seconds, ["-loop", "1", "-i", str(face)],
                  f"[room][1]overlay=x='if(lt(t,{cut_s}),60,470)':y={(SRC[1] - SIDE) // 2}"
                  ",format=yuv420p[v]")
    manifest = conform(tmp_path, clip.name, [{"id": "tt", "platform": "tiktok"}])
    path, media = output_path(tmp_path, manifest)
    frames = decode(path, OUT)
    cut = round(cut_s * FPS)
    truth = [60.0 if i < cut else 470.0 for i in range(len(frames))]
    whole, lefts = window_lefts(frames, truth)
    assert sum(whole) >= 0.98 * len(frames)
    assert all(whole[cut - 6:cut + 6]), whole[cut - 6:cut + 6]
    assert spread(lefts[:cut]) <= 2.0 and spread(lefts[cut:]) <= 2.0
    # The manifest lists each shot's window where the pixels show it, from the cut frame on.
    shots = media["reframe"]
    assert len(shots) == 2 and abs(shots[1]["start_s"] - cut / FPS) < 0.5 / FPS
    for shot, seen in zip(shots, (lefts[:cut], lefts[cut:]), strict=True):
        assert shot["window_width"] == WINDOW and shot["window_height"] == SRC[1]
        assert [k["t_s"] for k in shot["keys"]] == [shot["start_s"]]
        assert abs(shot["keys"][0]["x"] - float(np.median([v for v in seen if v is not None]))) <= 2
        assert shot["keys"][0]["y"] == 0


@pytest.mark.ffmpeg
def test_a_crowd_gets_one_framing_held_for_the_shot(face: Path, tmp_path: Path) -> None:
    """A big face left of centre, and two smaller passers-by crossing the frame (one of them
    walking right past it): the window holds the big face and never wanders after them."""
    seconds = 6.0
    small = 60
    clip = render(tmp_path / "crowd.mp4", seconds,
                  ["-loop", "1", "-i", str(face), "-loop", "1", "-i", str(face)],
                  f"[1]split[big][s];[s]crop={FACE_PX}:{FACE_PX}:{BORDER}:{BORDER},"
                  f"scale={small}:{small},split[p][q];"
                  f"[room][big]overlay=x=180:y={(SRC[1] - SIDE) // 2}[a];"
                  "[a][p]overlay=x='20+100*t':y=30[b];"
                  "[b][q]overlay=x='560-60*t':y=260,format=yuv420p[v]")
    manifest = conform(tmp_path, clip.name, [{"id": "tt", "platform": "tiktok"}])
    path, media = output_path(tmp_path, manifest)
    frames = decode(path, OUT)
    # The passers-by have no green frame: the marker is the big face alone.
    whole, lefts = window_lefts(frames, [180.0] * len(frames))
    assert sum(whole) >= 0.98 * len(frames)
    assert spread(lefts) <= 3.0
    assert [s["camera"] for s in media["reframe"]] == ["still"]


def test_the_manifest_schema_types_each_shots_keyframes() -> None:
    import jsonschema

    from pipeline.manifest import ReframeEntry
    from pipeline.schema import manifest_schema

    schema = manifest_schema()
    shot_schema = {**schema["$defs"]["ReframeEntry"], "$defs": schema["$defs"]}
    good = {"start_s": 0.0, "end_s": 2.5, "camera": "pan", "window_width": 202,
            "window_height": 360, "keys": [{"t_s": 0.0, "x": 9, "y": 0},
                                           {"t_s": 2.5, "x": 184, "y": 0}]}
    jsonschema.validate(good, shot_schema)
    assert ReframeEntry.from_dict(good).to_dict() == good
    for bad in ({**good, "keys": [{"t_s": 0.0, "x": "9", "y": 0}]},
                {**good, "camera": "zoom"}, {k: v for k, v in good.items() if k != "keys"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, shot_schema)
        with pytest.raises(ValueError, match=r"."):
            ReframeEntry.from_dict(bad)


def box(left: float, width: float = 0.1, top: float = 0.4) -> SubjectBox:
    return SubjectBox("face", left, top, left + width, top + width, 1.0)


def test_follow_holds_one_subject_and_frames_a_group_that_fits() -> None:
    # Two faces far apart: the bigger, more central one is held even when the other
    # is found alone for a sample (it is not "the subject" then: a gap).
    far = [[box(0.3, 0.12), box(0.8)], [box(0.31, 0.12), box(0.79)], [box(0.78)],
           [box(0.32, 0.12), box(0.77)]]
    held = follow(far, "x", 0.3)
    assert held[0] == pytest.approx((0.3, 0.42)) and held[2] is None
    assert held[3] == pytest.approx((0.32, 0.44))
    # Two faces that fit the window together: the group is framed.
    near = [[box(0.40), box(0.52)], [box(0.41), box(0.53)]]
    assert follow(near, "x", 0.35)[0] == pytest.approx((0.40, 0.62))


def test_a_subject_whose_range_fits_the_dead_zone_never_moves_the_window() -> None:
    times = [i / 4 for i in range(20)]
    sway = [(300 + 20 * np.sin(t), 400 + 20 * np.sin(t)) for t in times]
    shot = plan_shot(times, sway, start_s=0, end_s=5, span_px=1280, window_px=200, axis="x")
    assert shot.camera == "still" and len(shot.keys) == 1
    walk = [(100 + 150 * t, 200 + 150 * t) for t in times]
    assert plan_shot(times, walk, start_s=0, end_s=5, span_px=1280, window_px=200,
                     axis="x").camera == "pan"
