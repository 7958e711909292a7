"""Fidelity of delivered videos, measured from the files themselves (issue #13, part A).

Audio/video sync: the source shows a white flash at one frame and has a click at the same
instant (or at a known offset); the output is decoded, and the flash frame's presentation time
and the click's sample time are read back and compared with the source's. Also: the ``ftyp``
brands, the H.264 VUI timing (fixed frame rate) and truncated Matroska/WebM.
"""

from __future__ import annotations

import json
import struct
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import CorruptMedia
from pipeline.presets import load_presets
from pipeline.probe import probe
from pipeline.video import own_brands
from tests.support.renders import render_plan, render_shared_outputs
from tests.test_cover import LEVEL, index_of, mean_rgb

PRESETS = load_presets()
CLICK_LEVEL = 0.3


def _ffmpeg(*args: str) -> None:
    proc = subprocess.run(["ffmpeg", "-hide_banner", "-v", "error", "-y", *args],
                          capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]


def sync_clip(out: Path, *, fps: int = 30, seconds: float = 1.2, flash_s: float = 0.6,
              click_s: float | None = None, audio_offset_s: float = 0.0,
              video_offset_s: float = 0.0, audio_codec: str = "pcm_s16le",
              extra: tuple[str, ...] = ()) -> Path:
    """A clip with one white frame at ``flash_s`` and a 2 ms click at ``click_s`` (same time
    by default), both on the file's timeline; a stream offset starts that stream later."""
    click_s = flash_s if click_s is None else click_s
    flash_frame = round((flash_s - video_offset_s) * fps)
    click_at = click_s - audio_offset_s
    video = (f"color=c=black:s=160x90:r={fps}:d={seconds - video_offset_s},"
             f"geq=lum='if(eq(N\\,{flash_frame})\\,235\\,16)':cb=128:cr=128")
    audio = (f"aevalsrc='if(between(t\\,{click_at}\\,{click_at + 0.002})\\,0.9\\,0)'"
             f":s=48000:c=stereo:d={seconds - audio_offset_s}")
    _ffmpeg("-itsoffset", str(video_offset_s), "-f", "lavfi", "-i", video,
            "-itsoffset", str(audio_offset_s), "-f", "lavfi", "-i", audio,
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", str(fps),
            "-c:a", audio_codec, *extra, str(out))
    return out


def _frames(path: Path, stream: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", stream, "-show_entries",
         "frame=best_effort_timestamp_time,nb_samples", "-of", "json", str(path)],
        capture_output=True, check=True, text=True).stdout
    frames: list[dict[str, Any]] = json.loads(out)["frames"]
    return frames


def flash_time(path: Path) -> float:
    """Presentation time of the brightest frame, as ffprobe/ffmpeg (a player) decode it."""
    times = [float(f["best_effort_timestamp_time"]) for f in _frames(path, "v:0")]
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v:0",
                          "-fps_mode", "passthrough", "-vf", "scale=16:8", "-f", "rawvideo",
                          "-pix_fmt", "gray", "-"], capture_output=True, check=True).stdout
    size = len(raw) // len(times)
    means = [sum(raw[i * size:(i + 1) * size]) / size for i in range(len(times))]
    return times[max(range(len(times)), key=means.__getitem__)]


def click_time(path: Path) -> float:
    """Presentation time of the first loud sample, as decoded (priming included)."""
    frames = _frames(path, "a:0")
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1",
                          "-ar", "48000", "-f", "f32le", "-"],
                         capture_output=True, check=True).stdout
    samples = struct.unpack(f"{len(raw) // 4}f", raw)
    loud = next(i for i, s in enumerate(samples) if abs(s) > CLICK_LEVEL)
    pos = 0
    for f in frames:
        n = int(f["nb_samples"])
        if pos + n > loud:
            return float(f["best_effort_timestamp_time"]) + (loud - pos) / 48000
        pos += n
    raise AssertionError("no click")


def start_times(path: Path) -> dict[str, float]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                          "stream=codec_type,start_time", "-of", "json", str(path)],
                         capture_output=True, check=True, text=True).stdout
    return {s["codec_type"]: float(s["start_time"]) for s in json.loads(out)["streams"]}


