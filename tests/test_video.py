"""Video conformance on real ffmpeg: generated clips and the shared corpus, outputs checked the
way a platform's ingest would (ffprobe facts, packets, boxes, decoded pixels and samples).

Clips are tiny (a few hundred pixels, about a second) and encodes use x264 ``veryfast``: the
tests are about what the output *is*, not how good it looks.
"""

from __future__ import annotations

import array
import dataclasses
import functools
import hashlib
import itertools
import json
import math
import shutil
import stat
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pipeline import ffmpeg
from pipeline.errors import ConfigError, CorruptMedia, FFmpegError, FFmpegTimeout
from pipeline.job import parse_job
from pipeline.models import JobEvent, MediaInfo
from pipeline.outputs import verify
from pipeline.plan import VideoTarget, merge_video_targets, plan_video, target_key
from pipeline.presets import VideoSpec, load_presets
from pipeline.probe import probe
from pipeline.runner import process
from pipeline.settings import Settings
from pipeline.video import loudness_args, parse_loudness, render_shared, render_video
from tests.support.media import (
    FRAME_COLOURS,
    GREY,
    QUADRANTS,
    _boxes,
    close,
    colour_runs,
    display_matrix,
    displayed_quadrants,
    ffprobe_json,
    frame_times,
    keyframe_times,
    make_animation,
    quadrant_colours,
    stream_packets,
    video_packets,
)

pytestmark = pytest.mark.ffmpeg

REPO = Path(__file__).resolve().parent.parent
PRESETS = load_presets()
VIDEO_VARIANTS = sorted(v.id for p in PRESETS for v in p.variants.values() if v.kind == "video")
X264 = "veryfast"


def spec_of(variant_id: str) -> VideoSpec:
    found = PRESETS.find_variant(variant_id)
    assert found is not None and found[1].video is not None
    return found[1].video


@dataclasses.dataclass
class Delivered:
    target: VideoTarget
    actions: list[str]
    path: Path
    info: MediaInfo
    source: MediaInfo


def deliver(src: Path, variant: str, tmp_path: Path, *, trim_s: float | None = None,
            spec: VideoSpec | None = None, **render: Any) -> Delivered:
    """Plan and render ``src`` for one variant, then verify it like the runner does."""
    info = probe(src)
    spec = spec or spec_of(variant)
    limits = PRESETS.find_variant(variant)[0].limits  # type: ignore[index]
    max_bytes = min(spec.max_bytes, limits.max_video_bytes or spec.max_bytes)
    target, actions, _ = plan_video(info, spec, max_bytes=max_bytes, trim_s=trim_s,
                                    from_image=info.kind == "image", x264_preset=X264)
    out = tmp_path / f"{variant}-{target_key('t', target)[:8]}.mp4"
    result = render_video(src, info.format_name, target, out, duration_s=info.duration_s or 0,
                          timeout_s=120, **render)
    out_info = probe(result.path)
    assert verify.check_video(out_info, spec, target, info.duration_s or 0) == []
    return Delivered(target, actions + list(result.extra_actions), result.path, out_info, info)


def platform_checks(path: Path, *, duration_s: float, encoded: bool = True,
                    gop_max_s: float = 2.0, spec: VideoSpec | None = None) -> dict[str, Any]:
    """What an ingest checks, straight from ffprobe and the file's boxes (not our probe).

    Our encodes are H.264 High yuv420p BT.709; a stream copy keeps any codec and pixel format
    the variant (``spec``) allows.
    """
    data = ffprobe_json(path)
    assert "mp4" in data["format"]["format_name"]
    v = next(s for s in data["streams"] if s["codec_type"] == "video")
    if encoded or spec is None:
        assert v["codec_name"] == "h264" and v["pix_fmt"] == "yuv420p"
    else:
        assert v["codec_name"] in spec.codecs and v["pix_fmt"] in spec.pix_fmts
    if encoded:
        assert v["profile"] == "High"
        assert (v.get("color_primaries"), v.get("color_transfer"), v.get("color_space")) == (
            "bt709", "bt709", "bt709")
        assert v.get("color_range") == "tv"
    assert v.get("sample_aspect_ratio", "1:1") in ("1:1", "0:1")
    assert v.get("field_order", "progressive") == "progressive"
    assert not any(d.get("side_data_type") == "Display Matrix"
                   for d in v.get("side_data_list", []))
    assert v["width"] % 2 == 0 and v["height"] % 2 == 0
    # moov before mdat (+faststart) and no edit list anywhere in the moov
    raw = path.read_bytes()
    top = [kind for kind, _, _ in _boxes(raw, 0, len(raw))]
    assert top.index(b"moov") < top.index(b"mdat")
    assert b"elst" not in raw[raw.index(b"moov"):raw.index(b"mdat")]
    # constant frame rate and keyframes at most gop_max_s apart (to the end of the stream)
    packets = video_packets(path, hashes=False)
    times = sorted(float(p["pts_time"]) for p in packets)
    deltas = [b - a for a, b in itertools.pairwise(times)]
    if deltas:
        assert max(deltas) - min(deltas) < 0.002, "variable frame rate"
    keys = sorted(float(p["pts_time"]) for p in packets if "K" in p["flags"])
    end = times[-1] + (deltas[0] if deltas else 0)
    marks = [*keys, end]
    assert keys[0] == times[0]
    assert max(b - a for a, b in itertools.pairwise(marks)) <= gop_max_s + 0.002
    # the picture lasts as long as the source (give or take a frame)...
    frame = deltas[0] if deltas else 0.1
    assert abs(end - times[0] - duration_s) <= max(0.05, 1.5 * frame)
    # ...and without an edit list it may start after the B-frame reorder delay (2 frames)
    fps = Fraction(v["avg_frame_rate"])
    assert float(v.get("start_time", 0)) <= max(0.1, 3 / float(fps))
    # (the container's duration is printed in whole milliseconds: one of rounding)
    assert float(data["format"]["duration"]) <= duration_s + times[0] + 2 * frame + 0.001
    return data


