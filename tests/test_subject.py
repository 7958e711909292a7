"""subject_under_ui: a real face under a surface's UI zone warns (and never fails the account)."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageDraw, ImageOps

from pipeline.cli import main
from pipeline.geometry import fit_geometry
from pipeline.presets import UiZone
from pipeline.vision.subject import (
    SubjectBox,
    faces_within,
    find_subjects,
    picture_region,
    subjects_of,
    zones_under,
)
from tests.support.jobkit import subprocess_env

# A real face: Grace Hopper's portrait from Pillow's test images (SOURCES.md), stored with
# EXIF orientation 6, so it is made upright first.
FACE_SOURCE = "images/hopper_orientation_6.webp"
FACE_PX = 160
FRAME = (360, 640)  # 9:16
CAPTION_Y = 470  # the face (rows ~26-97 of the 160 px photo) lands in 0.77-0.88 of the height
MIDDLE_Y = 240  # the face at 0.41-0.53: under no zone


def run_cli(args: list[str]) -> Any:
    return CliRunner().invoke(main, args, catch_exceptions=False)


@pytest.fixture(scope="module")
def face(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    with Image.open(corpus / FACE_SOURCE) as img:
        upright = (ImageOps.exif_transpose(img) or img).convert("RGB")
    path = tmp_path_factory.mktemp("face") / "face.png"
    upright.resize((FACE_PX, FACE_PX), Image.Resampling.LANCZOS).save(path)
    return path


def frame_with_face(face: Path, y: int) -> Image.Image:
    frame = Image.new("RGB", FRAME, (128, 128, 128))
    with Image.open(face) as img:
        frame.paste(img, ((FRAME[0] - FACE_PX) // 2, y))
    return frame


def face_clip(face: Path, y: int, out: Path) -> Path:
    """A grey 9:16 clip, 3 s (TikTok's and Reels' minimum), with the face overlaid at ``y``."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
         f"color=c=0x808080:s={FRAME[0]}x{FRAME[1]}:r=24:d=3", "-i", str(face),
         "-filter_complex", f"[0][1]overlay=x={(FRAME[0] - FACE_PX) // 2}:y={y}",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(out)],
        check=True, capture_output=True)
    return out


def run_job(tmp: Path, media: str, accounts: list[dict[str, Any]]) -> dict[str, Any]:
    (tmp / "job.json").write_text(json.dumps(
        {"workspace_id": "ws", "id": "subject-job", "content": [{"media": [media]}],
         "accounts": accounts}))
    result = run_cli(["run", str(tmp / "job.json"), "--library", f"file://{tmp}/{{id}}",
                      "--dest", str(tmp / "out"), "--no-progress"])
    assert result.exit_code == 0, result.stderr
    manifest: dict[str, Any] = json.loads(result.stdout)
    return manifest


def subject_warnings(manifest: dict[str, Any], account_id: str) -> list[str]:
    (account,) = [a for a in manifest["accounts"] if a["account_id"] == account_id]
    assert account["status"] == "ok"  # a warning never fails the account
    return [w for m in account["media"] for w in m["warnings"]
            if w.startswith("subject_under_ui")]


VERTICAL_ACCOUNTS = [{"id": "tt", "platform": "tiktok"},
                     {"id": "ig", "platform": "instagram", "settings": {"post_type": "REELS"}}]


@pytest.mark.ffmpeg
def test_face_in_the_caption_band_warns_for_tiktok_and_reels(face: Path, tmp_path: Path) -> None:
    face_clip(face, CAPTION_Y, tmp_path / "clip.mp4")
    manifest = run_job(tmp_path, "clip.mp4", [*VERTICAL_ACCOUNTS, {"id": "x", "platform": "x"}])
    assert manifest["status"] == "succeeded"
    # X takes the very file TikTok gets, but has no UI over it: not its warning
    uris = {a["account_id"]: a["media"][0]["uri"] for a in manifest["accounts"]}
    assert uris["x"] == uris["tt"]
    assert subject_warnings(manifest, "x") == []
    assert "subject_under_ui: bottom: caption, name, music (tiktok-video)" in subject_warnings(
        manifest, "tt")
    assert "subject_under_ui: bottom: caption, name, audio (instagram-reels)" in (
        subject_warnings(manifest, "ig"))
    for account in ("tt", "ig"):
        assert not any(" top: " in w for w in subject_warnings(manifest, account))