def assert_in_sync(src: Path, out: Path, fps: float) -> None:
    """The picture/sound offset of ``out`` is the source's, within one frame, with no edit
    list; the streams start together when the source's do."""
    raw = out.read_bytes()
    assert b"elst" not in raw[:raw.index(b"mdat")]
    want = flash_time(src) - click_time(src)
    got = flash_time(out) - click_time(out)
    assert abs(got - want) < 1 / fps, (got, want)
    src_starts, out_starts = start_times(src), start_times(out)
    if abs(src_starts["video"] - src_starts["audio"]) < 1e-3:
        assert abs(out_starts["video"] - out_starts["audio"]) < 1 / fps, out_starts


def _render(src: Path, variant: str, out: Path, *, trim_s: float | None = None) -> Path:
    return render_plan(src, variant, out, trim_s=trim_s)[1]


# --------------------------------------------------------------------------- sync


@pytest.mark.ffmpeg
@pytest.mark.parametrize("fps", [30, 60])
def test_reencode_keeps_picture_and_sound_together(tmp_path: Path, fps: int) -> None:
    src = sync_clip(tmp_path / "src.mov", fps=fps)
    out = _render(src, "instagram-reels", tmp_path / "out.mp4")
    assert_in_sync(src, out, fps)
    starts = start_times(out)
    assert starts["video"] == pytest.approx(0, abs=1e-3)  # no B-frame delay before the picture


@pytest.mark.ffmpeg
@pytest.mark.parametrize(("audio_offset_s", "video_offset_s"), [(0.1, 0.0), (0.0, 0.1)])
def test_offset_start_source_keeps_its_offset(tmp_path: Path, audio_offset_s: float,
                                              video_offset_s: float) -> None:
    # the click comes 0.1 s after the flash; one stream starts 0.1 s after the other
    src = sync_clip(tmp_path / "src.mkv", flash_s=0.5, click_s=0.6,
                    audio_offset_s=audio_offset_s, video_offset_s=video_offset_s)
    out = _render(src, "instagram-reels", tmp_path / "out.mp4")
    assert_in_sync(src, out, 30)


@pytest.mark.ffmpeg
def test_trimmed_reencode_stays_in_sync(tmp_path: Path) -> None:
    src = sync_clip(tmp_path / "src.mov", seconds=2.0, flash_s=0.8)
    out = _render(src, "instagram-reels", tmp_path / "out.mp4", trim_s=1.5)
    assert_in_sync(src, out, 30)
    assert float(probe(out).duration_s or 0) == pytest.approx(1.5, abs=0.05)


@pytest.mark.ffmpeg
def test_shared_decode_outputs_stay_in_sync(tmp_path: Path) -> None:
    src = sync_clip(tmp_path / "src.mov", fps=60)
    outputs = render_shared_outputs(src, tmp_path, ("instagram-reels", "tiktok-video"))
    for target, out in outputs:
        assert_in_sync(src, out, float(target.fps or 60))


@pytest.mark.ffmpeg
def test_remux_shows_the_first_frame_at_zero(tmp_path: Path) -> None:
    # A conformant stream in Matroska is only remuxed: the copied video must not start after
    # its B-frame delay (the sound would lead by two frames). Its PCM audio is re-encoded
    # (audio_only), so the priming is compensated as in a full encode.
    src = sync_clip(tmp_path / "src.mkv", extra=("-preset", "veryfast", "-profile:v", "high"))
    out = _render(src, "instagram-reels", tmp_path / "out.mp4")
    assert_in_sync(src, out, 30)
    assert start_times(out)["video"] == pytest.approx(0, abs=1e-3)


@pytest.mark.ffmpeg
@pytest.mark.parametrize(("variant", "action"), [("tiktok-video", "transcode"),
                                                 ("twitter-video", "audio_only")])
def test_aac_priming_over_a_frame_is_not_copied(tmp_path: Path, variant: str,
                                                action: str) -> None:
    # 60 fps: the 1024 priming samples the edit list hid (21.3 ms) are more than a frame, so
    # the audio is encoded (aligned) rather than copied, in an encode and in a remux.
    args = ("-preset", "veryfast", "-profile:v", "high", "-g", "60")
    if action == "audio_only":
        args = (*args, "-bf", "0")  # a stream X keeps: only the file needs remuxing
    src = sync_clip(tmp_path / "src.mp4", fps=60, audio_codec="aac", extra=args)
    assert probe(src).audio.priming_s == pytest.approx(1024 / 48000, abs=1e-4)  # type: ignore[union-attr]
    target, out = render_plan(src, variant, tmp_path / "out.mp4")
    assert (target.action, target.audio.action) == (action, "encode")
    assert_in_sync(src, out, 60)


