"""Timing fidelity, second round (issue #23): late audio, Opus, the last frame.

Everything is read back from the delivered files: decoded flash frames and clicks
(:mod:`tests.test_fidelity`), the lag of the decoded sound found by cross-correlation against
the source's (for real recordings without clicks), and decoded frame counts.
"""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pipeline.presets import load_presets
from tests.support.renders import render_plan, render_shared_outputs
from tests.test_fidelity import (
    _ffmpeg,
    _frames,
    assert_in_sync,
    click_time,
    flash_time,
    sync_clip,
)

PRESETS = load_presets()
HIGH = ("-preset", "veryfast", "-profile:v", "high")
# The click comes 0.1 s after the flash, and the audio track starts 0.1 s after the picture.
LEAD_IN_S = 0.1


def late_audio_mp4(out: Path, *, extra: tuple[str, ...] = ()) -> Path:
    """An MP4 whose AAC track starts 0.1 s after the picture (an empty edit in its edit list,
    as phones and editing apps write it)."""
    src = sync_clip(out, flash_s=0.5, click_s=0.6, audio_offset_s=LEAD_IN_S,
                    audio_codec="aac", extra=(*HIGH, *extra))
    starts = stream_starts(src)
    assert starts["audio"] - starts["video"] > 0.07  # the priming packet sits before 0.1 s
    return src


def stream_starts(path: Path) -> dict[str, float]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                          "stream=codec_type,start_time", "-of", "json", str(path)],
                         capture_output=True, check=True, text=True).stdout
    return {s["codec_type"]: float(s["start_time"]) for s in json.loads(out)["streams"]}


def _boxes(data: bytes | bytearray, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, offset, size) of the boxes between ``start`` and ``end`` (32-bit sizes)."""
    found = []
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack(">I4s", data[at:at + 8])
        if size < 8:
            break
        found.append((kind, at, size))
        at += size
    return found


def fragmented_late_audio(out: Path, tmp: Path) -> Path:
    """A fragmented MP4 with no edit list whose audio fragments start 0.1 s in (``tfdt``):
    moov first and nothing a platform refuses, so the planner passes it through, and the
    rewrite (which does not take fragments) hands it to the remux."""
    plain = sync_clip(tmp / "frag-src.mov", flash_s=0.5, click_s=0.5, audio_codec="pcm_s16le",
                      extra=(*HIGH, "-bf", "0"))
    _ffmpeg("-i", str(plain), "-c:v", "copy", "-c:a", "aac", "-movflags",
            "+frag_keyframe+empty_moov+default_base_moof", str(out))
    data = bytearray(out.read_bytes())
    shift = round(LEAD_IN_S * 48000)  # ffmpeg's audio track counts in samples
    for kind, at, size in _boxes(data, 0, len(data)):
        if kind != b"moof":
            continue
        for tkind, tat, tsize in _boxes(data, at + 8, at + size):
            if tkind != b"traf":
                continue
            children = _boxes(data, tat + 8, tat + tsize)
            tfhd = next(c for c in children if c[0] == b"tfhd")
            if struct.unpack(">I", data[tfhd[1] + 12:tfhd[1] + 16])[0] != 2:
                continue  # not the audio track
            tfdt = next(c for c in children if c[0] == b"tfdt")
            body = tfdt[1] + 12
            if data[tfdt[1] + 8] == 1:
                (base,) = struct.unpack(">Q", data[body:body + 8])
                data[body:body + 8] = struct.pack(">Q", base + shift)
            else:
                (base,) = struct.unpack(">I", data[body:body + 4])
                data[body:body + 4] = struct.pack(">I", base + shift)
    out.write_bytes(bytes(data))
    starts = stream_starts(out)
    assert starts["audio"] - starts["video"] == pytest.approx(LEAD_IN_S, abs=1e-3)
    return out


def source_offset(src: Path) -> float:
    return flash_time(src) - click_time(src)


# --------------------------------------------------------------------------- late audio


@pytest.mark.ffmpeg
@pytest.mark.parametrize(("variant", "bframes", "planned"), [
    ("instagram-reels", True, "transcode"),    # an encode that used to copy the AAC
    ("twitter-video", False, "audio_only"),    # a remux that used to copy the AAC
])
def test_late_audio_keeps_its_lead_in(tmp_path: Path, variant: str, bframes: bool,
                                      planned: str) -> None:
    src = late_audio_mp4(tmp_path / "late.mp4", extra=() if bframes else ("-bf", "0"))
    # the sound comes 0.1 s after the flash (click at 0.6 s), as in the source
    assert source_offset(src) == pytest.approx(-LEAD_IN_S, abs=2e-3)
    target, out = render_plan(src, variant, tmp_path / "out.mp4")
    assert (target.action, target.audio.action) == (planned, "encode")
    assert_in_sync(src, out, 30)
    assert source_offset(out) == pytest.approx(-LEAD_IN_S, abs=2e-3)


@pytest.mark.ffmpeg
def test_late_audio_in_a_pass_through_candidate_keeps_its_lead_in(tmp_path: Path) -> None:
    # No edit list, moov first: once the audio is made anew, only its track is re-encoded.
    src = fragmented_late_audio(tmp_path / "frag.mp4", tmp_path)
    want = source_offset(src)
    assert want < -0.09
    target, out = render_plan(src, "twitter-video", tmp_path / "out.mp4")
    assert (target.action, target.audio.action) == ("audio_only", "encode")
    assert_in_sync(src, out, 30)


@pytest.mark.ffmpeg
def test_late_audio_keeps_its_lead_in_in_a_shared_decode(tmp_path: Path) -> None:
    src = late_audio_mp4(tmp_path / "late.mp4")
    for _, out in render_shared_outputs(src, tmp_path, ("instagram-reels", "tiktok-video")):
        assert_in_sync(src, out, 30)


def _decoded_audio(path: Path) -> tuple[np.ndarray, float]:
    """The first audio track decoded to 48 kHz mono, and when its first sample plays,
    counted from the first frame shown."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1",
                          "-ar", "48000", "-f", "f32le", "-"], capture_output=True,
                         check=True).stdout
    first_audio = float(_frames(path, "a:0")[0]["best_effort_timestamp_time"])
    first_frame = min(float(f["best_effort_timestamp_time"]) for f in _frames(path, "v:0")[:8])
    return np.frombuffer(raw, dtype="<f4"), first_audio - first_frame


