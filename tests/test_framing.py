"""Smart framing (fit ``smart``): the subject stays in the picture when the shape changes.

Every check reads the delivered pixels: the moving subjects carry a pure-green (the face photo)
or pure-red (an object) marker, whose box in each output frame says whether the subject is
wholly visible and, against where the test drew it in the source, where the crop window was.
"""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps

from pipeline.cli import main
from pipeline.errors import JobInvalid
from pipeline.job import parse_job
from pipeline.plan.targets import ReframeShot
from pipeline.presets import load_presets
from pipeline.vision.camera import crop_offset_expr, plan_shot
from pipeline.vision.cuts import find_cuts
from pipeline.vision.subject import find_faces

FACE_SOURCE = "images/hopper_orientation_6.webp"  # Grace Hopper (Pillow's test image)
SRC = (640, 360)  # 16:9 source
FPS = 24
FACE_PX = 96  # the photo, plus a 4 px green frame on each side
BORDER = 4
SQUARE = 60  # the red object
SHOT_S = 2.0
# TikTok's 9:16 output at this source size: the 202x360 window, upscaled to TikTok's 360 px
# minimum width (the height rounds to even).
WINDOW = 202
OUT = (360, 642)


def run_cli(args: list[str]) -> Any:
    return CliRunner().invoke(main, args, catch_exceptions=False)


def make_face(corpus: Path, folder: Path) -> Path:
    """Grace Hopper's face in a pure-green frame (the marker the checks look for)."""
    with Image.open(corpus / FACE_SOURCE) as img:
        upright = (ImageOps.exif_transpose(img) or img).convert("RGB")
    framed = Image.new("RGB", (FACE_PX + 2 * BORDER, FACE_PX + 2 * BORDER), (0, 255, 0))
    framed.paste(upright.resize((FACE_PX, FACE_PX), Image.Resampling.LANCZOS), (BORDER, BORDER))
    path = folder / "face.png"
    framed.save(path)
    return path


@pytest.fixture(scope="module")
def face(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_face(corpus, tmp_path_factory.mktemp("face"))


def face_x(speed: float, t: float) -> float:
    """Left edge of the framed face in shot 1 (source pixels)."""
    return 40 + speed * t


def square_x(t: float) -> float:
    """Left edge of the red square in shot 2 (t from the start of the clip)."""
    return 560 - 150 * (t - SHOT_S)


def moving_clip(face: Path, speed: float, out: Path) -> Path:
    """Shot 1: the face crosses a grey frame at ``speed`` px/s; cut; shot 2: a red square
    crosses a blue frame the other way at 150 px/s."""
    w, h = SRC
    side = FACE_PX + 2 * BORDER
    graph = (f"[0][1]overlay=x='40+{speed}*t':y={(h - side) // 2}[a];"
             f"[2][3]overlay=x='560-150*t':y={(h - SQUARE) // 2}[b];"
             "[a][b]concat=n=2:v=1:a=0[v]")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y",
         "-f", "lavfi", "-i", f"color=c=0x808080:s={w}x{h}:r={FPS}:d={SHOT_S}",
         "-i", str(face),
         "-f", "lavfi", "-i", f"color=c=0x2050b0:s={w}x{h}:r={FPS}:d={SHOT_S}",
         "-f", "lavfi", "-i", f"color=c=0xff0000:s={SQUARE}x{SQUARE}:r={FPS}:d={SHOT_S}",
         "-filter_complex", graph, "-map", "[v]", "-c:v", "libx264", "-preset", "ultrafast",
         "-pix_fmt", "yuv420p", "-r", str(FPS), str(out)],
        check=True, capture_output=True)
    return out


def conform(tmp: Path, media: str, accounts: list[dict[str, Any]],
            fit: str | None = "smart") -> dict[str, Any]:
    job: dict[str, Any] = {"workspace_id": "ws", "id": "framing-job",
                           "content": [{"media": [media]}], "accounts": accounts}
    if fit is not None:
        job["conform"] = {"fit": fit}
    (tmp / "job.json").write_text(json.dumps(job))
    result = run_cli(["run", str(tmp / "job.json"), "--library", f"file://{tmp}/{{id}}",
                      "--dest", str(tmp / "out"), "--no-progress"])
    assert result.exit_code == 0, result.stderr
    manifest: dict[str, Any] = json.loads(result.stdout)
    return manifest


