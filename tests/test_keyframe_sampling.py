"""The subject check samples keyframes when every slice of the output holds one (issue 26)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pipeline import ffmpeg
from pipeline.probe import probe
from pipeline.vision import sampling

SECONDS = 12


def second_clip(path: Path, *, gop: int) -> Path:
    """A grey clip whose level says which second it is (16 + 10 x second, limited range)."""
    subprocess.run([*ffmpeg.ffmpeg_head("-v", "error", "-y"), "-f", "lavfi", "-i",
                    f"color=c=black:s=64x64:r=10:d={SECONDS},"
                    "geq=lum='16+floor(T)*10':cb=128:cr=128",
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", str(gop), "-bf", "0",
                    "-pix_fmt", "yuv420p", str(path)], check=True, capture_output=True)
    return path


def seconds_shown(path: Path, *, keyframes: bool) -> list[int]:
    info = probe(path)
    shots = sampling.sample_video(path, info, count=6, max_side=64, timeout_s=60,
                                keyframes=keyframes)
    # the grey level back to the second (full-range RGB from limited-range luma)
    return [round(shot.getpixel((32, 32))[0] * 219 / 2550) for shot in shots]  # type: ignore[index]


@pytest.mark.ffmpeg
def test_keyframes_in_every_slice_give_a_frame_of_each_slice(tmp_path: Path) -> None:
    clip = second_clip(tmp_path / "dense.mp4", gop=10)  # a keyframe every second
    full = seconds_shown(clip, keyframes=False)
    keys = seconds_shown(clip, keyframes=True)
    assert len(keys) == len(full) >= 5
    slice_s = SECONDS / 6
    for i, (a, b) in enumerate(zip(full, keys, strict=True)):
        assert abs(a - b) <= 1, (full, keys)
        assert i * slice_s - 1 <= b <= (i + 1) * slice_s + 1, keys
    assert len(set(keys)) == len(keys)


@pytest.mark.ffmpeg
def test_sparse_keyframes_fall_back_to_decoding_every_frame(tmp_path: Path) -> None:
    clip = second_clip(tmp_path / "sparse.mp4", gop=1000)  # one keyframe in 12 s
    keys = seconds_shown(clip, keyframes=True)
    assert keys == seconds_shown(clip, keyframes=False)
    assert len(set(keys)) == len(keys) >= 5  # not the first frame six times
