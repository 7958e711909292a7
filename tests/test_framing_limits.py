"""Smart framing's limits: no size limit that real edits reach, a cost bounded by the clip's
length (not by its cuts or flashes), the job's deadline checked inside the analysis, and the
variant's fit (with a warning) whenever a path cannot be rendered.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline import ffmpeg, probe
from pipeline.deadline import Deadline
from pipeline.errors import DeadlineExceeded
from pipeline.plan.targets import ReframeShot
from pipeline.vision import framing
from pipeline.vision.framing import FramingJob, crop_offset_expr
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
)
from tests.test_framing import output_path as first_output

FPS = 24
SIDE = FACE_PX + 2 * BORDER
LEFT, RIGHT = 40, SRC[0] - 40 - SIDE


@pytest.fixture(scope="module")
def face(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_face(corpus, tmp_path_factory.mktemp("face"))


def fast_cut_clip(face: Path, out: Path, *, seconds: float, shot_s: float) -> Path:
    """A cut every ``shot_s``: the background flips grey/blue and the face jumps sides."""
    w, h = SRC
    graph = (f"[0]drawbox=x=0:y=0:w=iw:h=ih:color=0x2050b0:t=fill:"
             f"enable='gte(mod(t,{2 * shot_s}),{shot_s})'[bg];"
             f"[bg][1]overlay=x='if(lt(mod(t,{2 * shot_s}),{shot_s}),{LEFT},{RIGHT})':"
             f"y={(h - SIDE) // 2}[v]")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y",
         "-f", "lavfi", "-i", f"color=c=0x808080:s={w}x{h}:r={FPS}:d={seconds}",
         "-loop", "1", "-i", str(face), "-filter_complex", graph, "-map", "[v]",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
         "-r", str(FPS), str(out)],
        check=True, capture_output=True)
    return out


def flashing_clip(out: Path, *, seconds: float) -> Path:
    """Every other frame white, the rest a still picture, with one keyframe in the file: each
    frame's colours jump, and a seek anywhere decodes from the start."""
    w, h = SRC
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
         f"testsrc2=s={w}x{h}:r={FPS}:d={seconds}",
         "-vf", "drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='eq(mod(n,2),1)'",
         "-c:v", "libx264", "-preset", "ultrafast", "-x264-params",
         "keyint=infinite:min-keyint=infinite:scenecut=0", "-pix_fmt", "yuv420p", str(out)],
        check=True, capture_output=True)
    return out


@pytest.mark.ffmpeg
def test_a_minute_cut_every_half_second_is_framed_on_every_shot(
        face: Path, tmp_path: Path) -> None:
    """120 shots (~240 keyframes, far past ffmpeg's ~100-deep expression limit): the output
    is made, reframed, and the face is whole in >= 98 % of its frames, cuts included."""
    fast_cut_clip(face, tmp_path / "cuts.mp4", seconds=60, shot_s=0.5)
    manifest = conform(tmp_path, "cuts.mp4", [{"id": "tt", "platform": "tiktok"}])
    assert manifest["accounts"][0]["status"] == "ok"
    path, media = first_output(tmp_path, manifest)
    assert "reframed" in media["actions"]
    assert len(media["reframe"]) >= 110
    frames = decode(path, OUT)
    assert len(frames) >= 60 * FPS - 2
    scale = OUT[0] / WINDOW
    whole = 0
    for frame in frames:
        box = marker_box(frame, "green")
        whole += (box is not None and box[0] > 0 and box[1] < OUT[0] - 1
                  and box[1] - box[0] + 1 >= 0.95 * SIDE * scale)
    assert whole >= 0.98 * len(frames), f"whole in {whole}/{len(frames)}"


def test_the_crop_expression_stays_shallow_for_thousands_of_keyframes() -> None:
    """ffmpeg refuses expressions nested ~100 deep; the tree is log2(pieces) deep."""
    shots = tuple(ReframeShot(k * 0.5, (k + 1) * 0.5, "still", "x", ((k * 0.5, k % 400),))
                  for k in range(3000))
    expr = crop_offset_expr(shots)
    depth = deepest = 0
    for ch in expr:
        depth += (ch == "(") - (ch == ")")
        deepest = max(deepest, depth)
    assert deepest <= 2 * 13 + 2  # if( ... lt( ... ) per level, log2(3000) < 12 levels