def output_path(tmp: Path, manifest: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    media = manifest["accounts"][0]["media"][0]
    return tmp / "out" / media["uri"].split("/out/", 1)[1], media


def decode(path: Path, size: tuple[int, int]) -> np.ndarray[Any, Any]:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "pipe:1"], check=True, capture_output=True).stdout
    w, h = size
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)


def marker_box(frame: np.ndarray[Any, Any], colour: str) -> tuple[int, int] | None:
    """Left and right column of the marker colour in a frame, or None."""
    r, g, b = (frame[..., i].astype(int) for i in range(3))
    mask = ((g > 180) & (r < 90) & (b < 90)) if colour == "green" else (
        (r > 180) & (g < 90) & (b < 90))
    cols = np.flatnonzero(mask.sum(axis=0) >= 3)
    return (int(cols[0]), int(cols[-1])) if cols.size else None


def visible_and_offsets(frames: np.ndarray[Any, Any], speed: float
                        ) -> tuple[list[bool], list[float | None]]:
    """Per output frame: is the subject wholly in it, and the crop window's left edge
    (source px) read back from where the subject landed."""
    scale = OUT[0] / WINDOW  # output px per source px (the 202 px window fills 360 px)
    visible, offsets = [], []
    for i, frame in enumerate(frames):
        t = i / FPS
        colour, width_src, src_left = (("green", FACE_PX + 2 * BORDER, face_x(speed, t))
                                       if t < SHOT_S else ("red", SQUARE, square_x(t)))
        box = marker_box(frame, colour)
        whole = (box is not None and box[0] > 0 and box[1] < OUT[0] - 1
                 and box[1] - box[0] + 1 >= 0.95 * width_src * scale)
        visible.append(whole)
        offsets.append(src_left - box[0] / scale if whole and box is not None else None)
    return visible, offsets


@pytest.mark.ffmpeg
@pytest.mark.parametrize("speed", [0.0, 60.0, 150.0, 220.0])
def test_moving_face_and_object_stay_wholly_visible_without_jitter(
        face: Path, tmp_path: Path, speed: float) -> None:
    moving_clip(face, speed, tmp_path / "clip.mp4")
    manifest = conform(tmp_path, "clip.mp4", [{"id": "tt", "platform": "tiktok"}])
    path, media = output_path(tmp_path, manifest)
    assert "reframed" in media["actions"]
    frames = decode(path, OUT)
    assert len(frames) >= 4 * FPS - 2
    visible, offsets = visible_and_offsets(frames, speed)
    assert sum(visible) >= 0.95 * len(frames), f"visible in {sum(visible)}/{len(frames)}"
    # Jitter: within each shot the window's frame-to-frame acceleration stays small (the
    # crop's x is rounded to even pixels, so 2-4 px of second difference is rounding).
    cut = int(SHOT_S * FPS)
    for lo, hi in ((0, cut), (cut + 3, len(frames))):
        xs = [o for o in offsets[lo:hi] if o is not None]
        accel = [abs(xs[i + 1] - 2 * xs[i] + xs[i - 1]) for i in range(1, len(xs) - 1)]
        assert max(accel) <= 6.0, accel
        steps = [abs(b - a) for a, b in itertools.pairwise(xs)]
        assert max(steps) <= 1.5 * WINDOW / FPS + 3  # never faster than the speed cap
    shots = media["reframe"]
    assert len(shots) == 2 and abs(shots[0]["end_s"] - SHOT_S) <= 0.2
    assert shots[0]["camera"] == ("still" if speed == 0 else "pan")