def sound_lag_s(src: Path, out: Path) -> float:
    """How much later (against the picture) the output's sound plays than the source's: the
    peak of the two decoded tracks' cross-correlation."""
    a, start_a = _decoded_audio(src)
    b, start_b = _decoded_audio(out)
    n = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    corr = np.fft.irfft(np.fft.rfft(b, n) * np.conj(np.fft.rfft(a, n)), n)
    k = int(np.argmax(corr))
    k = k - n if k > n // 2 else k
    return (start_b + k / 48000) - start_a


@pytest.mark.ffmpeg
@pytest.mark.parametrize(("name", "lead_in_s"), [("sample_rotate_and_reflect.mp4", 0.044),
                                                 ("hdr10-av1.mp4", 0.021)])
def test_corpus_late_audio_keeps_its_lead_in(corpus: Path, tmp_path: Path, name: str,
                                             lead_in_s: float) -> None:
    src = corpus / "videos" / name
    starts = stream_starts(src)
    assert starts["audio"] - starts["video"] == pytest.approx(lead_in_s, abs=1e-3)
    target, out = render_plan(src, "instagram-reels", tmp_path / "out.mp4")
    assert target.audio.action == "encode"
    assert abs(sound_lag_s(src, out)) < 0.001  # was -44 ms and -21 ms (the lead-in lost)


# --------------------------------------------------------------------------- Opus


@pytest.mark.ffmpeg
@pytest.mark.parametrize("name", ["opus.webm", "opus.mkv"])
@pytest.mark.parametrize(("variant", "planned"), [("instagram-reels", "transcode"),
                                                  ("twitter-video", "audio_only")])
def test_opus_in_matroska_keeps_its_sync(tmp_path: Path, name: str, variant: str,
                                         planned: str) -> None:
    # The Opus pre-skip (312 samples) puts the first audio packet 6.5 ms before 0, so the
    # picture starts ~7-14 ms into the file; the encode used to move the picture onto its
    # frame grid and not the sound (13.5 ms).
    video = (("-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8")
             if name.endswith(".webm") else (*HIGH, "-bf", "0"))
    src = sync_clip(tmp_path / name, audio_codec="libopus", extra=video)
    if name.endswith(".webm") and planned == "audio_only":
        planned = "transcode"  # VP9 is no stream X keeps
    target, out = render_plan(src, variant, tmp_path / "out.mp4")
    assert (target.action, target.audio.action) == (planned, "encode")
    # Matroska keeps times in whole milliseconds: that is the source's own precision.
    assert abs(source_offset(out) - source_offset(src)) <= 0.001
    assert abs(sound_lag_s(src, out)) <= 0.001


# --------------------------------------------------------------------------- the last frame


def frame_count(path: Path) -> int:
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                          "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0",
                          str(path)], capture_output=True, check=True, text=True).stdout
    return int(out.strip().strip(","))


@pytest.mark.ffmpeg
@pytest.mark.parametrize(("audio_over_s", "frames"), [
    (0.0, 36),     # sound and picture end together
    (0.02, 36),    # AAC's last frame runs 0.6 frame on: no frame is added for it
    (0.1, 39),     # sound that goes on for whole frames holds the last frame
])
def test_encode_holds_the_last_frame_only_for_whole_frames(tmp_path: Path, audio_over_s: float,
                                                           frames: int) -> None:
    src = tmp_path / "src.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x90:r=30:d=1.2", "-f", "lavfi", "-i",
            f"sine=r=48000:d={1.2 + audio_over_s}", "-c:v", "libx264", "-preset", "ultrafast",
            "-c:a", "pcm_s16le", str(src.with_suffix(".mov")))
    src = src.with_suffix(".mov")
    assert frame_count(src) == 36
    target, out = render_plan(src, "instagram-reels", tmp_path / "out.mp4")
    assert target.action == "transcode"
    assert frame_count(out) == frames


@pytest.mark.ffmpeg
def test_corpus_encode_keeps_the_frame_count(corpus: Path, tmp_path: Path) -> None:
    # face.mp4: 383 frames, its AAC track runs 27 ms (0.8 frame) past the last one.
    src = corpus / "videos" / "face.mp4"
    _, out = render_plan(src, "instagram-reels", tmp_path / "out.mp4")
    assert frame_count(out) == frame_count(src) == 383