@pytest.mark.ffmpeg
def test_the_same_face_in_the_middle_does_not_warn(face: Path, tmp_path: Path) -> None:
    face_clip(face, MIDDLE_Y, tmp_path / "clip.mp4")
    manifest = run_job(tmp_path, "clip.mp4", VERTICAL_ACCOUNTS)
    assert manifest["status"] == "succeeded"
    assert subject_warnings(manifest, "tt") == []
    assert subject_warnings(manifest, "ig") == []


def test_face_under_the_story_top_bar_warns_on_an_image(face: Path, tmp_path: Path) -> None:
    frame_with_face(face, 0).resize((720, 1280)).save(tmp_path / "story.jpg", quality=92)
    manifest = run_job(tmp_path, "story.jpg", [
        {"id": "st", "platform": "instagram", "settings": {"post_type": "STORIES"}},
        {"id": "tg", "platform": "telegram"}])
    assert subject_warnings(manifest, "st") == [
        "subject_under_ui: top: progress bar, name (instagram-stories-image)"]
    assert subject_warnings(manifest, "tg") == []  # no UI zones on that surface


def test_find_subjects_puts_the_face_box_where_the_face_is(face: Path) -> None:
    (box,) = find_subjects(np.asarray(frame_with_face(face, CAPTION_Y)))
    assert box.kind == "face" and box.confidence > 0
    # the face is drawn at rows CAPTION_Y+26..+97 (0.77-0.89) and columns 0.39-0.59
    assert 0.72 < box.top < 0.82 and 0.84 < box.bottom < 0.93
    assert 0.3 < box.left < 0.5 < box.right < 0.7


def test_without_a_face_text_is_the_subject_and_a_flat_frame_has_none() -> None:
    frame = Image.new("RGB", FRAME, (128, 128, 128))
    assert find_subjects(np.asarray(frame)) == ()
    ImageDraw.Draw(frame).text((40, 560), "CAPTION TEXT HERE", fill=(255, 255, 255),
                               font_size=24)
    (box,) = find_subjects(np.asarray(frame))
    assert box.kind == "salient"
    assert box.top < 560 / 640 < box.bottom  # the line of text, in the bottom band


BOTTOM = UiZone("bottom", 0.22, "caption", "test")


def test_zones_under_needs_a_third_of_the_frames() -> None:
    under = SubjectBox("face", 0.4, 0.8, 0.6, 0.9, 1.0)  # wholly in the bottom 22 %
    clear = SubjectBox("face", 0.4, 0.4, 0.6, 0.5, 1.0)
    grazing = SubjectBox("face", 0.4, 0.7, 0.6, 0.8, 1.0)  # 20 % of it in the band
    assert under.share_inside(BOTTOM) == pytest.approx(1.0)
    assert clear.share_inside(BOTTOM) == 0.0
    assert grazing.share_inside(BOTTOM) == pytest.approx(0.2)
    assert zones_under([(under,), (clear,), (clear,)], [BOTTOM]) == [BOTTOM]  # 1/3 >= 30 %
    assert zones_under([(under,), (clear,), (clear,), (clear,)], [BOTTOM]) == []  # 25 %
    assert zones_under([(grazing,)] * 4, [BOTTOM]) == []
    assert zones_under([], [BOTTOM]) == []