@pytest.mark.ffmpeg
def test_centre_blur_loses_the_moving_face_that_smart_keeps(face: Path, tmp_path: Path) -> None:
    """The same clip through TikTok's normal fit (blur): the subject is never cropped, but a
    centre crop (fit crop) loses it for most of the clip: the measurement can fail."""
    moving_clip(face, 220.0, tmp_path / "clip.mp4")
    manifest = conform(tmp_path, "clip.mp4", [{"id": "tt", "platform": "tiktok"}], fit="crop")
    path, media = output_path(tmp_path, manifest)
    assert "cropped" in media["actions"] and "reframe" not in media
    visible, _ = visible_and_offsets(decode(path, OUT), 220.0)
    assert sum(visible) < 0.6 * len(visible)


@pytest.mark.ffmpeg
def test_cover_of_a_reframed_video_follows_the_path(face: Path, tmp_path: Path) -> None:
    """The cover is a frame of the delivered (reframed) video: at 0.3 s the face is far left
    of the centre (a centre crop would cut it), and wholly in the cover."""
    moving_clip(face, 150.0, tmp_path / "clip.mp4")
    job = {"workspace_id": "ws", "id": "framing-cover", "conform": {"fit": "smart"},
           "content": [{"media": ["clip.mp4"], "cover_image": {"video_cover_timestamp_ms": 300}}],
           "accounts": [{"id": "tt", "platform": "tiktok"}]}
    (tmp_path / "job.json").write_text(json.dumps(job))
    result = run_cli(["run", str(tmp_path / "job.json"), "--library",
                      f"file://{tmp_path}/{{id}}", "--dest", str(tmp_path / "out"),
                      "--no-progress"])
    assert result.exit_code == 0, result.stderr
    cover = json.loads(result.stdout)["accounts"][0]["cover"]
    with Image.open(tmp_path / "out" / cover["uri"].split("/out/", 1)[1]) as img:
        frame = np.asarray(img.convert("RGB").resize(OUT))
    box = marker_box(frame, "green")
    assert box is not None and box[0] > 0 and box[1] < OUT[0] - 1
    assert box[1] - box[0] + 1 >= 0.9 * (FACE_PX + 2 * BORDER) * OUT[0] / WINDOW


@pytest.mark.ffmpeg
def test_a_clip_without_subject_conforms_with_the_normal_fit_and_a_warning(
        tmp_path: Path) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"color=c=0x606060:s={SRC[0]}x{SRC[1]}:r={FPS}:d=3", "-c:v", "libx264",
                    "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(tmp_path / "flat.mp4")],
                   check=True, capture_output=True)
    manifest = conform(tmp_path, "flat.mp4", [{"id": "tt", "platform": "tiktok"}])
    path, media = output_path(tmp_path, manifest)
    assert manifest["accounts"][0]["status"] == "ok"
    assert "blurred" in media["actions"] and "reframed" not in media["actions"]
    assert any(w.startswith("no_subject") for w in media["warnings"])
    # The whole 16:9 picture is in the 9:16 frame (blurred fill), not a crop of it.
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=width,height",
                            "-of", "json", str(path)], check=True, capture_output=True).stdout
    stream = json.loads(probe)["streams"][0]
    assert stream["width"] == SRC[0] and abs(stream["width"] / stream["height"] - 9 / 16) < 0.01


@pytest.mark.ffmpeg
def test_image_smart_crop_keeps_an_off_centre_face(face: Path, tmp_path: Path) -> None:
    """A 3:1 photo with the face at the left edge into Instagram's feed (1.91:1 crop)."""
    photo = Image.new("RGB", (1200, 400), (120, 130, 140))
    with Image.open(face) as img:
        photo.paste(img.resize((200, 200)), (30, 100))
    photo.save(tmp_path / "wide.jpg", quality=92)
    account = [{"id": "ig", "platform": "instagram"}]
    for fit, keeps in (("smart", True), (None, False)):  # None: the preset's centre crop
        manifest = conform(tmp_path, "wide.jpg", account, fit=fit)
        path, media = output_path(tmp_path, manifest)
        assert ("reframed" in media["actions"]) is keeps
        with Image.open(path) as img:
            out = np.asarray(img.convert("RGB"))
        assert abs(out.shape[1] / out.shape[0] - 1.91) < 0.02
        box = marker_box(out, "green")
        whole = box is not None and box[0] > 0 and box[1] - box[0] >= 0.95 * 200 * (
            out.shape[0] / 400)
        assert whole is keeps
        if keeps:
            assert find_faces(out)


