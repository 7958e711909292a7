"""The subject check samples keyframes when every slice of the output holds one (issue 26)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

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


def frame_clip(path: Path, *, seconds: float, rate: int, gop: int, extra: tuple[str, ...] = ()
               ) -> Path:
    """A lossless grey clip whose level says which frame it is (16 + its number: < 220)."""
    subprocess.run([*ffmpeg.ffmpeg_head("-v", "error", "-y"), "-f", "lavfi", "-i",
                    f"color=c=black:s=64x64:r={rate}:d={seconds},"
                    "geq=lum='16+N':cb=128:cr=128",
                    "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-g", str(gop),
                    "-keyint_min", "1", *extra, "-pix_fmt", "yuv420p", str(path)],
                   check=True, capture_output=True)
    return path


def keyframe_sample(path: Path, monkeypatch: pytest.MonkeyPatch, *, one_pass: bool
                    ) -> tuple[list[bytes], int]:
    """The keyframe sample of ``path`` (one pass, or a seek per frame), and ffmpeg runs."""
    info = probe(path)
    runs: list[list[str]] = []
    real = ffmpeg.run

    def counting(args: list[str], **kwargs: Any) -> ffmpeg.Completed:
        runs.append(args)
        return real(args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(ffmpeg, "run", counting)
        if not one_pass:
            patch.setattr(sampling, "KEYFRAME_PASS_MAX_S", 0.0)
        shots = sampling.sample_video(path, info, count=6, max_side=64, timeout_s=60,
                                    keyframes=True)
    return [shot.tobytes() for shot in shots], len(runs)


@pytest.mark.ffmpeg
@pytest.mark.parametrize(("seconds", "rate", "gop", "extra", "expected"), [
    (24, 5, 10, ("-bf", "0"), 6),    # a keyframe every 2 s, the targets between them
    (24, 5, 5, ("-bf", "3"), 6),     # a keyframe every second: exactly on the targets
    (21, 10, 20, ("-bf", "2", "-output_ts_offset", "1.5"), 6),  # B-frames, a late start
    (28, 5, 20, ("-bf", "0"), 5),    # no keyframe after the last target: five frames
])
def test_one_pass_gives_the_frames_a_seek_per_slice_gives(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seconds: int, rate: int, gop: int,
        extra: tuple[str, ...], expected: int) -> None:
    clip = frame_clip(tmp_path / "clip.mp4", seconds=seconds, rate=rate, gop=gop, extra=extra)
    assert sampling.LONG_CLIP_S < probe(clip).duration_s <= sampling.KEYFRAME_PASS_MAX_S  # type: ignore[operator]
    seeks, seek_runs = keyframe_sample(clip, monkeypatch, one_pass=False)
    passed, pass_runs = keyframe_sample(clip, monkeypatch, one_pass=True)
    assert (seek_runs, pass_runs) == (6, 1)
    assert len(passed) == len(seeks) == expected
    assert passed == seeks  # pixel for pixel: the very same keyframes
    assert len(set(passed)) == len(passed)


@pytest.mark.ffmpeg
def test_a_clip_longer_than_one_pass_is_still_sampled_by_seeking(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seconds = sampling.KEYFRAME_PASS_MAX_S + 6
    clip = frame_clip(tmp_path / "long.mp4", seconds=seconds, rate=2, gop=4, extra=("-bf", "0"))
    shots, runs = keyframe_sample(clip, monkeypatch, one_pass=True)
    assert runs == 6 and len(set(shots)) == 6
