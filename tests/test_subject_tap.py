"""The subject check's tap (issue 26): the encode's own copy decoded while it runs.

The tap must change nothing but time: the delivered file is the one written without it, its
boxes are the ones the check finds in the delivered file, and whatever goes wrong with it
(its decoder dies, the file is re-encoded, its length picks other frames, it hangs) leaves
the encode alone and hands the check back to the file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest

from pipeline import ffmpeg
from pipeline.geometry import fit_geometry
from pipeline.job import parse_job
from pipeline.models import MediaInfo, VideoStream
from pipeline.plan import VideoTarget
from pipeline.presets import Variant
from pipeline.probe import probe
from pipeline.runner import process
from pipeline.video import build_args, render_video
from pipeline.vision import sampling, subject, tap
from pipeline.vision.subject import Subjects
from pipeline.vision.tap import SubjectTap
from tests.support.jobkit import fake_ffmpeg, library_settings
from tests.support.renders import PRESETS, planned

pytestmark = pytest.mark.ffmpeg

SECONDS = 15  # a keyframe every 2 s: one at or after each of six slice middles (1.25 ... 13.75 s)


def source(path: Path, *, seconds: float = SECONDS, audio: bool = True) -> Path:
    """A moving 320x180 picture with a bright box that crosses it (salient, and where it is
    changes from slice to slice), and a tone."""
    inputs = ["-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=30:duration={seconds}"]
    if audio:
        inputs += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    subprocess.run([*ffmpeg.ffmpeg_head("-v", "error", "-y"), *inputs,
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", "30",
                    *(["-c:a", "aac"] if audio else []), "-shortest", str(path)],
                   check=True, capture_output=True)
    return path


def vertical_target(src: Path) -> VideoTarget:
    """The TikTok target of ``src``, on a 270x480 canvas (a 1080x1920 encode would only be
    slower: the tap does not care about the size)."""
    target = planned(src, "tiktok-video")
    assert target.action == "transcode"
    g = target.geometry
    small = fit_geometry(g.source_width, g.source_height, aspect=Fraction(9, 16), fit=g.fit,
                         max_width=270, max_height=480, even=True)
    return replace(target, geometry=small)


def variants() -> list[Variant]:
    found = PRESETS.find_variant("tiktok-video")
    assert found is not None
    return [found[1]]


def render(src: Path, target: VideoTarget, out: Path, the_tap: SubjectTap | None) -> Path:
    info = probe(src)
    return render_video(src, info.format_name, target, out, duration_s=info.duration_s or 0,
                        timeout_s=120, tap=the_tap).path


def tap_answer(src: Path, target: VideoTarget, out: Path, the_tap: SubjectTap
               ) -> tuple[MediaInfo, Subjects | None]:
    """Render with ``the_tap`` on the encode: the delivered file's probe and the tap's
    answer for it (the tap is closed after)."""
    try:
        render(src, target, out, the_tap)
        info = probe(out, own_output=True)
        return info, the_tap.subjects(info, timeout_s=30)
    finally:
        the_tap.close()


def new_tap(target: VideoTarget, seconds: float = SECONDS) -> SubjectTap:
    return SubjectTap(target.geometry.width, target.geometry.height, seconds, timeout_s=60)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_tapped_encode_writes_the_file_an_untapped_one_writes(tmp_path: Path) -> None:
    src = source(tmp_path / "src.mp4", seconds=4)
    target = vertical_target(src)
    info = probe(src)
    read_fd, write_fd = os.pipe()
    drained = io.BytesIO()

    def drain() -> None:
        with open(read_fd, "rb") as pipe:
            drained.write(pipe.read())

    reader = threading.Thread(target=drain)
    reader.start()
    outs = []
    for name, fd in (("plain.mp4", None), ("tapped.mp4", write_fd)):
        out = tmp_path / name
        args = build_args(src, info.format_name, target, out, duration_s=info.duration_s or 0,
                          tap_fd=fd)
        # one x264 thread: with more, x264's rate control is not bit-exact run to run
        args[-1:-1] = ["-threads", "1"]
        ffmpeg.run(args, timeout_s=120, hand_over=(fd,) if fd is not None else ())
        outs.append(out)
    reader.join(30)
    assert sha256(outs[0]) == sha256(outs[1])
    assert drained.getvalue()[4:8] == b"ftyp"  # the copy went to the pipe: an MP4
    assert probe(outs[1]).video is not None


def test_the_tap_finds_the_boxes_the_file_gives(tmp_path: Path) -> None:
    src = source(tmp_path / "src.mp4")
    target = vertical_target(src)
    out = tmp_path / "out.mp4"
    info, tapped = tap_answer(src, target, out, new_tap(target))
    from_file = subject.sample_subjects(out, info, variants(), timeout_s=60)
    assert tapped is not None and from_file is not None and len(tapped) == 6
    # The same boxes. A salient region's confidence may differ in its ninth digit: OpenCV
    # filters floats with or without Intel's IPP by a setting of each thread.
    assert [[replace(b, confidence=round(b.confidence, 6)) for b in frame] for frame in tapped] \
        == [[replace(b, confidence=round(b.confidence, 6)) for b in frame] for frame in from_file]
    assert len(set(tapped)) > 1  # the box moves: six different frames, not one six times


@pytest.mark.slow
def test_the_tap_decodes_the_very_pixels_the_file_holds(tmp_path: Path) -> None:
    src = source(tmp_path / "src.mp4", audio=False)
    target = vertical_target(src)
    the_tap = new_tap(target)
    try:
        out = render(src, target, tmp_path / "out.mp4", the_tap)
        info = probe(out, own_output=True)
        assert the_tap.subjects(info, timeout_s=30) is not None
        kept = dict(the_tap._kept)
    finally:
        the_tap.close()
    frames = sampling.sample_video(out, info, count=6, max_side=subject.SAMPLE_SIDE_PX,
                                   timeout_s=60, keyframes=True)
    assert [frame.tobytes() for frame in frames] == [kept[k] for k in sorted(kept)]


@pytest.mark.slow
def test_a_decoder_that_dies_leaves_the_encode_whole(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    src = source(tmp_path / "src.mp4")
    target = vertical_target(src)

    def dies_at_the_first_frame(self: SubjectTap, stream: io.BufferedReader) -> None:
        stream.read(1)
        raise RuntimeError("the tap's reader died")

    monkeypatch.setattr(SubjectTap, "_read_frames", dies_at_the_first_frame)
    the_tap = new_tap(target)
    try:
        out = render(src, target, tmp_path / "out.mp4", the_tap)
        info = probe(out, own_output=True)
        assert the_tap.subjects(info, timeout_s=30) is None
        assert (the_tap._failed or "").startswith("the decoder failed")  # and for that
        # the check goes back to the file, and finds its subjects there
        assert len(subject.sample_subjects(out, info, variants(), timeout_s=60) or ()) == 6
    finally:
        the_tap.close()
    assert info.duration_s == pytest.approx(SECONDS, abs=0.1)
    ffmpeg.run([*ffmpeg.ffmpeg_head("-v", "error"), "-xerror", "-i", str(out),
                "-f", "null", "-"], timeout_s=60)  # decodes to the end, no error


@pytest.mark.slow
def test_a_retried_encode_is_not_the_tapped_one(tmp_path: Path) -> None:
    src = source(tmp_path / "src.mp4")
    target = vertical_target(src)
    the_tap = new_tap(target)
    # a cap the constant-quality encode overshoots: a two-pass retry makes the file
    target = replace(target, max_bytes=(src.stat().st_size // 3))
    info = probe(src)
    try:
        result = render_video(src, info.format_name, target, tmp_path / "out.mp4",
                              duration_s=info.duration_s or 0, timeout_s=120, tap=the_tap)
        assert the_tap._thread is not None  # the first encode was tapped...
        assert "reencoded_for_byte_budget" in result.warnings  # ...and is not what was kept
        assert the_tap.subjects(probe(result.path, own_output=True), timeout_s=30) is None
    finally:
        the_tap.close()


# ------------------------------------------------------------ the tap's logic, no ffmpeg

SIZE = (4, 8)  # the frames' size in these tests: 4x8 RGB


def fed_tap(pts: list[int], *, expected_s: float = 12.0) -> SubjectTap:
    """A tap handed these keyframe timestamps (ms) and blank frames, as its decoder hands
    them, whose decoder then ended."""
    the_tap = SubjectTap(*SIZE, expected_s, timeout_s=5)
    the_tap._pool = ThreadPoolExecutor(1)
    the_tap._on_line(b"[Parsed_showinfo_2 @ 0x1] config in time_base: 1/1000, "
                     b"frame_rate: 30/1\n")
    frames = io.BytesIO()
    for n, p in enumerate(pts):
        the_tap._on_line(f"[Parsed_showinfo_2 @ 0x1] n:{n:4d} pts:{p:7d} "
                         f"pts_time:{p / 1000} fmt:rgb24\n".encode())
        frames.write(bytes([n]) * (SIZE[0] * SIZE[1] * 3))
    frames.seek(0)
    the_tap._read_frames(frames)
    the_tap._thread = threading.Thread(target=lambda: None)
    the_tap._thread.start()
    return the_tap


def delivered(duration_s: float, *, gop_s: float = 2.0) -> MediaInfo:
    """What the probe says of a delivered 4x8 video of this length and keyframe spacing."""
    video = VideoStream(
        codec="h264", profile="High", width=SIZE[0], height=SIZE[1],
        display_width=SIZE[0], display_height=SIZE[1], rotation_deg=0, mirrored=False,
        display_matrix=None, sar=Fraction(1), fps=Fraction(30), fps_real=Fraction(30),
        vfr=False, pix_fmt="yuv420p", bit_depth=8, color_transfer=None, color_primaries=None,
        color_space=None, color_range=None, hdr=False, interlaced=False, bitrate_kbps=None,
        frame_count=None, max_keyframe_interval_s=gop_s)
    return MediaInfo(kind="video", format_name="mp4", size_bytes=1, width=SIZE[0],
                     height=SIZE[1], duration_s=duration_s, bitrate_kbps=None,
                     start_time_s=0.0, video=video)


EVERY_2_S = [2000 * i for i in range(7)]  # 0..12 s


def test_the_expected_picks_are_searched_and_kept_alone() -> None:
    the_tap = fed_tap(EVERY_2_S)
    try:
        # slice middles of 12 s: 1, 3, 5, 7, 9, 11 s -> keyframes at 2, 4, 6, 8, 10, 12 s
        assert sorted(the_tap._kept) == [1, 2, 3, 4, 5, 6]
        boxes = the_tap.subjects(delivered(12.0), timeout_s=5)
        assert boxes is not None and len(boxes) == 6
    finally:
        the_tap.close()
    assert not the_tap._kept


def test_a_length_that_picks_other_frames_hands_the_check_back() -> None:
    the_tap = fed_tap(EVERY_2_S)
    try:
        # 12.1 s: middles 1.01, 3.03 ... 11.09: still keyframes 2 ... 12 s, the same picks
        assert the_tap.subjects(delivered(12.1), timeout_s=5) is not None
    finally:
        the_tap.close()
    # planned as 4 s (middles 0.33 ... 3.67: keyframes 2 and 4 s searched), delivered 12 s
    the_tap = fed_tap(EVERY_2_S, expected_s=4.0)
    try:
        assert sorted(the_tap._kept) == [1, 2]
        assert the_tap.subjects(delivered(12.0), timeout_s=5) is None
    finally:
        the_tap.close()


@pytest.mark.parametrize("why", ["sparse keyframes", "too long", "other size"])
def test_a_file_the_check_samples_otherwise_is_not_answered(why: str) -> None:
    the_tap = fed_tap(EVERY_2_S)
    info = {"sparse keyframes": delivered(12.0, gop_s=6.0),
            "too long": delivered(sampling.KEYFRAME_PASS_MAX_S + 1),
            "other size": replace(delivered(12.0), width=8, height=16)}[why]
    try:
        assert the_tap.subjects(info, timeout_s=5) is None
    finally:
        the_tap.close()


def test_frames_without_their_timestamps_are_not_trusted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tap, "_PAIRING_WAIT_S", 0.05)
    the_tap = SubjectTap(*SIZE, 12.0, timeout_s=5)
    the_tap._pool = ThreadPoolExecutor(1)
    frames = io.BytesIO(bytes(SIZE[0] * SIZE[1] * 3 * 3))
    the_tap._read_frames(frames)
    the_tap._thread = threading.Thread(target=lambda: None)
    the_tap._thread.start()
    try:
        assert the_tap._read == 3
        assert the_tap.subjects(delivered(12.0), timeout_s=5) is None
    finally:
        the_tap.close()


def test_the_keyframes_it_counts_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tap, "MAX_KEYFRAMES", 5)
    the_tap = fed_tap(EVERY_2_S)  # seven
    try:
        assert len(the_tap._pts) == 5
        assert the_tap.subjects(delivered(12.0), timeout_s=5) is None
    finally:
        the_tap.close()


def test_a_decoder_still_running_is_waited_for_no_longer_than_asked() -> None:
    the_tap = fed_tap(EVERY_2_S)
    stop = threading.Event()
    the_tap._thread = threading.Thread(target=stop.wait, args=(30,))
    the_tap._thread.start()
    try:
        started = time.monotonic()
        assert the_tap.subjects(delivered(12.0), timeout_s=0.2) is None
        assert time.monotonic() - started < 5
    finally:
        stop.set()
        the_tap.close()


# ------------------------------------------------------------------- through a whole job


@pytest.mark.slow
def test_a_job_takes_its_subjects_from_the_tap(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A 15 s landscape clip to TikTok: the check's answer comes from the encode's copy (the
    file is not decoded again), and it is the answer the file gives."""
    library = tmp_path / "lib"
    library.mkdir()
    source(library / "clip.mp4")
    job = parse_job({"workspace_id": "ws", "id": "tapped",
                     "content": [{"media": ["clip.mp4"]}],
                     "accounts": [{"id": "tt", "platform": "tiktok",
                                   "settings": {"privacy_level": "SELF_ONLY"}}]}, PRESETS)
    settings = library_settings(tmp_path, library, x264_preset="ultrafast")
    sampled: list[Path] = []
    real_sample = sampling.sample_video

    def recording(path: Path, *args: object, **kwargs: object) -> object:
        sampled.append(path)
        return real_sample(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sampling, "sample_video", recording)
    manifest = process(job, settings=settings)
    (account,) = manifest.accounts
    assert account.status == "ok"
    assert sampled == []  # the delivered file was not decoded for the check
    (stored,) = (tmp_path / "out").glob("assets/*/*/meta.json")
    boxes = json.loads(stored.read_text())["subjects"]
    out = stored.with_name("video.mp4")
    info = probe(out, own_output=True)
    assert info.height > info.width
    target_region = subject.picture_region(planned(library / "clip.mp4", "tiktok-video").geometry)
    assert target_region is not None  # a blur-padded picture: faces are looked for inside
    from_file = subject.sample_subjects(out, info, variants(), timeout_s=60,
                                        picture=target_region)
    assert from_file is not None and len(boxes) == len(from_file) == 6
    for frame, again in zip(boxes, from_file, strict=True):
        assert [b[:5] for b in frame] == [[b.kind, *(round(v, 4) for v in
                                                      (b.left, b.top, b.right, b.bottom))]
                                          for b in again]



@pytest.mark.slow
def test_an_ffmpeg_without_the_tee_muxer_encodes_untapped(
        tmp_path: Path, use_ffmpeg: Callable[[Path], None]) -> None:
    """A build without the tee muxer refuses the format by name; the encode runs again
    without the tap, and the check goes back to the file."""
    src = source(tmp_path / "src.mp4", seconds=4)
    target = vertical_target(src)
    use_ffmpeg(fake_ffmpeg(tmp_path, mode="no_tee"))
    the_tap = new_tap(target, seconds=4)
    _, answer = tap_answer(src, target, tmp_path / "out.mp4", the_tap)
    assert answer is None
    assert probe(tmp_path / "out.mp4").duration_s == pytest.approx(4, abs=0.1)