def test_job_conform_fit_is_parsed_and_an_unknown_value_is_invalid() -> None:
    presets = load_presets()
    base = {"workspace_id": "ws", "content": [{"media": ["a.mp4"]}],
            "accounts": [{"id": "tt", "platform": "tiktok"}]}
    for fit in ("crop", "pad", "blur", "smart"):
        assert parse_job({**base, "conform": {"fit": fit}}, presets).fit == fit
    assert parse_job(base, presets).fit is None
    with pytest.raises(JobInvalid) as err:
        parse_job({**base, "conform": {"fit": "zoom"}}, presets)
    assert err.value.code == "invalid_job"
    assert any(p[0] == "conform.fit" for p in err.value.problems)


def test_cuts_are_found_on_their_frame_and_a_flash_is_not_one() -> None:
    """Tiny frames: a hard cut (grey to blue) at 30, a jump cut at 60 (same grey room, the
    subject jumps from left to right: the histogram is unchanged), a one-frame flash at 80."""
    rng = np.random.default_rng(1)
    frames = np.full((100, 28, 48, 3), 128, np.uint8)
    frames[30:] = (40, 60, 160)
    frames[:, 8:20, 6:14] = 230  # the subject, left
    frames[60:, 8:20, 6:14] = frames[60:, 8:20, 20:28]
    frames[60:, 8:20, 34:42] = 230  # ... right
    frames[80] = 255
    noisy = np.clip(frames.astype(int) + rng.integers(-3, 4, frames.shape), 0, 255)
    assert find_cuts(noisy.astype(np.uint8), rate=25) == [30, 60]


def test_a_subject_that_barely_moves_gets_a_still_camera_and_a_mover_a_smooth_pan() -> None:
    times = [i / 4 for i in range(12)]
    still = plan_shot(times, [(280.0 + (i % 2) * 30, 320.0 + (i % 2) * 30) for i in range(12)],
                      start_s=0, end_s=3, span_px=640, window_px=202, axis="x")
    assert still.camera == "still" and len(still.keys) == 1
    assert abs(still.keys[0][1] - (315 - 101)) <= 1  # the middle of the subject's range
    moving = plan_shot(times, [(80.0 + 100 * t, 120.0 + 100 * t) for t in times], start_s=0,
                       end_s=3, span_px=640, window_px=202, axis="x")
    assert moving.camera == "pan"
    assert len(moving.keys) <= 4  # a steady move is one or two segments, not one per sample
    # The window stays inside the frame and its centre follows the subject within a sample.
    for _t, x in moving.keys:
        assert 0 <= x <= 640 - 202
    missing = plan_shot(times, [None] * 12, start_s=0, end_s=3, span_px=640, window_px=202,
                        axis="x")
    assert missing.keys == ((0, 219),)


def test_crop_expression_has_one_segment_per_keyframe() -> None:
    shots = (ReframeShot(0.0, 2.0, "pan", "x", ((0.0, 10), (2.0, 110))),
             ReframeShot(2.0, 4.0, "still", "x", ((2.0, 300),)))
    assert crop_offset_expr(shots) == "if(lt(t,1.9995),10+50.0000*(t-0.0000),300)"
    assert shots[0].to_dict() == {"start_s": 0.0, "end_s": 2.0, "camera": "pan",
                                  "keys": [{"t_s": 0.0, "x": 10}, {"t_s": 2.0, "x": 110}]}