def audio_rms(path: Path) -> list[float]:
    """Per-channel RMS of the first audio track, decoded to float samples."""
    info = ffprobe_json(path)
    a = next(s for s in info["streams"] if s["codec_type"] == "audio")
    channels = int(a["channels"])
    done = ffmpeg.run([ffmpeg.ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:a:0",
                       "-f", "f32le", "-acodec", "pcm_f32le", "-"], timeout_s=60)
    samples = array.array("f")
    samples.frombytes(done.stdout[:len(done.stdout) // 4 * 4])
    return [math.sqrt(sum(x * x for x in samples[c::channels]) / max(1, len(samples) // channels))
            for c in range(channels)]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class FFmpegSpy:
    """Records every argv pipeline.ffmpeg.run is given (ffprobe included)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[list[str]] = []
        real = ffmpeg.run

        def spy(args: list[str], **kw: Any) -> Any:
            self.calls.append(list(args))
            return real(args, **kw)

        monkeypatch.setattr(ffmpeg, "run", spy)

    def ffmpeg_runs(self) -> list[list[str]]:
        return [c for c in self.calls if not Path(c[0]).name.startswith("ffprobe")]

    def encodes(self) -> list[list[str]]:
        return [c for c in self.calls if "libx264" in c]

    def writes(self) -> list[list[str]]:
        """ffmpeg runs that write a file: not the decode proof of a stream copy (to null)."""
        return [c for c in self.ffmpeg_runs() if c[-3:] != ["-f", "null", "-"]]

    def decode_proofs(self) -> list[list[str]]:
        return [c for c in self.ffmpeg_runs() if "-xerror" in c and c[-3:] == ["-f", "null", "-"]]


# --------------------------------------------------------------------------- runner helpers


def override_preset(folder: Path, platform: str, changes: list[tuple[str, str]]) -> Path:
    """Write ``platform``.toml into ``folder`` with exact text replacements (each found once)."""
    folder.mkdir(parents=True, exist_ok=True)
    text = (REPO / "presets" / f"{platform}.toml").read_text()
    for old, new in changes:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    (folder / f"{platform}.toml").write_text(text)
    return folder


def run_job(tmp_path: Path, files: dict[str, Path], accounts: list[dict[str, Any]], *,
            content: list[dict[str, Any]] | None = None, presets_dir: Path | None = None,
            policy: str | None = None,
            on_event: Callable[[JobEvent], None] | None = None) -> dict[str, Any]:
    lib = tmp_path / "lib"
    lib.mkdir(parents=True, exist_ok=True)
    for name, path in files.items():
        shutil.copyfile(path, lib / name)
    presets = load_presets(presets_dir)
    body: dict[str, Any] = {"workspace_id": "w", "id": "video-test",
                            "content": content or [{"media": list(files)}],
                            "accounts": accounts}
    if policy:
        body["conform"] = {"duration_policy": policy}
    job = parse_job(body, presets)
    settings = Settings(workdir=tmp_path / "work", library=f"file://{lib}/{{id}}",
                        dest=str(tmp_path / "out"), x264_preset=X264, presets_dir=presets_dir)
    manifest: dict[str, Any] = process(job, settings=settings, presets=presets,
                                       on_event=on_event).to_dict()
    return manifest


def media_of(manifest: dict[str, Any], account: str) -> list[dict[str, Any]]:
    acc = next(a for a in manifest["accounts"] if a["account_id"] == account)
    assert acc["status"] == "ok", acc["errors"]
    return list(acc["media"])


def file_of(entry: dict[str, Any]) -> Path:
    return Path(entry["uri"][len("file://"):])


# --------------------------------------------------------------------------- geometry


@pytest.mark.parametrize(("rotate", "mirror"), [
    (90, False), (180, False), (270, False),                 # phones: portrait, upside down
    (0, True), (90, True), (180, True), (270, True),         # mirrored (front cameras, edits)
])
def test_display_matrix_applied_to_pixels(make_clip: Any, tmp_path: Path, rotate: int,
                                          mirror: bool) -> None:
    src = make_clip(width=192, height=108, seconds=0.5, fps=10, audio=None, pattern="quadrants",
                    rotate=rotate, mirror=mirror)
    info = probe(src)
    assert info.video is not None and (info.video.rotation_deg or info.video.mirrored)
    d = deliver(src, "telegram-video", tmp_path)
    assert "rotated" in d.actions
    want = (108, 192) if rotate in (90, 270) else (192, 108)
    assert (d.info.width, d.info.height) == want
    platform_checks(d.path, duration_s=0.5)
    got = quadrant_colours(d.path)
    expected = displayed_quadrants(display_matrix(rotate, mirror))
    assert all(close(got[q], expected[q]) for q in expected), (got, expected)


def test_corpus_rotate_and_reflect_is_the_transpose_we_test(corpus: Path, tmp_path: Path) -> None:
    src = corpus / "videos" / "sample_rotate_and_reflect.mp4"
    info = probe(src)
    assert info.video is not None and info.video.mirrored
    # the same matrix as the generated rotate=90 + mirror clip above: [0 1; 1 0]
    assert info.video.display_matrix == display_matrix(90, mirror=True)
    d = deliver(src, "twitter-video", tmp_path)
    assert (d.info.width, d.info.height) == (720, 1080)
    platform_checks(d.path, duration_s=info.duration_s or 0)


def test_anamorphic_made_square(make_clip: Any, tmp_path: Path) -> None:
    src = make_clip(width=240, height=180, seconds=0.5, fps=10, audio=None, pattern="quadrants",
                    sar=(4, 3))
    d = deliver(src, "telegram-video", tmp_path)
    assert "square_pixels" in d.actions and (d.info.width, d.info.height) == (320, 180)
    platform_checks(d.path, duration_s=0.5)
    got = quadrant_colours(d.path)
    assert all(close(got[q], QUADRANTS[q]) for q in QUADRANTS), got


def test_odd_size_vp9_webm_opus(make_clip: Any, tmp_path: Path) -> None:
    src = make_clip(width=161, height=121, seconds=0.6, codec="vp9", container="webm",
                    audio="stereo", audio_codec="opus")
    d = deliver(src, "twitter-video", tmp_path)
    assert (d.info.width % 2, d.info.height % 2) == (0, 0)
    data = platform_checks(d.path, duration_s=0.6)
    a = next(s for s in data["streams"] if s["codec_type"] == "audio")
    assert (a["codec_name"], a["profile"], a["sample_rate"], a["channels"]) == (
        "aac", "LC", "48000", 2)


def test_avi_mpeg4_part2_keeps_44k1(make_clip: Any, tmp_path: Path) -> None:
    src = make_clip(width=320, height=240, seconds=0.6, codec="mpeg4", container="avi",
                    audio="stereo", audio_codec="mp3", audio_rate=44100)
    d = deliver(src, "twitter-video", tmp_path)
    data = platform_checks(d.path, duration_s=0.6)
    a = next(s for s in data["streams"] if s["codec_type"] == "audio")
    assert (a["codec_name"], a["sample_rate"]) == ("aac", "44100")  # X allows 44.1 kHz


def test_444_becomes_420_high(make_clip: Any, tmp_path: Path) -> None:
    src = make_clip(width=320, height=180, seconds=0.5, codec="h264_444", pix_fmt="yuv444p",
                    container="mkv", audio=None)
    assert probe(src).video.profile == "High 4:4:4 Predictive"  # type: ignore[union-attr]
    d = deliver(src, "instagram-reels", tmp_path)
    # blurred 9:16 (320x568), upscaled to Reels' recommended minimum (issue 23.4)
    assert (d.info.width, d.info.height) == (540, 960)
    platform_checks(d.path, duration_s=0.5)


def test_full_range_bt601_to_limited_bt709(make_clip: Any, tmp_path: Path) -> None:
    src = make_clip(width=320, height=180, seconds=0.5, audio=None, pattern="quadrants",
                    pix_fmt="yuvj420p")
    assert probe(src).video.color_range == "pc"  # type: ignore[union-attr]
    d = deliver(src, "twitter-video", tmp_path)
    platform_checks(d.path, duration_s=0.5)
    got = quadrant_colours(d.path)
    assert all(close(got[q], QUADRANTS[q], 12) for q in QUADRANTS), got


# --------------------------------------------------------------------------- colour


@pytest.mark.parametrize("hdr", ["hlg", "pq"])
def test_hdr_tone_mapped_to_sdr_bt709(make_clip: Any, tmp_path: Path, hdr: str) -> None:
    src = make_clip(width=256, height=144, seconds=0.5, fps=10, audio=None, codec="hevc",
                    pix_fmt="yuv420p10le", hdr=hdr, pattern="quadrants")
    info = probe(src)
    assert info.video is not None and info.video.hdr and info.video.bit_depth == 10
    # Shown without tone-mapping the picture is washed out: the test can tell.
    naive = quadrant_colours(src)
    assert not all(close(naive[q], QUADRANTS[q]) for q in QUADRANTS)
    d = deliver(src, "telegram-video", tmp_path)
    assert "tone_mapped" in d.actions
    assert d.info.video is not None and not d.info.video.hdr
    platform_checks(d.path, duration_s=0.5)
    got = quadrant_colours(d.path)
    # close to the SDR original, and the grey stays grey (no purple or green cast)
    assert all(close(got[q], QUADRANTS[q], 30) for q in QUADRANTS), got
    r, g, b = got["br"]
    assert max(r, g, b) - min(r, g, b) < 10 and close(got["br"], GREY, 15)


# --------------------------------------------------------------------------- time


def test_vfr_becomes_cfr(make_clip: Any, tmp_path: Path) -> None:
    src = make_clip(width=160, height=90, seconds=1.0, audio=None, vfr=True)
    info = probe(src)
    assert info.video is not None and info.video.vfr
    d = deliver(src, "facebook-reels", tmp_path)  # "fixed frame rate" 24-60
    assert "fps_changed" in d.actions and d.info.video.fps == 30  # type: ignore[union-attr]
    platform_checks(d.path, duration_s=d.source.duration_s or 0)  # its last frames were dropped


def test_interlaced_is_deinterlaced(make_clip: Any, tmp_path: Path) -> None:
    src = make_clip(width=320, height=240, seconds=0.5, audio=None, interlaced=True)
    assert probe(src).video.interlaced  # type: ignore[union-attr]
    d = deliver(src, "twitter-video", tmp_path)
    assert "deinterlaced" in d.actions
    platform_checks(d.path, duration_s=0.5)  # field_order progressive


@pytest.mark.parametrize(("fps", "variant", "want"), [
    (120, "twitter-video", 60),       # above 60: every second frame
    (15, "instagram-reels", 30),      # below 23: every frame twice
])
def test_frame_rate_clamped(make_clip: Any, tmp_path: Path, fps: int, variant: str,
                            want: int) -> None:
    src = make_clip(width=160, height=90, seconds=0.5, fps=fps, audio=None)
    d = deliver(src, variant, tmp_path)
    assert d.info.video is not None and d.info.video.fps == want
    platform_checks(d.path, duration_s=0.5)
    assert abs(len(frame_times(d.path)) - want * 0.5) <= 1


def test_keyframes_every_two_seconds(make_clip: Any, tmp_path: Path) -> None:
    src = make_clip(width=160, height=90, seconds=4.5, fps=10, audio=None, gop=250)
    assert probe(src).video.max_keyframe_interval_s > 4  # type: ignore[union-attr,operator]
    d = deliver(src, "twitter-video", tmp_path)
    assert d.target.action == "transcode"  # the GOP alone makes it re-encode
    platform_checks(d.path, duration_s=4.5)
    assert len(keyframe_times(d.path)) >= 3


def test_offset_start_normalised(corpus: Path, make_clip: Any, tmp_path: Path) -> None:
    bbb = corpus / "videos" / "bbb_800x640_768kbps_30fps_avc_2b_firstpts_10_sec.mp4"
    info = probe(bbb)
    assert info.start_time_s == 10 and info.duration_s == 4
    d = deliver(bbb, "twitter-video", tmp_path)
    assert (d.info.width, d.info.height) == (1136, 640)  # SAR 1137:800 made square
    platform_checks(d.path, duration_s=4.0)
    # a conformant stream at 10 s in a Matroska file is only remuxed, and starts at 0
    mkv = make_clip(width=160, height=90, seconds=1.0, fps=10, container="mkv", gop=10,
                    start_s=10)
    assert probe(mkv).start_time_s >= 9.9
    r = deliver(mkv, "twitter-video", tmp_path)
    assert r.target.action == "remux"
    platform_checks(r.path, duration_s=1.0, encoded=False)


# --------------------------------------------------------------------------- audio


def test_51_downmixed_to_stereo(make_clip: Any, tmp_path: Path) -> None:
    src = make_clip(width=160, height=90, seconds=0.6, audio="5.1", centre_only_audio=True)
    assert probe(src).audio.channels == 6  # type: ignore[union-attr]
    d = deliver(src, "twitter-video", tmp_path)
    left, right = audio_rms(d.path)
    # the front-centre tone is in both channels (a "first two channels" copy would be silent)
    assert left > 0.1 and right > 0.1 and abs(left - right) < 0.02


def test_missing_audio_stays_missing(make_clip: Any, tmp_path: Path) -> None:
    src = make_clip(width=160, height=90, seconds=0.5, codec="vp9", container="webm", audio=None)
    d = deliver(src, "tiktok-video", tmp_path)
    assert d.info.audio is None
    assert not any(s["codec_type"] == "audio" for s in ffprobe_json(d.path)["streams"])


def test_required_audio_added_as_silence(make_clip: Any, tmp_path: Path) -> None:
    presets = override_preset(tmp_path / "presets", "telegram", [
        ('[variants.video.video.audio]\ncodecs = ["aac"]',
         '[variants.video.video.audio]\ncodecs = ["aac"]\nrequired = true')])
    src = make_clip(width=320, height=180, seconds=1.0, audio=None, gop=30)
    m = run_job(tmp_path, {"clip.mp4": src}, [{"id": "tg", "platform": "telegram"}],
                presets_dir=presets)
    entry = media_of(m, "tg")[0]
    assert "audio_added" in entry["actions"]
    out = file_of(entry)
    data = platform_checks(out, duration_s=1.0, encoded=False)
    a = next(s for s in data["streams"] if s["codec_type"] == "audio")
    assert (a["codec_name"], a["channels"]) == ("aac", 2)
    assert abs(float(a["duration"]) - 1.0) < 0.1
    assert max(audio_rms(out)) < 1e-3  # silence
    # the picture was copied, not re-encoded
    assert [p["data_hash"] for p in video_packets(out)] == [
        p["data_hash"] for p in video_packets(src)]


def test_loudnorm_two_pass(make_clip: Any, tmp_path: Path) -> None:
    src = make_clip(width=160, height=90, seconds=3.0, fps=10, audio="stereo", gop=10)
    spec = spec_of("twitter-video")
    spec = dataclasses.replace(spec, audio=dataclasses.replace(spec.audio, loudnorm=True))
    before = parse_loudness(ffmpeg.run(loudness_args(src, "mp4", trim_s=None),
                                       timeout_s=60).stderr_tail)
    assert before is not None and before.input_i < -16
    d = deliver(src, "twitter-video", tmp_path, spec=spec)
    assert d.target.action == "audio_only" and "loudness_normalised" in d.actions
    after = parse_loudness(ffmpeg.run(loudness_args(d.path, "mp4", trim_s=None),
                                      timeout_s=60).stderr_tail)
    assert after is not None and abs(after.input_i - -14.0) < 1.5


# --------------------------------------------------------------------------- least work


def _conformant(make_clip: Any, **kw: Any) -> Path:
    """H.264 High, 2 keyframes a second, AAC-LC 48 kHz stereo, moov first, no edit list."""
    kw.setdefault("edit_list", False)
    return make_clip(width=320, height=180, seconds=1.0, gop=30, **kw)  # type: ignore[no-any-return]


def test_passthrough_is_the_same_samples_and_runs_no_ffmpeg(make_clip: Any, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    # Not the same file bytes any more (issue #12 item 4: only the boxes a player needs are
    # kept), but the very same packets, timestamps and flags, and no ffmpeg process.
    src = _conformant(make_clip)
    spy = FFmpegSpy(monkeypatch)
    m = run_job(tmp_path, {"clip.mp4": src}, [{"id": "x", "platform": "x"}])
    entry = media_of(m, "x")[0]
    assert entry["actions"] == ["passed_through"]
    out = file_of(entry)
    assert entry["sha256"] == sha256(out)
    for stream in ("v:0", "a:0"):
        assert stream_packets(out, stream) == stream_packets(src, stream)
    assert spy.writes() == []  # no remux, no encode: ffprobe, and the decode proof
    assert len(spy.decode_proofs()) == 1


@pytest.mark.parametrize("kind", ["moov_at_end", "mov"])
def test_remux_copies_the_streams(make_clip: Any, tmp_path: Path, kind: str,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    src = (_conformant(make_clip, faststart=False) if kind == "moov_at_end"
           else _conformant(make_clip, container="mov"))
    spy = FFmpegSpy(monkeypatch)
    m = run_job(tmp_path, {"clip.bin": src}, [{"id": "x", "platform": "x"}])
    entry = media_of(m, "x")[0]
    assert entry["actions"] == ["remuxed"] and entry["mime"] == "video/mp4"
    out = file_of(entry)
    assert spy.encodes() == [] and len(spy.writes()) == 1  # one stream copy
    assert len(spy.decode_proofs()) == 1  # which is proved to decode
    # the very same video packets: nothing was re-encoded
    src_packets, out_packets = video_packets(src), video_packets(out)
    assert [p["data_hash"] for p in out_packets] == [p["data_hash"] for p in src_packets]
    keep = ("codec_name", "profile", "level", "width", "height", "pix_fmt", "r_frame_rate",
            "nb_frames")
    vs = [next(s for s in ffprobe_json(f)["streams"] if s["codec_type"] == "video")
          for f in (src, out)]
    assert {k: vs[0].get(k) for k in keep} == {k: vs[1].get(k) for k in keep}
    platform_checks(out, duration_s=1.0, encoded=False)


def test_audio_only_reencodes_only_the_audio(make_clip: Any, tmp_path: Path) -> None:
    src = _conformant(make_clip, audio="stereo", audio_codec="mp3", audio_rate=44100)
    d = deliver(src, "facebook-reels", tmp_path, spec=dataclasses.replace(
        spec_of("facebook-reels"), aspect_min=None, aspect_max=None, target_aspect=None,
        min_width=2, min_height=2, recommended_min_width=None, recommended_min_height=None))
    assert d.target.action == "audio_only"
    assert [p["data_hash"] for p in video_packets(d.path)] == [
        p["data_hash"] for p in video_packets(src)]
    a = next(s for s in ffprobe_json(d.path)["streams"] if s["codec_type"] == "audio")
    assert (a["codec_name"], a["sample_rate"]) == ("aac", "48000")  # FB Reels: 48 kHz only


def test_one_decode_for_several_targets(make_clip: Any, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_clip(width=320, height=180, seconds=4.0, fps=10, codec="vp9", container="webm",
                    audio="stereo", audio_codec="opus")
    spy = FFmpegSpy(monkeypatch)
    events: list[JobEvent] = []
    m = run_job(tmp_path, {"clip.webm": src}, [{"id": "tt", "platform": "tiktok"},
                                               {"id": "x", "platform": "x"},
                                               {"id": "pin", "platform": "pinterest"}],
                on_event=events.append)
    outs = {a: file_of(media_of(m, a)[0]) for a in ("tt", "x", "pin")}
    # Two different targets (TikTok's upscaled 360 px, Pinterest's 30 fps); X takes
    # Pinterest's output, which passes X's own rules (docs/media.md, "One output for several
    # accounts"), instead of a third encode.
    assert len({outs["tt"], outs["pin"]}) == 2 and outs["x"] == outs["pin"]
    encodes = spy.encodes()
    assert len(encodes) == 1  # ...from one ffmpeg process: one decode, split two ways
    assert encodes[0].count("-i") == 1 and all(str(p.name) in " ".join(encodes[0])
                                               for p in outs.values())
    made_by = {"tt": "tiktok-video", "x": "pinterest-video", "pin": "pinterest-video"}
    for account, variant in (("tt", "tiktok-video"), ("x", "twitter-video"),
                             ("pin", "pinterest-video")):
        platform_checks(outs[account], duration_s=4.0)
        made = plan_video(probe(src), spec_of(made_by[account]), max_bytes=10**9, trim_s=None,
                          from_image=False, x264_preset=X264)[0]
        assert verify.check_video(probe(outs[account]), spec_of(variant), made, 4.0) == []
    # TikTok 360 px minimum (upscaled), Pinterest 23 fps minimum
    assert probe(outs["tt"]).width == 360 and probe(outs["pin"]).video.fps == 30  # type: ignore[union-attr]
    progress = [e.pct for e in events if e.stage == "encode" and e.pct is not None]
    assert progress and progress[-1] == 1.0


def test_progress_reported(make_clip: Any, tmp_path: Path) -> None:
    src = make_clip(width=160, height=90, seconds=2.0, fps=10, codec="vp9", container="webm",
                    audio=None)
    seen: list[float] = []
    deliver(src, "twitter-video", tmp_path, on_progress=seen.append)
    assert len(seen) >= 2 and seen == sorted(seen) and seen[-1] == 1.0


# --------------------------------------------------------------------------- animations


def test_gif_becomes_mp4_where_gifs_are_not_taken(make_clip: Any, tmp_path: Path) -> None:
    gif = make_clip(width=160, height=90, seconds=3.2, fps=10, codec="gif", container="gif",
                    audio=None)
    m = run_job(tmp_path, {"anim.gif": gif}, [
        {"id": "bs", "platform": "bluesky"},
        {"id": "ig", "platform": "instagram", "settings": {"post_type": "POST"}}])
    for account in ("bs", "ig"):
        entry = media_of(m, account)[0]
        assert entry["kind"] == "video" and entry["mime"] == "video/mp4"
        platform_checks(file_of(entry), duration_s=3.2)
    ig = media_of(m, "ig")[0]
    assert ig["height"] > ig["width"]  # the Reels variant: 9:16 with a blurred fill


def test_animated_webp_and_apng_become_mp4(corpus: Path, tmp_path: Path) -> None:
    images = corpus / "images"
    for name in ("iss634.webp", "iss634.apng"):
        d = deliver(images / name, "bluesky-video", tmp_path)
        assert d.target.from_image
        platform_checks(d.path, duration_s=d.source.duration_s or 0)
    assert list(tmp_path.glob("*.apng")) == []  # the WebP's intermediate frames are gone


def assert_frames_shown_for(path: Path, delays_ms: list[int], loops: int = 1) -> None:
    """Decoded from the output: frame i of the animation is on screen for its own delay
    (within one output frame), in order, for ``loops`` whole loops, and nothing else."""
    fps, runs = colour_runs(path)
    expected = [(i, d) for _ in range(loops) for i, d in enumerate(delays_ms)]
    assert [i for i, _ in runs] == [i for i, _ in expected], runs
    for (i, shown), (_, want_ms) in zip(runs, expected, strict=True):
        assert abs(shown / fps * 1000 - want_ms) <= 1000 / fps + 1, (i, shown, want_ms, runs)
    total_s = sum(n for _, n in runs) / fps
    assert abs(total_s - loops * sum(delays_ms) / 1000) <= 1 / fps + 1e-3, (total_s, runs)
    duration = float(ffprobe_json(path)["format"]["duration"])
    assert abs(duration - loops * sum(delays_ms) / 1000) <= 1 / fps + 0.01


# Uneven delays, each a few output frames long (an output frame is 33 ms at 30 fps).
UNEVEN_MS = [60, 70, 100, 230, 130, 60, 300]


@pytest.mark.parametrize("ext", [".gif", ".png", ".webp"])
def test_animation_frames_keep_their_own_delays(tmp_path: Path, ext: str) -> None:
    src = make_animation(tmp_path / f"uneven{ext}", UNEVEN_MS)
    assert probe(src).duration_s == pytest.approx(sum(UNEVEN_MS) / 1000)
    d = deliver(src, "bluesky-video", tmp_path)
    assert d.target.from_image
    platform_checks(d.path, duration_s=sum(UNEVEN_MS) / 1000)
    assert_frames_shown_for(d.path, UNEVEN_MS)


@pytest.mark.parametrize("ext", [".gif", ".png", ".webp"])
def test_tiny_frame_delays_are_shown_as_browsers_show_them(tmp_path: Path, ext: str) -> None:
    # Chromium and Firefox show a delay of 10 ms or less (0 included) for 100 ms.
    src = make_animation(tmp_path / f"tiny{ext}", [0, 10, 150, 60, 200])
    shown = [100, 100, 150, 60, 200]
    assert probe(src).duration_s == pytest.approx(sum(shown) / 1000)
    d = deliver(src, "bluesky-video", tmp_path)
    assert_frames_shown_for(d.path, shown)


def test_apng_default_image_is_not_a_frame(tmp_path: Path) -> None:
    # An APNG whose default image (what a plain PNG decoder shows) is not part of the
    # animation: players skip it, so the video never shows it, and it adds no time.
    from PIL import Image

    frames = [Image.new("RGB", (64, 48), FRAME_COLOURS[i]) for i in (7, 0, 1, 2)]
    src = tmp_path / "default.png"
    # Pillow gives the animation frames the first three delays
    frames[0].save(src, save_all=True, append_images=frames[1:], default_image=True,
                   duration=[300, 500, 400, 400], loop=0)
    assert probe(src).duration_s == pytest.approx(1.2)
    d = deliver(src, "bluesky-video", tmp_path)
    assert_frames_shown_for(d.path, [300, 500, 400])
    m = run_job(tmp_path, {"default.png": src},
                [{"id": "ig", "platform": "instagram", "settings": {"post_type": "REELS"}}])
    (entry,) = media_of(m, "ig")  # loops forever: 3 whole loops reach the Reel's 3 s
    assert_frames_shown_for(file_of(entry), [300, 500, 400], loops=3)


LOOP_MS = [300, 500, 400, 600, 200]  # 2.0 s: under a Reel's 3 s minimum


@pytest.mark.parametrize("ext", [".gif", ".png", ".webp"])
def test_endless_animation_delivered_as_whole_loops(tmp_path: Path, ext: str) -> None:
    src = make_animation(tmp_path / f"loop{ext}", LOOP_MS, loop=0)
    m = run_job(tmp_path, {f"loop{ext}": src},
                [{"id": "ig", "platform": "instagram", "settings": {"post_type": "REELS"}}])
    (entry,) = media_of(m, "ig")
    platform_checks(file_of(entry), duration_s=4.0)
    assert_frames_shown_for(file_of(entry), LOOP_MS, loops=2)  # ceil(3 / 2) whole loops
    (account,) = m["accounts"]
    assert any(w.startswith("looped_to_minimum") for w in account["warnings"])


@pytest.mark.parametrize(("ext", "loop"), [(".gif", None), (".png", 1), (".webp", 1),
                                           (".png", 2)])
def test_animation_that_does_not_loop_forever_is_still_too_short(tmp_path: Path, ext: str,
                                                                  loop: int) -> None:
    # Plays once (a GIF without a loop extension, a count of 1), or a finite count: its own
    # length, 2 s, is under a Reel's 3 s.
    src = make_animation(tmp_path / f"once{ext}", LOOP_MS, loop=loop)
    m = run_job(tmp_path, {f"once{ext}": src},
                [{"id": "ig", "platform": "instagram", "settings": {"post_type": "REELS"}}])
    (account,) = m["accounts"]
    assert account["status"] == "failed"
    assert [e["code"] for e in account["errors"]] == ["duration_out_of_range"]
    assert not list((tmp_path / "out").rglob("*.mp4"))


def test_webp_length_is_its_real_one_for_the_duration_rules(tmp_path: Path) -> None:
    # 30 frames of 60/70/100 ms: 2.3 s, under a Reel's 3 s (read as 30 x 100 ms = 3.0 s, it
    # used to pass and be delivered 3 s long).
    src = make_animation(tmp_path / "short.webp", [60, 70, 100] * 10, loop=1)
    m = run_job(tmp_path, {"short.webp": src},
                [{"id": "ig", "platform": "instagram", "settings": {"post_type": "REELS"}},
                 {"id": "bs", "platform": "bluesky"}])
    ig = next(a for a in m["accounts"] if a["account_id"] == "ig")
    assert [e["code"] for e in ig["errors"]] == ["duration_out_of_range"]
    (entry,) = media_of(m, "bs")
    assert float(ffprobe_json(file_of(entry))["format"]["duration"]) == pytest.approx(2.3,
                                                                                      abs=0.04)


# --------------------------------------------------------------------------- duration policy


def test_trim_policy(make_clip: Any, tmp_path: Path) -> None:
    presets = override_preset(tmp_path / "presets", "twitter", [
        ("max_duration_s = 140", "max_duration_s = 1")])
    src = make_clip(width=160, height=90, seconds=2.0, fps=10, gop=10)
    refused = run_job(tmp_path / "a", {"clip.mp4": src}, [{"id": "x", "platform": "x"}],
                      presets_dir=presets)
    assert refused["accounts"][0]["errors"][0]["code"] == "duration_out_of_range"
    m = run_job(tmp_path / "b", {"clip.mp4": src}, [{"id": "x", "platform": "x"}],
                presets_dir=presets, policy="trim")
    entry = media_of(m, "x")[0]
    # 10 fps without an edit list: the file may run 2 frames (B-frame delay) past the cut
    assert "trimmed" in entry["actions"] and 1000 <= entry["duration_ms"] <= 1300
    platform_checks(file_of(entry), duration_s=1.0)


# --------------------------------------------------------------------------- byte budget


def _telegram_cap(folder: Path, cap: int) -> Path:
    return override_preset(folder, "telegram", [
        ("max_video_bytes = 20_000_000", f"max_video_bytes = {cap}"),
        ("max_bytes = 20_000_000", f"max_bytes = {cap}")])


def test_byte_budget_squeezes_never_over_the_cap(make_clip: Any, tmp_path: Path) -> None:
    src = make_clip(width=640, height=360, seconds=3.0, pattern="noise", gop=30)
    assert src.stat().st_size > 400_000  # the source itself is over the cap
    m = run_job(tmp_path / "fits", {"clip.mp4": src}, [{"id": "tg", "platform": "telegram"}],
                presets_dir=_telegram_cap(tmp_path / "p1", 400_000))
    entry = media_of(m, "tg")[0]
    assert entry["bytes"] <= 400_000 and (entry["width"], entry["height"]) == (640, 360)
    platform_checks(file_of(entry), duration_s=3.0)
    # a tighter cap cannot hold 640x360 at a watchable bitrate: smaller picture, two-pass
    m = run_job(tmp_path / "shrinks", {"clip.mp4": src}, [{"id": "tg", "platform": "telegram"}],
                presets_dir=_telegram_cap(tmp_path / "p2", 110_000))
    entry = media_of(m, "tg")[0]
    assert entry["bytes"] <= 110_000 and entry["width"] < 640
    assert "resized" in entry["actions"] and "reencoded_for_byte_budget" in entry["warnings"]
    platform_checks(file_of(entry), duration_s=3.0)


def test_byte_budget_impossible_is_too_large(make_clip: Any, tmp_path: Path) -> None:
    src = make_clip(width=640, height=360, seconds=3.0, pattern="noise", gop=30)
    m = run_job(tmp_path, {"clip.mp4": src}, [{"id": "tg", "platform": "telegram"}],
                presets_dir=_telegram_cap(tmp_path / "p", 40_000))
    acc = m["accounts"][0]
    assert acc["status"] == "failed" and acc["media"] == []
    assert [e["code"] for e in acc["errors"]] == ["too_large"]
    assert not list((tmp_path / "out").glob("assets/**/*.mp4"))


def test_bitrate_cap_respected(make_clip: Any, tmp_path: Path) -> None:
    src = make_clip(width=320, height=180, seconds=2.0, pattern="noise", audio=None, gop=30)
    spec = dataclasses.replace(spec_of("linkedin-video"), max_bitrate_kbps=300, min_width=2,
                               min_height=2)
    d = deliver(src, "linkedin-video", tmp_path, spec=spec)
    v = next(s for s in ffprobe_json(d.path)["streams"] if s["codec_type"] == "video")
    assert int(v["bit_rate"]) <= 300_000


# --------------------------------------------------------------------------- failures


def _fake_ffmpeg(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "fake-ffmpeg"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


E = TypeVar("E", bound=Exception)


def _failed_render(src: Path, info: MediaInfo, target: VideoTarget, tmp_path: Path,
                   error: type[E], *, timeout_s: float, duration_s: float = 0.5) -> E:
    """Render ``src`` expecting ``error``: the error, once no file is seen left behind (no
    partial output, no pass logs)."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(error) as caught:
        render_video(src, info.format_name, target, out_dir / "o.mp4", duration_s=duration_s,
                     timeout_s=timeout_s)
    assert list(out_dir.iterdir()) == []
    return caught.value


def _encode_target(src: Path) -> tuple[MediaInfo, VideoTarget]:
    info = probe(src)
    target, _, _ = plan_video(info, spec_of("twitter-video"), max_bytes=10**9, trim_s=None,
                              from_image=False, x264_preset=X264)
    assert target.action == "transcode"
    return info, target


def test_ffmpeg_crash_is_processing_failed_with_stderr(make_clip: Any, tmp_path: Path,
                                                       use_ffmpeg: Any) -> None:
    src = make_clip(width=160, height=90, seconds=0.5, codec="vp9", container="webm", audio=None)
    info, target = _encode_target(src)
    # the encoder dies after writing half a file; the source itself decodes fine
    use_ffmpeg(_fake_ffmpeg(tmp_path, 'case "$*" in *-xerror*) exit 0;;\n'
                             '*-encoders*) exec ffmpeg "$@";; esac\n'  # asked after a failure
                             'for last; do :; done; echo partial > "$last"\n'
                             'echo "x264 [error]: malloc of size 42 failed" >&2; exit 1'))
    error = _failed_render(src, info, target, tmp_path, FFmpegError, timeout_s=30)
    assert error.code == "processing_failed" and not isinstance(error, FFmpegTimeout)
    assert "malloc of size 42 failed" in error.message


def test_ffmpeg_timeout_is_processing_timeout(make_clip: Any, tmp_path: Path,
                                              use_ffmpeg: Any) -> None:
    src = make_clip(width=160, height=90, seconds=0.5, codec="vp9", container="webm", audio=None)
    info, target = _encode_target(src)
    use_ffmpeg(_fake_ffmpeg(tmp_path, 'for last; do :; done; echo partial > "$last"\n'
                             'echo "encoding frame 1" >&2; exec sleep 30'))
    error = _failed_render(src, info, target, tmp_path, FFmpegTimeout, timeout_s=1)
    assert error.code == "processing_timeout" and not error.retryable
    assert "encoding frame 1" in error.message


@pytest.fixture
def fresh_capabilities() -> Any:
    """The encoder list is asked anew in this test (it is cached per process)."""
    ffmpeg.encoders.cache_clear()
    ffmpeg.require_capabilities.cache_clear()
    yield
    ffmpeg.encoders.cache_clear()
    ffmpeg.require_capabilities.cache_clear()


def test_an_ffmpeg_without_our_encoder_is_a_config_error(
        make_clip: Any, tmp_path: Path, use_ffmpeg: Any, fresh_capabilities: None) -> None:
    src = make_clip(width=160, height=90, seconds=0.5, codec="vp9", container="webm", audio=None)
    info, target = _encode_target(src)
    # a build with no libx264: its encoder list lacks it, and the encode fails for that
    use_ffmpeg(_fake_ffmpeg(tmp_path, 'case "$*" in *-encoders*)\n'
                             '  echo " V....D libx265 H.265"; echo " A....D aac AAC"; exit 0;;\n'
                             '*-xerror*) exit 0;; esac\n'
                             'echo "Unknown encoder \'libx264\'" >&2; exit 1'))
    error = _failed_render(src, info, target, tmp_path, ConfigError, timeout_s=30)
    assert error.code == "config_error" and "libx264" in error.message


def test_an_encode_that_works_never_asks_for_the_encoder_list(
        make_clip: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        fresh_capabilities: None) -> None:
    src = make_clip(width=160, height=90, seconds=0.5, codec="vp9", container="webm", audio=None)
    info, target = _encode_target(src)
    calls: list[list[str]] = []
    real = ffmpeg.run

    def spy(args: list[str], **kwargs: Any) -> ffmpeg.Completed:
        calls.append(args)
        return real(args, **kwargs)

    monkeypatch.setattr(ffmpeg, "run", spy)
    result = render_video(src, info.format_name, target, tmp_path / "o.mp4", duration_s=0.5,
                          timeout_s=60)
    assert probe(result.path).video is not None
    assert any("libx264" in c for c in calls)  # the encode ran...
    assert not any("-encoders" in c for c in calls)  # ...without the encoder list first


def test_undecodable_source_is_corrupt_media(make_clip: Any, tmp_path: Path) -> None:
    good = make_clip(width=320, height=180, seconds=1.0, container="mkv", audio=None)
    data = bytearray(good.read_bytes())
    for i in range(1200, len(data)):  # the header survives, every frame is garbage
        data[i] = (i * 7919) % 251
    bad = tmp_path / "bad.mkv"
    bad.write_bytes(bytes(data))
    info = probe(bad)  # the header still probes
    target, _, _ = plan_video(info, spec_of("twitter-video"), max_bytes=10**9, trim_s=None,
                              from_image=False, x264_preset=X264)
    error = _failed_render(bad, info, target, tmp_path, CorruptMedia, timeout_s=60,
                           duration_s=info.duration_s or 1)
    assert error.code == "corrupt_media" and "decoded" in error.message


def test_unusable_corpus_files_fail_with_typed_errors(corpus: Path, tmp_path: Path) -> None:
    videos = corpus / "videos"
    files = {"dovi.mp4": videos / "video_dovi_3840x2160_30fps_dav1_10.mp4",
             "audio.mp4": videos / "sample_audio_only.mp4",
             "broken.mp4": videos / "sample_malformed_free_box.mp4"}
    codes = {}
    for name, path in files.items():
        m = run_job(tmp_path / name, {name: path}, [{"id": "tg", "platform": "telegram"}])
        assert m["status"] == "failed" and m["accounts"][0]["media"] == []
        codes[name] = [e["code"] for e in m["accounts"][0]["errors"]]
    assert codes == {"dovi.mp4": ["unsupported_media"], "audio.mp4": ["unsupported_media"],
                     "broken.mp4": ["corrupt_media"]}


# --------------------------------------------------------------------------- the corpus


def _corpus_videos() -> list[str]:
    folder = REPO.parent / "shared" / "corpus" / "videos"
    skip = {"video_dovi_3840x2160_30fps_dav1_10.mp4", "sample_audio_only.mp4",
            "sample_malformed_free_box.mp4"}  # typed errors, tested above
    return sorted(p.name for p in folder.glob("*") if p.name not in skip) if folder.is_dir() \
        else []


@pytest.mark.slow
@pytest.mark.parametrize("name", _corpus_videos())
def test_corpus_clip_through_every_video_preset(corpus: Path, tmp_path: Path, name: str) -> None:
    """Every decodable corpus clip conforms for every video variant of every platform.

    Clips longer than 1.1 s are trimmed to 0.5 s (the trim path is part of the engine) to
    keep the matrix fast; identical targets are rendered once, from one decode, and checked
    against every variant that shares them, as the runner does.
    """
    src = corpus / "videos" / name
    info = probe(src)
    trim = 0.5 if (info.duration_s or 0) > 1.1 else None
    planned: dict[str, list[tuple[str, VideoTarget, list[str]]]] = {}
    for variant in VIDEO_VARIANTS:
        preset, v = PRESETS.find_variant(variant)  # type: ignore[misc]
        spec = v.video
        max_bytes = min(spec.max_bytes, preset.limits.max_video_bytes or spec.max_bytes)
        target, actions, _ = plan_video(info, spec, max_bytes=max_bytes, trim_s=trim,
                                        from_image=False, x264_preset="ultrafast")
        planned.setdefault(target_key("corpus", target), []).append((variant, target, actions))
    # as the runner does: the smallest cap of everyone sharing an output, one decode for all
    # the encodes of the clip, then each output checked for every variant that uses it
    targets = {key: functools.reduce(merge_video_targets, [t for _, t, _ in uses])
               for key, uses in planned.items()}
    outs = {key: tmp_path / f"{key[:12]}.mp4" for key in targets}
    encodes = [(t, outs[key]) for key, t in targets.items() if t.action == "transcode"]
    if len(encodes) > 1:
        render_shared(src, info.format_name, encodes, duration_s=info.duration_s or 0,
                      timeout_s=300)
    expected = min(info.duration_s or 0, trim or math.inf)
    for key, uses in planned.items():
        target = targets[key]
        result = render_video(src, info.format_name, target, outs[key],
                              duration_s=info.duration_s or 0, timeout_s=300,
                              first_pass=outs[key] if len(encodes) > 1 else None)
        out_info = probe(result.path)
        for variant, _, actions in uses:
            problems = verify.check_video(out_info, spec_of(variant), target,
                                           info.duration_s or 0)
            assert problems == [], (variant, actions, problems)
        # one file, checked once: every variant sharing it has the same stream rules here
        spec = spec_of(uses[0][0])
        platform_checks(result.path, duration_s=expected, spec=spec,
                        encoded=target.action == "transcode",
                        gop_max_s=min(spec_of(v).gop_max_s for v, _, _ in uses))
    if info.video is not None and info.video.hdr:
        assert any(t.tonemap for t in targets.values())


def test_environment_has_the_encoders_we_use() -> None:
    assert {"libx264", "aac"} <= ffmpeg.encoders()
    assert {"zscale", "tonemap", "bwdif", "loudnorm", "boxblur", "tpad"} <= ffmpeg.filters()


def test_conform_plan_shows_the_shared_decode(make_clip: Any, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pipeline.cli import main

    src = make_clip(width=320, height=180, seconds=0.5, codec="vp9", container="webm")
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copyfile(src, lib / "clip.webm")
    job = {"workspace_id": "w", "content": [{"media": ["clip.webm"]}],
           "accounts": [{"id": "tt", "platform": "tiktok"}, {"id": "x", "platform": "x"}]}
    (tmp_path / "job.json").write_text(json.dumps(job))
    args = ["plan", str(tmp_path / "job.json"), "--library", f"file://{lib}/{{id}}"]
    # (TikTok refuses a 0.5 s clip, so only X plans; with 4 s both would share the decode)
    result = CliRunner().invoke(main, [*args, "--json"], catch_exceptions=False)
    data = json.loads(result.stdout)
    assert data["encodes"] == 1 and data["decodes"] == 1
    long = make_clip(width=320, height=180, seconds=3.0, fps=10, codec="vp9", container="webm")
    shutil.copyfile(long, lib / "clip.webm")
    data = json.loads(CliRunner().invoke(main, [*args, "--json"]).stdout)
    encodes = [o for o in data["outputs"] if o["action"] == "transcode"]
    assert len(encodes) == 2 and {o["shared_decode"] for o in encodes} == {1}
    assert (data["encodes"], data["decodes"]) == (2, 1)
    table = CliRunner().invoke(main, args).stdout
    assert "2 encode(s) from 1 decode(s)" in table and table.count("[decode #1, shared]") == 2


@pytest.mark.slow
@pytest.mark.parametrize("hdr", ["hlg", "pq"])
def test_4k60_hevc_10bit_hdr_phone_clip(make_clip: Any, tmp_path: Path, hdr: str) -> None:
    """The phone case of the issue: 4K60 HEVC Main 10 HLG/PQ, to a 9:16 platform."""
    src = make_clip(width=3840, height=2160, seconds=0.1, fps=60, audio="stereo",
                    codec="hevc", pix_fmt="yuv420p10le", hdr=hdr, pattern="quadrants")
    info = probe(src)
    assert info.video is not None and info.video.hdr and info.video.fps == 60
    d = deliver(src, "instagram-reels", tmp_path)
    assert (d.info.width, d.info.height) == (1080, 1920) and "tone_mapped" in d.actions
    assert d.target.level == "4.2"  # 1080x1920 at 60 fps
    data = platform_checks(d.path, duration_s=0.1)
    v = next(s for s in data["streams"] if s["codec_type"] == "video")
    assert v["r_frame_rate"] == "60/1" and v["level"] == 42
    # the picture sits in the middle third of the 9:16 frame: its colours survived
    got = quadrant_colours(d.path, content=(0.0, 0.35, 1.0, 0.65))
    assert all(close(got[q], QUADRANTS[q], 35) for q in QUADRANTS), got