@pytest.mark.ffmpeg
def test_ffmpeg_renders_a_path_of_a_thousand_pieces(tmp_path: Path) -> None:
    """A path of 1,000 one-frame shots, through the real graph builder and ffmpeg: every
    frame's window is where its shot says, from the cut frame on (read from the pixels)."""
    from dataclasses import replace

    from PIL import Image

    from pipeline.plan import plan_video
    from pipeline.presets import load_presets
    from pipeline.video import build_args

    w, h, rate, count = SRC[0], SRC[1], 10, 1000
    ramp = np.tile((np.arange(w) * 255 // (w - 1)).astype(np.uint8)[None, :, None], (h, 1, 3))
    ramp[..., 1:] = 0  # red only: a column's red level says which source column it is
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    src = tmp_path / "ramp.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-loop", "1", "-framerate", str(rate),
                    "-i", str(tmp_path / "ramp.png"), "-t", str(count / rate),
                    "-c:v", "libx264", "-qp", "0", "-preset", "ultrafast",
                    "-pix_fmt", "yuv444p", str(src)], check=True, capture_output=True)
    info = probe.probe(src)
    spec = load_presets().get("tiktok").variants["video"].video  # type: ignore[union-attr]
    assert spec is not None
    target, _, _ = plan_video(info, spec, max_bytes=10**9, trim_s=None, from_image=False,
                              x264_preset="ultrafast", fit="smart")
    shot_s = 1 / rate
    path = tuple(ReframeShot(round(k * shot_s, 4), round((k + 1) * shot_s, 4), "still", "x",
                             ((round(k * shot_s, 4), (k * 74) % (w - WINDOW) // 2 * 2),))
                 for k in range(count))
    out = tmp_path / "out.mp4"
    argv = build_args(src, "mp4", replace(target, reframe=path), out,
                      duration_s=count / rate)
    ffmpeg.run(argv, timeout_s=300)
    frames = decode(out, (target.geometry.width, target.geometry.height))
    out_fps = probe.probe(out).video.fps  # type: ignore[union-attr]
    assert len(frames) == count * out_fps / rate
    for i, frame in enumerate(frames):
        shot = path[int(i * rate / out_fps)]  # exact: the frame at a cut is the new shot's
        red = float(frame[:, frame.shape[1] // 2, 0].mean())  # the window's middle column
        seen = red * (w - 1) / 255 - WINDOW / 2  # its left edge, in source columns
        # Neighbouring shots sit >= 60 px apart: 16 px of coding error cannot confuse them.
        assert abs(seen - shot.keys[0][1]) <= 16, (i, seen, shot.keys[0][1])


@pytest.mark.ffmpeg
def test_a_flashing_clip_with_one_keyframe_costs_two_decodes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every sample is a colour jump, and the file has one keyframe: the analysis still reads
    the clip twice (cuts, samples), never once per jump (the old per-cut seeks decoded from
    the start each time: 178 s against a 60 s deadline)."""
    src = flashing_clip(tmp_path / "flash.mp4", seconds=20)
    info = probe.probe(src)
    runs: list[list[str]] = []
    real_run = ffmpeg.run

    def counting(args: list[str], **kw: Any) -> Any:
        runs.append(args)
        return real_run(args, **kw)

    monkeypatch.setattr(ffmpeg, "run", counting)
    framing.analyse_video(src, info, crop_width=WINDOW, crop_height=SRC[1],
                          deadline=Deadline(120), timeout_s=120)
    assert len(runs) == 2


@pytest.mark.ffmpeg
def test_the_analysis_stops_at_the_job_deadline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, face: Path) -> None:
    """A slow subject search (each sample takes 50 ms) against a 0.5 s deadline: the analysis
    raises deadline_exceeded between samples instead of finishing; analyse() then gives the
    variant's fit for it and skips the analyses after it without decoding anything."""
    src = fast_cut_clip(face, tmp_path / "cuts.mp4", seconds=20, shot_s=2.0)
    info = probe.probe(src)

    def slow_faces(frame: Any, **_: Any) -> tuple[()]:
        time.sleep(0.05)
        return ()

    monkeypatch.setattr(framing, "find_faces", slow_faces)
    deadline = Deadline(0.5)
    with pytest.raises(DeadlineExceeded):
        framing.analyse_video(src, info, crop_width=WINDOW, crop_height=SRC[1],
                              deadline=deadline, timeout_s=60)
    runs: list[list[str]] = []
    monkeypatch.setattr(ffmpeg, "run", lambda args, **kw: runs.append(args))
    jobs = [FramingJob(("a", WINDOW, SRC[1]), "a", "video", WINDOW, SRC[1]),
            FramingJob(("b", WINDOW, SRC[1]), "b", "video", WINDOW, SRC[1])]
    found = framing.analyse(jobs, {"a": src, "b": src}, {"a": info, "b": info},
                            deadline=deadline, timeout_s=60)
    assert found == {jobs[0].key: None, jobs[1].key: None} and runs == []


@pytest.mark.ffmpeg
def test_a_path_too_long_to_render_falls_back_to_the_fit_with_a_warning(
        face: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the path cannot be rendered (here: a cap lowered below this clip's path), the
    output takes the variant's fit (TikTok: the blurred fill) and says why; the job is ok."""
    fast_cut_clip(face, tmp_path / "cuts.mp4", seconds=6, shot_s=1.0)
    monkeypatch.setattr(framing, "MAX_CROP_EXPR_CHARS", 20)
    manifest = conform(tmp_path, "cuts.mp4", [{"id": "tt", "platform": "tiktok"}])
    assert manifest["accounts"][0]["status"] == "ok"
    path, media = first_output(tmp_path, manifest)
    assert "reframed" not in media["actions"] and "blurred" in media["actions"]
    assert any(w.startswith("framing_unavailable") for w in media["warnings"])
    delivered = probe.probe(path)
    assert delivered.width == SRC[0] and abs(delivered.width / delivered.height - 9 / 16) < 0.01