def test_plan_override_and_argv_carry_the_path_and_change_the_key() -> None:
    """Pure: the job's fit reaches the plan, the path becomes a per-frame crop expression in
    the one encode's graph, and the output key changes with the fit and with the path."""
    from dataclasses import replace

    from pipeline.plan import plan_video, target_key
    from pipeline.video import build_args
    from tests.factories import video_info

    spec = load_presets().get("tiktok").variants["video"].video  # type: ignore[union-attr]
    assert spec is not None and spec.fit == "blur"
    info = video_info(1920, 1080, duration_s=4.0)
    blur, blur_actions, _ = plan_video(info, spec, max_bytes=10**9, trim_s=None,
                                       from_image=False, x264_preset="medium")
    smart, actions, _ = plan_video(info, spec, max_bytes=10**9, trim_s=None, from_image=False,
                                   x264_preset="medium", fit="smart")
    assert "blurred" in blur_actions and "reframed" in actions
    assert smart.geometry.fit == "smart" and smart.geometry.crop_width == 608
    path = (ReframeShot(0.0, 2.0, "pan", "x", ((0.0, 100), (2.0, 500))),
            ReframeShot(2.0, 4.0, "still", "x", ((2.0, 1200),)))
    framed = replace(smart, reframe=path)
    keys = {target_key("s", blur), target_key("s", smart), target_key("s", framed),
            target_key("s", replace(framed, reframe=path[:1]))}
    assert len(keys) == 4
    argv = build_args(Path("in.mp4"), "mp4", framed, Path("out.mp4"))
    graph = argv[argv.index("-filter_complex") + 1]
    assert "crop=608:1080:x=if(lt(t\\,1.9995)\\,100+200.0000*(t-0.0000)\\,1200):y=0" in graph
    assert argv.count("-i") == 1  # one pass: no analysis input in the encode


@pytest.mark.ffmpeg
def test_conform_plan_shows_which_outputs_are_reframed(face: Path, tmp_path: Path) -> None:
    moving_clip(face, 150.0, tmp_path / "clip.mp4")
    job = {"workspace_id": "ws", "id": "framing-plan", "conform": {"fit": "smart"},
           "content": [{"media": ["clip.mp4"]}],
           "accounts": [{"id": "tt", "platform": "tiktok"}, {"id": "x", "platform": "x"}]}
    (tmp_path / "job.json").write_text(json.dumps(job))
    result = run_cli(["plan", str(tmp_path / "job.json"), "--json", "--library",
                      f"file://{tmp_path}/{{id}}"])
    assert result.exit_code == 0, result.stderr
    outputs = {o["accounts"][0]: o for o in json.loads(result.stdout)["outputs"]}
    assert "reframed" in outputs["tt"]["actions"]
    assert [s["camera"] for s in outputs["tt"]["reframe"]] == ["pan", "pan"]
    assert "reframed" not in outputs["x"]["actions"]  # 16:9 stays 16:9: no shape change
    table = run_cli(["plan", str(tmp_path / "job.json"), "--library",
                     f"file://{tmp_path}/{{id}}"])
    assert "reframed" in table.stdout


def test_a_preset_may_ask_for_smart_but_a_cover_may_not() -> None:
    """``fit = "smart"`` is a preset's choice for video and image variants; a custom cover
    thumbnail is the user's own framing, so covers keep crop, pad or blur."""
    import tomllib

    from pipeline.errors import PresetError
    from pipeline.presets import parse_preset

    text = (Path(__file__).resolve().parent.parent / "presets" / "tiktok.toml").read_text()
    smart = text.replace('fit = "blur"                     # blurred fill, the usual',
                         'fit = "smart"                    # smart framing, the usual', 1)
    assert smart != text
    preset = parse_preset(tomllib.loads(smart), origin="tiktok.toml", stem="tiktok")
    assert preset.variants["video"].video.fit == "smart"  # type: ignore[union-attr]
    data = tomllib.loads(smart)
    data["variants"]["video"]["cover"]["fit"] = "smart"
    with pytest.raises(PresetError):
        parse_preset(data, origin="tiktok.toml", stem="tiktok")


@pytest.mark.ffmpeg
def test_a_flat_image_falls_back_to_the_variant_crop_with_a_warning(tmp_path: Path) -> None:
    Image.new("RGB", (1200, 400), (90, 100, 110)).save(tmp_path / "flat.jpg", quality=92)
    manifest = conform(tmp_path, "flat.jpg", [{"id": "ig", "platform": "instagram"}])
    path, media = output_path(tmp_path, manifest)
    assert "cropped" in media["actions"] and "reframed" not in media["actions"]
    assert any(w.startswith("no_subject") for w in media["warnings"])
    with Image.open(path) as img:
        assert abs(img.width / img.height - 1.91) < 0.02