def test_subjects_of_many_frames_are_each_frames_own_in_order(face: Path) -> None:
    text = Image.new("RGB", FRAME, (128, 128, 128))
    ImageDraw.Draw(text).text((40, 560), "CAPTION TEXT HERE", fill=(255, 255, 255),
                              font_size=24)
    flat = Image.new("RGB", FRAME, (128, 128, 128))
    shots = [np.asarray(img) for img in (
        frame_with_face(face, CAPTION_Y), text, frame_with_face(face, MIDDLE_Y), flat,
        frame_with_face(face, 0), ImageOps.mirror(frame_with_face(face, MIDDLE_Y)), text)]
    found = subjects_of(shots)  # faces of several frames at once, each with its own cascades
    assert found == tuple(find_subjects(shot) for shot in shots)
    assert [tuple(b.kind for b in boxes) for boxes in found] == [
        ("face",), ("salient",), ("face",), (), ("face",), ("face",), ("salient",)]
    assert found[0][0].top > 0.7 > found[2][0].top > 0.3 > found[4][0].top


COLD_CHECK = """
import numpy as np
from pipeline.vision.subject import subjects_of
print(len(subjects_of([np.full((480, 270, 3), 128, np.uint8)] * 6)))
"""


def test_the_first_subject_check_of_a_process_works() -> None:
    # OpenCV is first imported by the face threads: two threads entering its loader at once
    # saw a half-made module (no cv2.data) about one time in three without the fix.
    for _ in range(8):
        done = subprocess.run([sys.executable, "-c", COLD_CHECK], capture_output=True,
                              text=True, timeout=120, env=subprocess_env())
        assert done.returncode == 0 and done.stdout.strip() == "6", done.stderr[-500:]


COLD_THREADS = """
import threading
import numpy as np
from pipeline.vision.subject import find_salient, find_subjects

frame = np.zeros((480, 270, 3), np.uint8)
frame[200:260, 100:170] = 255
found, errors = [], []
together = threading.Barrier(2)

def check(fn):
    together.wait()  # both reach OpenCV's first import at the same moment
    try:
        found.append(fn(frame))
    except Exception as err:
        errors.append(repr(err))

threads = [threading.Thread(target=check, args=(fn,)) for fn in (find_subjects, find_salient)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(len(found), errors)
"""


def test_two_jobs_on_threads_can_both_be_the_first_to_use_opencv() -> None:
    # A batch on threads: two jobs' checks (here a face search and a saliency search) may both
    # be the first in the process to import OpenCV; the import is made under one lock.
    for _ in range(6):
        done = subprocess.run([sys.executable, "-c", COLD_THREADS], capture_output=True,
                              text=True, timeout=120, env=subprocess_env())
        assert done.returncode == 0 and done.stdout.strip() == "2 []", done.stderr[-500:]


@pytest.mark.ffmpeg
def test_faces_are_looked_for_in_the_picture_not_in_its_fill(face: Path) -> None:
    """On a 9:16 canvas around a 16:9 picture the fill is a blurred copy: a face found there
    is no subject. The same face inside the picture is found, its box on the whole frame."""
    # a 360x640 canvas with a 360x202 picture in the middle (rows 219-421)
    g = fit_geometry(1920, 1080, aspect=Fraction(9, 16), fit="blur", max_width=360,
                     max_height=640, even=True)
    region = picture_region(g)
    assert region is not None and region[0] == 0.0 and region[2] == 1.0
    assert region[1] == pytest.approx((640 - g.content_height) / 2 / 640)
    in_fill = np.asarray(frame_with_face(face, CAPTION_Y))
    assert find_subjects(in_fill)[0].kind == "face"  # the whole frame would call it one
    assert faces_within(in_fill, region) == ()
    in_picture = np.asarray(frame_with_face(face, 230))
    (whole,) = faces_within(in_picture, None)
    (inside,) = faces_within(in_picture, region)
    assert inside.kind == "face"
    assert inside.top == pytest.approx(whole.top, abs=0.03)  # where the face is on the frame
    assert inside.left == pytest.approx(whole.left, abs=0.03)


def test_a_picture_that_fills_its_canvas_is_searched_whole() -> None:
    crop = fit_geometry(1920, 1080, aspect=Fraction(9, 16), fit="crop", max_width=360,
                        max_height=640, even=True)
    assert picture_region(crop) is None