@pytest.mark.ffmpeg
def test_apple_length_priming_is_not_copied_at_30fps(tmp_path: Path) -> None:
    # Apple's AAC encoder primes 2112 samples (48 ms at 44.1 kHz), hidden by the edit list:
    # made here by shifting an AAC track 26 ms earlier on a stream copy (the edit list then
    # hides 1024 samples plus 26 ms).
    plain = sync_clip(tmp_path / "plain.mp4", audio_codec="aac",
                      extra=("-preset", "veryfast", "-profile:v", "high"))
    src = tmp_path / "src.mp4"
    _ffmpeg("-i", str(plain), "-itsoffset", "-0.026", "-i", str(plain), "-map", "0:v",
            "-map", "1:a", "-c", "copy", str(src))
    assert probe(src).audio.priming_s > 1 / 30  # type: ignore[union-attr]
    target, out = render_plan(src, "tiktok-video", tmp_path / "out.mp4")
    assert target.audio.action == "encode"
    assert_in_sync(src, out, 30)


@pytest.mark.ffmpeg
def test_copied_aac_stays_within_a_frame_at_30fps(tmp_path: Path) -> None:
    # AAC copied from an MP4 whose edit list hid the encoder priming: without an edit list
    # the 1024 priming samples (21.3 ms at 48 kHz) are played, under one frame at 30 fps.
    src = sync_clip(tmp_path / "src.mp4", audio_codec="aac",
                    extra=("-preset", "veryfast", "-profile:v", "high"))
    out = _render(src, "tiktok-video", tmp_path / "out.mp4")
    assert_in_sync(src, out, 30)


# --------------------------------------------------------------------------- covers


def indexed_clip(out: Path, *, fps: int, seconds: float, audio: bool) -> Path:
    """Frame N is a solid colour encoding N (tests.test_cover), encoded with B-frames and
    muxed without an edit list, like a delivered file: without audio its first frame is
    shown after the reorder delay, not at 0."""
    exprs = [f"{c}='{LEVEL}*mod(floor((N+1)/{div})\\,5)'"
             for c, div in (("r", 1), ("g", 5), ("b", 25))]
    graph = (f"color=c=black:s=8x8:r={fps}:d={seconds},format=gbrp,geq={':'.join(exprs)},"
             "scale=64:36:flags=neighbor,setsar=1")
    args = ["-f", "lavfi", "-i", graph]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=f=440:d={seconds}:r=48000", "-c:a", "aac"]
    _ffmpeg(*args, "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
            "-g", str(fps), "-movflags", "+faststart", "-use_editlist", "0", str(out))
    return out


def player_frame_times(video: Path) -> list[float]:
    """Presentation times of the frames on the player's clock (an MP4's timeline starts at 0
    whatever its first frame's time)."""
    return [float(f["best_effort_timestamp_time"]) for f in _frames(video, "v:0")]


@pytest.mark.ffmpeg
@pytest.mark.parametrize("fps", [24, 30, 60])
@pytest.mark.parametrize("audio", [False, True])
def test_cover_is_the_frame_shown_at_the_timestamp(tmp_path: Path, fps: int,
                                                   audio: bool) -> None:
    from PIL import Image

    from pipeline.cover import extract_frame

    video = indexed_clip(tmp_path / "v.mp4", fps=fps, seconds=1.5, audio=audio)
    info = probe(video)
    times = player_frame_times(video)
    for at_ms in (250, 500, 1000, 1400):
        png = extract_frame(video, info, at_ms, tmp_path / f"f{at_ms}.png", timeout_s=60)
        with Image.open(png) as im:
            got = index_of(mean_rgb(im))
        shown = max(i for i, t in enumerate(times) if t <= at_ms / 1000 + 1e-6)
        assert got == shown, (at_ms, got, shown)


