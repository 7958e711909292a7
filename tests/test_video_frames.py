"""An animation's frames written one at a time and played from a list (pipeline.video.frames).

What ffmpeg reads is checked the way the encode reads it: the list through the locked input
(concat demuxer in safe mode, file protocol only), packet times from ffprobe, pixels decoded.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from pipeline import ffmpeg
from pipeline.errors import CorruptMedia, DeadlineExceeded
from pipeline.video.frames import FRAMES_FORMAT, write_frames
from pipeline.video.graph import decode_check_args

# Stored delays, and how browsers show them (5 ms or less -> 100 ms).
DELAYS_MS = [37, 250, 5, 120]
SHOWN_MS = [37, 250, 100, 120]
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]


def _webp(path: Path) -> Path:
    frames = [Image.new("RGB", (32, 16), c) for c in COLOURS]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=DELAYS_MS, loop=0,
                   lossless=True)
    return path


def _packet_times_ms(listed: Path) -> tuple[list[int], float]:
    """Packet start times (ms) and the duration ffprobe reads from the list, locked input."""
    name, opts = ffmpeg.locked_input(listed, FRAMES_FORMAT)
    flags = [a for k, v in opts.items() if v is not None for a in (f"-{k}", v)]
    done = subprocess.run(
        ffmpeg.ffprobe_head("-v", "error", *flags, name,
                            "-show_entries", "packet=pts_time:format=duration", "-of", "json"),
        capture_output=True, check=True, timeout=60)
    info = json.loads(done.stdout)
    return ([round(float(p["pts_time"]) * 1000) for p in info["packets"]],
            float(info["format"]["duration"]))


def test_each_frame_keeps_its_own_delay_over_whole_loops(tmp_path: Path) -> None:
    listed = write_frames(_webp(tmp_path / "a.webp"), "webp", tmp_path, loops=3,
                          check=lambda: None)
    starts, duration = _packet_times_ms(listed)
    expected, t = [], 0
    for delay in SHOWN_MS * 3:
        expected.append(t)
        t += delay
    assert starts == expected  # exact to the millisecond, the last frame's delay included
    assert duration == pytest.approx(t / 1000, abs=0.0005)


def test_frames_are_written_once_whatever_the_loops(tmp_path: Path) -> None:
    src = _webp(tmp_path / "a.webp")
    listed = write_frames(src, "webp", tmp_path, loops=5, check=lambda: None)
    # Two renders of one source get folders of their own.
    other = write_frames(src, "webp", tmp_path, loops=1, check=lambda: None)
    assert other.parent != listed.parent and listed.exists()
    written = sorted(p.name for p in listed.parent.glob("*.png"))
    assert len(written) == len(DELAYS_MS)
    entries = [line.split()[1] for line in listed.read_text().splitlines()
               if line.startswith("file ")]
    assert entries == written * 5


def test_decoded_frames_are_the_source_pixels(tmp_path: Path) -> None:
    listed = write_frames(_webp(tmp_path / "a.webp"), "webp", tmp_path, loops=1,
                          check=lambda: None)
    args = decode_check_args(listed, FRAMES_FORMAT)
    # One output frame per decoded frame (no constant-rate duplicates).
    rgb = [*args[:-3], "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    raw = subprocess.run(rgb, capture_output=True, check=True, timeout=60).stdout
    frame_bytes = 32 * 16 * 3
    assert len(raw) == frame_bytes * len(COLOURS)
    for i, colour in enumerate(COLOURS):
        assert raw[i * frame_bytes:i * frame_bytes + 3] == bytes(colour)


def test_writing_stops_at_the_deadline_and_leaves_nothing(tmp_path: Path) -> None:
    calls = []

    def check() -> None:
        calls.append(1)
        if len(calls) > 2:
            raise DeadlineExceeded("out of time during writing the animation's frames")

    src = _webp(tmp_path / "a.webp")
    with pytest.raises(DeadlineExceeded):
        write_frames(src, "webp", tmp_path, loops=2, check=check)
    assert len(calls) == 3
    assert not list(tmp_path.glob("*-frames*"))


def test_truncated_animation_is_corrupt_media_and_leaves_nothing(tmp_path: Path) -> None:
    src = _webp(tmp_path / "a.webp")
    data = src.read_bytes()
    src.write_bytes(data[:len(data) * 2 // 3])
    with pytest.raises(CorruptMedia):
        write_frames(src, "webp", tmp_path, loops=2, check=lambda: None)
    assert not list(tmp_path.glob("*-frames*"))


def test_the_list_is_read_in_safe_mode_only(tmp_path: Path) -> None:
    """A list naming anything but a plain relative name in its own folder is refused."""
    outside = _webp(tmp_path / "a.webp")
    listed = tmp_path / "evil.ffconcat"
    listed.write_text(f"ffconcat version 1.0\nfile {outside}\n", encoding="ascii")
    with pytest.raises(subprocess.CalledProcessError):
        _packet_times_ms(listed)


def test_the_render_passes_the_time_left_to_the_frame_writer(tmp_path: Path) -> None:
    """The encode's time limit holds while the frames are written, before ffmpeg starts."""
    from pipeline.video.render import _decodable

    src = _webp(tmp_path / "a.webp")
    with pytest.raises(DeadlineExceeded, match="writing the animation's frames"):
        _decodable(src, "webp", tmp_path, 3, timeout_s=0.0)
    assert not list(tmp_path.glob("*-frames*"))
    listed, fmt = _decodable(src, "webp", tmp_path, 3, timeout_s=60.0)
    assert (fmt, listed.parent.parent) == (FRAMES_FORMAT, tmp_path)
