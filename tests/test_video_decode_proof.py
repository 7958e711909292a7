"""A stream copy proves the stream decodes (issue #21, item 13).

A pass-through or remux never decodes the picture, so an MP4 whose frames are garbage (its
boxes intact, so probing and the packet index read fine) used to ship and be reported ok.
Hostile inputs are made here: a clean clip whose ``mdat`` payload is overwritten.
"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from pipeline.errors import CorruptMedia, FFmpegTimeout
from pipeline.plan import plan_video
from pipeline.presets import load_presets
from pipeline.probe import probe
from pipeline.video.render import prove_decodes
from tests.support.renders import render_plan

PRESETS = load_presets()


def clip(out: Path, *, faststart: bool, size: str = "320x240", seconds: int = 3) -> Path:
    """A clip X keeps as it is (H.264 High, no B-frames, AAC, no edit list)."""
    args = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
            f"testsrc2=s={size}:r=30:d={seconds}", "-f", "lavfi", "-i",
            f"sine=d={seconds}:r=48000", "-c:v", "libx264", "-preset", "veryfast",
            "-profile:v", "high", "-bf", "0", "-g", "30", "-pix_fmt", "yuv420p", "-c:a", "aac",
            "-use_editlist", "0"]
    if faststart:
        args += ["-movflags", "+faststart"]
    subprocess.run([*args, str(out)], check=True, capture_output=True)
    return out


def garbled(src: Path, out: Path) -> Path:
    """``src`` with every 200th byte of the middle half of its ``mdat`` payload replaced."""
    data = bytearray(src.read_bytes())
    start = data.index(b"mdat") + 4
    size = len(data) - start if data.index(b"moov") < start else data.index(b"moov") - start
    rng = random.Random(7)
    for at in range(start + size // 4, start + 3 * size // 4, 200):
        data[at] = rng.randrange(256)
    out.write_bytes(bytes(data))
    return out


def render(src: Path, out: Path, variant: str = "twitter-video") -> tuple[str, Path]:
    target, path = render_plan(src, variant, out)
    return target.action, path


@pytest.mark.ffmpeg
@pytest.mark.parametrize(("faststart", "action"), [(True, "passthrough"), (False, "remux")])
def test_a_stream_copy_of_frames_that_do_not_decode_is_corrupt_media(
        tmp_path: Path, faststart: bool, action: str) -> None:
    good = clip(tmp_path / "good.mp4", faststart=faststart)
    planned, out = render(good, tmp_path / "good-out.mp4")
    assert planned == action and out.exists()  # the clean clip is copied, as before
    bad = garbled(good, tmp_path / "bad.mp4")
    probe(bad)  # probing and the packet index still read it: only a decode tells
    with pytest.raises(CorruptMedia) as err:
        render(bad, tmp_path / "out.mp4")
    assert err.value.code == "corrupt_media" and err.value.http_status == 400
    assert not (tmp_path / "out.mp4").exists()  # nothing half-proved is left


@pytest.mark.ffmpeg
def test_the_decode_proof_is_bounded_by_the_time_left(tmp_path: Path) -> None:
    # Long enough that no machine decodes it within the runner's shortest limit (0.1 s).
    good = clip(tmp_path / "good.mp4", faststart=True, size="1280x720", seconds=20)
    found = PRESETS.find_variant("twitter-video")
    assert found is not None and found[1].video is not None
    spec = found[1].video
    target, _, _ = plan_video(probe(good), spec, max_bytes=spec.max_bytes, trim_s=None,
                              from_image=False, x264_preset="veryfast")
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(good.read_bytes())
    with pytest.raises(FFmpegTimeout):
        prove_decodes(copy, target, timeout_s=0.001)
    assert not copy.exists()


@pytest.mark.ffmpeg
def test_a_job_with_frames_that_do_not_decode_is_not_reported_ok(tmp_path: Path) -> None:
    from tests.test_cover import account, run_job, settings_for

    lib = tmp_path / "lib"
    lib.mkdir()
    garbled(clip(tmp_path / "good.mp4", faststart=True), lib / "bad.mp4")
    m = run_job(settings_for(tmp_path, lib), [{"media": ["bad.mp4"]}],
                [{"id": "x", "platform": "twitter"}])
    x = account(m, "x")
    assert x["status"] == "failed"
    assert [e["code"] for e in x["errors"]] == ["corrupt_media"]