@pytest.mark.ffmpeg
def test_tiktok_cover_of_a_silent_source_is_exact(tmp_path: Path) -> None:
    from PIL import Image

    from tests.test_cover import account, file_of, run_job, settings_for

    lib = tmp_path / "lib"
    lib.mkdir()
    indexed_clip(lib / "silent.mp4", fps=30, seconds=3.2, audio=False)
    m = run_job(settings_for(tmp_path, lib),
                [{"media": ["silent.mp4"], "cover_image": {"video_cover_timestamp_ms": 1000}}],
                [{"id": "tt", "platform": "tiktok"}])
    tt = account(m, "tt")
    assert tt["status"] == "ok", tt["errors"]
    delivered = file_of(tt["media"][0]["uri"])
    times = player_frame_times(delivered)
    with Image.open(file_of(tt["cover"]["uri"])) as im:
        got = index_of(mean_rgb(im, (0.45, 0.45, 0.55, 0.55)))
    assert got == max(i for i, t in enumerate(times) if t <= 1.0 + 1e-6)


# --------------------------------------------------------------------------- ftyp brands


def ftyp_brands(path: Path) -> tuple[bytes, list[bytes]]:
    """The major and compatible brands, read from the file's first box."""
    head = path.read_bytes()[:4096]
    size, kind = struct.unpack(">I4s", head[:8])
    assert kind == b"ftyp"
    body = head[8:size]
    return body[:4], [body[i:i + 4] for i in range(8, len(body), 4)]


def test_foreign_brands_are_replaced_in_place() -> None:
    body = b"isom\x00\x00\x02\x00isomdby1iso2avc1mp41"
    fixed = own_brands(body)
    assert len(fixed) == len(body)
    assert fixed == b"isom\x00\x00\x02\x00isommp42iso2avc1mp41"
    assert own_brands(b"qt  \x00\x00\x00\x00qt  ") == b"isom\x00\x00\x00\x00mp42"
    # iso4 (negative composition offsets) moves from major to compatible: AtomicParsley
    # refuses an iso4 major brand.
    assert own_brands(b"iso4\x00\x00\x02\x00iso4isomiso2avc1mp41") == (
        b"isom\x00\x00\x02\x00iso4isomiso2avc1mp41")
    assert own_brands(b"iso4\x00\x00\x02\x00isomiso2avc1mp41") == (
        b"isom\x00\x00\x02\x00iso4iso2avc1mp41")
    assert own_brands(b"iso4\x00\x00\x02\x00avc1avc1") == b"isom\x00\x00\x02\x00avc1iso4"


@pytest.mark.ffmpeg
def test_dolby_vision_source_tone_mapped_declares_no_dolby_brand(corpus: Path,
                                                                 tmp_path: Path) -> None:
    src = corpus / "videos" / "dolbyVision-hdr.MOV"
    out = _render(src, "instagram-reels", tmp_path / "out.mp4")
    major, compatible = ftyp_brands(out)
    assert major == b"isom"
    assert b"dby1" not in compatible and b"avc1" in compatible
    assert set(compatible) <= {b"isom", b"iso2", b"iso4", b"avc1", b"mp41", b"mp42"}
    v = next(s for s in ffprobe_streams(out) if s["codec_type"] == "video")
    assert v["codec_name"] == "h264" and v.get("color_transfer") == "bt709"


def ffprobe_streams(path: Path) -> list[dict[str, Any]]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
                         capture_output=True, check=True, text=True).stdout
    streams: list[dict[str, Any]] = json.loads(out)["streams"]
    return streams


# --------------------------------------------------------------------------- CFR in the VUI


def vui_timing(path: Path) -> dict[str, int]:
    """The SPS VUI timing fields, read from the H.264 bitstream (trace_headers)."""
    proc = subprocess.run(["ffmpeg", "-hide_banner", "-i", str(path), "-map", "0:v:0", "-c",
                           "copy", "-bsf:v", "trace_headers", "-f", "null", "-"],
                          capture_output=True, check=True, text=True)
    fields: dict[str, int] = {}
    for line in proc.stderr.splitlines():
        parts = line.split()
        for name in ("timing_info_present_flag", "num_units_in_tick", "time_scale",
                     "fixed_frame_rate_flag"):
            if name in parts and name not in fields:
                fields[name] = int(parts[-1])
    return fields


@pytest.mark.ffmpeg
@pytest.mark.parametrize("fps", ["24000/1001", "30", "60"])
def test_reencode_declares_a_fixed_frame_rate(tmp_path: Path, fps: str) -> None:
    src = tmp_path / "src.webm"
    _ffmpeg("-f", "lavfi", "-i", f"testsrc2=s=160x90:r={fps}:d=0.5", "-c:v", "libvpx-vp9",
            "-deadline", "realtime", "-cpu-used", "8", str(src))
    out = _render(src, "instagram-reels", tmp_path / "out.mp4")
    vui = vui_timing(out)
    assert vui["timing_info_present_flag"] == 1 and vui["fixed_frame_rate_flag"] == 1
    # a frame lasts two ticks (one per field)
    assert Fraction(vui["time_scale"], 2 * vui["num_units_in_tick"]) == Fraction(fps)


# --------------------------------------------------------------------------- truncated Matroska


def _matroska(out: Path, *, live: bool = False) -> Path:
    codecs = (["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-c:a",
               "libopus"] if out.suffix == ".webm"
              else ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"])
    args = ["ffmpeg", "-hide_banner", "-v", "error", "-y", "-f", "lavfi", "-i",
            "testsrc2=s=160x90:r=30:d=2", "-f", "lavfi", "-i", "sine=d=2", *codecs]
    if live:  # written to a pipe: the Segment's size is unknown
        with out.open("wb") as fh:
            subprocess.run([*args, "-f", "webm" if out.suffix == ".webm" else "matroska", "-"],
                           stdout=fh, check=True)
    else:
        subprocess.run([*args, str(out)], check=True)
    return out


def _unknown_size_clusters(path: Path) -> Path:
    """The same file with every Cluster's size set to "unknown" (all value bits set, in the
    same number of bytes), as a live recorder writes them."""
    data = bytearray(path.read_bytes())
    cluster = bytes.fromhex("1F43B675")
    at = data.find(cluster)
    patched = 0
    while at >= 0:
        size_len = 9 - data[at + 4].bit_length()
        data[at + 4:at + 4 + size_len] = bytes([0xFF >> (size_len - 1)]) + b"\xff" * (
            size_len - 1)
        patched += 1
        at = data.find(cluster, at + 4)
    assert patched >= 1
    out = path.with_name("unknown-clusters-" + path.name)
    out.write_bytes(bytes(data))
    return out


@pytest.mark.ffmpeg
@pytest.mark.parametrize("name", ["clip.webm", "clip.mkv", "live.webm", "live.mkv"])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_matroska_is_corrupt_media_at_probe(tmp_path: Path, name: str,
                                                      keep: float) -> None:
    whole = _matroska(tmp_path / name.replace("live.", "live-"), live=name.startswith("live"))
    probe(whole)  # the whole file is fine, live (unknown sizes) or not
    data = whole.read_bytes()
    cut = tmp_path / ("cut-" + whole.name)
    cut.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(CorruptMedia) as err:
        probe(cut)
    assert err.value.code == "corrupt_media" and err.value.http_status == 400


@pytest.mark.ffmpeg
def test_live_matroska_with_unknown_size_clusters_is_not_refused(tmp_path: Path) -> None:
    live = _unknown_size_clusters(_matroska(tmp_path / "live.webm", live=True))
    info = probe(live)
    assert info.video is not None and (info.duration_s or 0) > 1.5
    data = live.read_bytes()
    cut = tmp_path / "cut.webm"
    cut.write_bytes(data[:int(len(data) * 0.7)])
    with pytest.raises(CorruptMedia):
        probe(cut)


@pytest.mark.ffmpeg
def test_truncated_webm_fails_before_any_encode(tmp_path: Path) -> None:
    from tests.test_cover import account, run_job, settings_for

    lib = tmp_path / "lib"
    lib.mkdir()
    data = _matroska(tmp_path / "clip.webm").read_bytes()
    (lib / "cut.webm").write_bytes(data[:len(data) // 2])
    m = run_job(settings_for(tmp_path, lib), [{"media": ["cut.webm"]}],
                [{"id": "ig", "platform": "instagram"}])
    ig = account(m, "ig")
    assert ig["status"] == "failed"
    assert [e["code"] for e in ig["errors"]] == ["corrupt_media"]
    assert ig["errors"][0]["http_status"] == 400
