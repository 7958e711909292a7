"""Video planning and argv/graph building, without running ffmpeg.

The argv tests read the built command the way ffmpeg would: options by name, the filter
graph as a sequence of filters, one ``-map`` per output stream.
"""

from __future__ import annotations

import dataclasses
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import ProcessingFailed
from pipeline.job import parse_job
from pipeline.models import AudioStream, MediaInfo, MediaRef, VideoStream
from pipeline.outputs.verify import check_video
from pipeline.plan import (
    VideoTarget,
    audio_target,
    choose_fps,
    h264_level,
    plan_job,
    plan_video,
    shared_decodes,
    target_key,
)
from pipeline.presets import VideoSpec, load_presets
from pipeline.validate import check_account
from pipeline.video import (
    Loudness,
    build_args,
    build_shared_args,
    decode_check_args,
    loudness_args,
    parse_loudness,
)
from pipeline.video.render import _shrink

PRESETS = load_presets()
SRC = Path("/media/src.mp4")
OUT = Path("/work/out.mp4")


def spec_of(variant_id: str) -> VideoSpec:
    found = PRESETS.find_variant(variant_id)
    assert found is not None and found[1].video is not None
    return found[1].video


def vinfo(width: int = 1280, height: int = 720, *, fmt: str = "mp4", duration_s: float = 10.0,
          audio: AudioStream | str | None = "aac", size_bytes: int = 5_000_000,
          moov_first: bool = True, start_time_s: float = 0.0, extra_streams: int = 0,
          has_location: bool = False, **video: Any) -> MediaInfo:
    """A probed video as probe.py would report it; ``video`` overrides VideoStream fields."""
    fields: dict[str, Any] = dict(
        codec="h264", profile="High", width=width, height=height, display_width=width,
        display_height=height, rotation_deg=0, mirrored=False, display_matrix=None,
        sar=Fraction(1), fps=Fraction(30), fps_real=Fraction(30), vfr=False,
        pix_fmt="yuv420p", bit_depth=8, color_transfer="bt709", color_primaries="bt709",
        color_space="bt709", color_range="tv", hdr=False, interlaced=False, bitrate_kbps=4000,
        frame_count=int(duration_s * 30), max_keyframe_interval_s=1.0)
    fields.update(video)
    v = VideoStream(**fields)
    if audio == "aac":
        audio = AudioStream("aac", "LC", 48000, 2, "stereo", 128)
    assert audio is None or isinstance(audio, AudioStream)
    w, h = v.display_width, v.display_height
    return MediaInfo(kind="video", format_name=fmt, size_bytes=size_bytes, width=w, height=h,
                     duration_s=duration_s, bitrate_kbps=4200, start_time_s=start_time_s,
                     video=v, audio=audio, moov_first=moov_first, extra_streams=extra_streams,
                     has_location=has_location)


def plan(info: MediaInfo, variant: str = "twitter-video", *, trim_s: float | None = None,
         **spec_changes: Any) -> tuple[VideoTarget, list[str]]:
    spec = dataclasses.replace(spec_of(variant), **spec_changes)
    target, actions, _ = plan_video(info, spec, max_bytes=spec.max_bytes, trim_s=trim_s,
                                    from_image=False, x264_preset="medium")
    return target, actions


def opt(args: list[str], name: str) -> str | None:
    """The value after the last ``name`` in argv (None if absent)."""
    found = [i for i, a in enumerate(args) if a == name]
    return args[found[-1] + 1] if found else None


def filters(args: list[str]) -> list[str]:
    """The filter names of -filter_complex, in graph order."""
    graph = opt(args, "-filter_complex") or ""
    names = []
    for part in graph.split(";"):
        body = part
        while body.startswith("["):  # input labels
            body = body.split("]", 1)[1]
        names.append(body.split("=", 1)[0].split("[", 1)[0])
    return names


# --------------------------------------------------------------------------- least work


def test_conformant_mp4_passes_through() -> None:
    t, actions = plan(vinfo())
    assert t.action == "passthrough" and actions == ["passed_through"]
    assert build_args(SRC, "mp4", t, OUT)  # buildable, but render_video never runs it


@pytest.mark.parametrize(("change", "why"), [
    ({"moov_first": False}, "moov at the end"),
    ({"fmt": "mov"}, "X takes MP4 only"),
    ({"extra_streams": 2}, "timecode/metadata tracks"),
    ({"has_location": True}, "GPS in the container"),
    ({"start_time_s": 10.0}, "first frame at 10 s"),
])
def test_container_problems_are_remuxed(change: dict[str, Any], why: str) -> None:
    t, _ = plan(vinfo(**change))
    assert t.action == "remux", why
    args = build_args(SRC, "mp4", t, OUT)
    assert opt(args, "-vcodec") == "copy" and opt(args, "-acodec") == "copy"
    assert "-filter_complex" not in args and "libx264" not in args
    assert opt(args, "-movflags") == "+faststart+negative_cts_offsets"
    assert opt(args, "-use_editlist") == "0"
    assert opt(args, "-map_metadata") == "-1"


def test_b_frame_delay_is_not_an_offset_start() -> None:
    # Files without edit lists start at the B-frame reorder delay (2 frames): still conformant.
    assert plan(vinfo(start_time_s=0.067))[0].action == "passthrough"


def test_remuxed_hevc_is_tagged_hvc1() -> None:
    t, _ = plan(vinfo(codec="hevc", profile="Main", moov_first=False), "instagram-reels",
                aspect_min=None, aspect_max=None, target_width=None, target_height=None)
    assert t.action == "remux"
    assert opt(build_args(SRC, "mp4", t, OUT), "-tag:v") == "hvc1"


@pytest.mark.parametrize(("audio", "channels", "rate"), [
    (AudioStream("mp3", None, 44100, 2, "stereo", 192), 2, 44100),   # codec
    (AudioStream("aac", "LC", 48000, 6, "5.1", 384), 2, 48000),       # 5.1 -> stereo
    (AudioStream("aac", "HE-AAC", 48000, 2, "stereo", 64), 2, 48000),  # X: AAC-LC only
    (AudioStream("aac", "LC", 32000, 1, "mono", 64), 1, 48000),       # rate not allowed
])
def test_audio_only_problems_reencode_only_the_audio(audio: AudioStream, channels: int,
                                                     rate: int) -> None:
    t, actions = plan(vinfo(audio=audio))
    assert t.action == "audio_only" and "audio_encoded" in actions
    assert (t.audio.channels, t.audio.sample_rate_hz, t.audio.bitrate_kbps) == (channels, rate,
                                                                                 128)
    args = build_args(SRC, "mp4", t, OUT)
    assert opt(args, "-vcodec") == "copy" and opt(args, "-acodec") == "aac"
    assert opt(args, "-ac") == str(channels) and opt(args, "-ar") == str(rate)
    assert opt(args, "-profile:a") == "aac_low" and "libx264" not in args


@pytest.mark.parametrize(("video", "action"), [
    ({"rotation_deg": 90, "display_width": 720, "display_height": 1280}, "rotated"),
    ({"mirrored": True}, "rotated"),
    ({"sar": Fraction(4, 3), "display_width": 1706}, "square_pixels"),
    ({"interlaced": True}, "deinterlaced"),
    ({"vfr": True, "fps": Fraction(27)}, "fps_changed"),
    ({"fps": Fraction(120), "fps_real": Fraction(120)}, "fps_changed"),
    ({"hdr": True, "pix_fmt": "yuv420p10le", "color_transfer": "arib-std-b67"}, "tone_mapped"),
    ({"codec": "vp9"}, "transcoded"),
    ({"pix_fmt": "yuv444p", "profile": "High 4:4:4 Predictive"}, "transcoded"),
    ({"color_range": "pc", "pix_fmt": "yuvj420p"}, "transcoded"),
    ({"max_keyframe_interval_s": 8.3}, "transcoded"),
    ({"width": 161, "height": 121, "display_width": 161, "display_height": 121}, "resized"),
])
def test_stream_problems_transcode(video: dict[str, Any], action: str) -> None:
    t, actions = plan(vinfo(**video))
    assert t.action == "transcode" and action in actions, actions


def test_hdr_kept_where_allowed_and_tone_mapped_whenever_encoded() -> None:
    hdr = {"codec": "hevc", "profile": "Main 10", "pix_fmt": "yuv420p10le", "hdr": True,
           "color_transfer": "smpte2084", "color_primaries": "bt2020", "color_space": "bt2020nc"}
    kept, _ = plan(vinfo(**hdr), "youtube-video")
    assert kept.action == "passthrough" and not kept.tonemap  # YouTube takes HDR as it is
    encoded, actions = plan(vinfo(vfr=True, **hdr), "youtube-video")
    # our encodes are 8-bit SDR H.264: an HDR source is tone-mapped even for YouTube
    assert encoded.tonemap and encoded.in_transfer == "smpte2084" and "tone_mapped" in actions
    sdr, _ = plan(vinfo(**hdr), "instagram-reels")
    assert sdr.tonemap and sdr.in_matrix == "bt2020"


# --------------------------------------------------------------------------- time


@pytest.mark.parametrize(("fps", "real", "vfr", "lo", "hi", "want"), [
    (Fraction(120), Fraction(120), False, 23, 60, Fraction(60)),
    (Fraction(240), Fraction(240), False, 23, 60, Fraction(60)),
    (Fraction(120000, 1001), Fraction(120000, 1001), False, 23, 60, Fraction(60000, 1001)),
    (Fraction(90), Fraction(90), False, 23, 60, Fraction(30)),       # 90/30 = 3, 90/60 judders
    (Fraction(15), Fraction(15), False, 23, 60, Fraction(30)),       # every frame twice
    (Fraction(12), Fraction(12), False, 23, 60, Fraction(24)),
    (Fraction(25, 2), Fraction(25, 2), False, 23, 60, Fraction(25)),
    (Fraction(20), Fraction(20), False, 23, 60, Fraction(24)),       # no even multiple
    (Fraction(15), Fraction(15), False, 1, 60, Fraction(15)),        # in range: kept
    (Fraction(90000, 3013), Fraction(90000, 3013), False, 1, 60, Fraction(30000, 1001)),  # jitter
    (Fraction(27521, 1000), Fraction(30), True, 23, 60, Fraction(30)),  # VFR: the base rate
    (Fraction(0), Fraction(1000), False, 1, 60, Fraction(30)),       # 0/0 avg, 1000 tbr
])
def test_choose_fps(fps: Fraction, real: Fraction, vfr: bool, lo: int, hi: int,
                    want: Fraction) -> None:
    spec = dataclasses.replace(spec_of("twitter-video"), fps_min=Fraction(lo),
                               fps_max=Fraction(hi))
    got, _ = choose_fps(vinfo(fps=fps, fps_real=real, vfr=vfr), spec)
    assert got == want


def test_gop_is_at_most_two_seconds() -> None:
    for fps in (Fraction(24000, 1001), Fraction(25), Fraction(30000, 1001), Fraction(60)):
        t, _ = plan(vinfo(fps=fps, fps_real=fps, codec="vp9"))
        assert t.gop_frames / float(fps) <= 2.0
        assert opt(build_args(SRC, "mp4", t, OUT), "-g") == str(t.gop_frames)


def test_trim_sets_the_output_length_and_forces_an_encode() -> None:
    t, actions = plan(vinfo(duration_s=200), trim_s=140)
    assert t.action == "transcode" and "trimmed" in actions
    assert opt(build_args(SRC, "mp4", t, OUT, duration_s=200), "-t") == "140.000"


def test_every_encode_lasts_the_source_duration() -> None:
    t, _ = plan(vinfo(codec="vp9", duration_s=4.5))
    args = build_args(SRC, "mp4", t, OUT, duration_s=4.5)
    assert opt(args, "-t") == "4.500"
    assert "tpad=stop_duration=4.500:stop_mode=clone" in (opt(args, "-filter_complex") or "")


# --------------------------------------------------------------------------- encoder settings


def test_transcode_argv_is_the_safe_master() -> None:
    t, _ = plan(vinfo(codec="vp9", fmt="webm",
                      audio=AudioStream("opus", None, 48000, 2, "stereo", 96)))
    args = build_args(SRC, "webm", t, OUT, duration_s=10)
    assert args[args.index("-i") - 4:args.index("-i")] == ["-f", "matroska",
                                                           "-protocol_whitelist", "file"]
    assert opt(args, "-i") == "file:" + str(SRC)
    expected = {"-vcodec": "libx264", "-profile:v": "high", "-pix_fmt": "yuv420p",
                "-x264-params": "open-gop=0:8x8dct=1:force-cfr=1", "-fps_mode": "cfr",
                "-color_primaries": "bt709",
                "-color_trc": "bt709", "-colorspace": "bt709", "-color_range": "tv",
                "-movflags": "+faststart+negative_cts_offsets", "-use_editlist": "0",
                "-map_metadata": "-1",
                "-map_chapters": "-1", "-f": "mp4", "-level:v": "3.1", "-crf": "20",
                "-acodec": "aac", "-ar": "48000", "-ac": "2", "-b:a": "128k"}
    assert {k: opt(args, k) for k in expected} == expected
    assert opt(args, "-maxrate") == f"{t.maxrate_kbps}k"
    assert opt(args, "-bufsize") == f"{t.maxrate_kbps * 2}k"
    assert args[-1] == str(OUT)
    assert args.count("-map") == 2  # the picture and the first audio track, nothing else


def test_filter_order() -> None:
    info = vinfo(1920, 1080, interlaced=True, sar=Fraction(4, 3), display_width=2560,
                 hdr=True, pix_fmt="yuv420p10le", color_transfer="arib-std-b67",
                 color_primaries="bt2020", color_space="bt2020nc", fps=Fraction(50),
                 fps_real=Fraction(50))
    t, _ = plan(info, "instagram-reels")
    names = filters(build_args(SRC, "mp4", t, OUT, duration_s=10))
    # deinterlace, square pixels, hold last frame, CFR, scale, tone-map, blurred fill
    order = ["bwdif", "setsar", "tpad", "fps", "scale", "zscale", "tonemap", "split",
             "boxblur", "overlay", "format"]
    at = -1
    for name in order:  # each one after the one before
        at = names.index(name, at + 1)


def test_tone_map_chain() -> None:
    t, _ = plan(vinfo(hdr=True, pix_fmt="yuv420p10le", color_transfer="arib-std-b67",
                      color_primaries="bt2020", color_space="bt2020nc"))
    graph = opt(build_args(SRC, "mp4", t, OUT), "-filter_complex") or ""
    assert "zscale=min=bt2020nc:npl=203:pin=bt2020:rin=tv:t=linear:tin=arib-std-b67" in graph
    assert "tonemap=desat=0:tonemap=mobius" in graph
    assert "zscale=m=bt709:r=tv:t=bt709" in graph


def test_full_range_and_bt601_are_converted() -> None:
    t, _ = plan(vinfo(640, 480, color_range="pc", pix_fmt="yuvj420p", color_space="smpte170m"))
    graph = opt(build_args(SRC, "mp4", t, OUT), "-filter_complex") or ""
    assert ("scale=640:480:flags=lanczos:in_color_matrix=bt601:in_range=pc:"
            "out_color_matrix=bt709:out_range=tv") in graph


def test_pad_and_blur_fills() -> None:
    pad, _ = plan(vinfo(1000, 3200, codec="vp9"))  # taller than X's 1:3
    graph = opt(build_args(SRC, "mp4", pad, OUT), "-filter_complex") or ""
    assert "pad=" in graph and "color=black" in graph and "overlay" not in graph
    blur, _ = plan(vinfo(1920, 1080), "tiktok-video")
    names = filters(build_args(SRC, "mp4", blur, OUT))
    assert {"split", "boxblur", "overlay"} <= set(names) and "pad" not in names


def test_blur_radius_fits_tiny_pictures() -> None:
    t, _ = plan(vinfo(64, 36), "tiktok-video", min_width=2, min_height=2, target_width=None,
                target_height=None, recommended_min_width=None, recommended_min_height=None)
    graph = opt(build_args(SRC, "mp4", t, OUT), "-filter_complex") or ""
    radius = int(graph.split("luma_radius=")[1].split(":")[0].split("[")[0])
    assert radius * 4 <= 16  # a quarter of the 16-px background's chroma-safe side


def test_missing_audio_stays_missing_unless_required() -> None:
    t, _ = plan(vinfo(codec="vp9", audio=None))
    args = build_args(SRC, "mp4", t, OUT, duration_s=3)
    assert t.audio.action == "none" and "-acodec" not in args and args.count("-map") == 1
    required = dataclasses.replace(spec_of("twitter-video").audio, required=True)
    t2, actions = plan(vinfo(audio=None), audio=required)
    assert t2.action == "audio_only" and "audio_added" in actions
    args2 = build_args(SRC, "mp4", t2, OUT, duration_s=3)
    assert "aevalsrc=0:c=stereo:s=48000:d=3.000" in args2
    assert opt(args2, "-vcodec") == "copy" and opt(args2, "-acodec") == "aac"


def test_loudnorm_two_pass() -> None:
    aspec = dataclasses.replace(spec_of("twitter-video").audio, loudnorm=True)
    t, actions = plan(vinfo(), audio=aspec)
    assert t.action == "audio_only" and "loudness_normalised" in actions
    first = loudness_args(SRC, "mp4", trim_s=None)
    assert "loudnorm=I=-14.0:LRA=11.0:TP=-1.0:print_format=json" in (
        opt(first, "-filter_complex") or "")
    assert opt(first, "-f") == "null" and opt(first, "-v") == "info"
    measured = Loudness(-27.5, -9.1, 6.0, -38.0, 0.4)
    second = opt(build_args(SRC, "mp4", t, OUT, loudness=measured), "-filter_complex") or ""
    assert "measured_I=-27.5" in second and "measured_TP=-9.1" in second
    assert "linear=true" in second and "offset=0.4" in second


def test_parse_loudness() -> None:
    report = {"input_i": "-27.61", "input_tp": "-4.47", "input_lra": "18.06",
              "input_thresh": "-39.20", "output_i": "-16.58", "target_offset": "0.58"}
    tail = "[Parsed_loudnorm_0 @ 0x5] \n" + json.dumps(report, indent=1) + "\n"
    assert parse_loudness(tail) == Loudness(-27.61, -4.47, 18.06, -39.2, 0.58)
    silent = {**report, "input_i": "-inf", "input_tp": "-inf"}
    assert parse_loudness(json.dumps(silent)) is None
    with pytest.raises(ProcessingFailed):
        parse_loudness("no report here")


def test_two_pass_argv() -> None:
    t, _ = plan(vinfo(codec="vp9"))
    first = build_args(SRC, "mp4", t, OUT, maxrate_kbps=800, two_pass=1,
                       passlog=Path("/w/p"))
    assert opt(first, "-pass") == "1" and opt(first, "-f") == "null" and first[-1] == "-"
    assert "-acodec" not in first and first.count("-map") == 1
    second = build_args(SRC, "mp4", t, OUT, maxrate_kbps=800, two_pass=2, passlog=Path("/w/p"))
    assert opt(second, "-pass") == "2" and opt(second, "-b:v") == "800k"
    assert opt(second, "-passlogfile") == "/w/p" and "-crf" not in second
    capped = dataclasses.replace(t, spec_max_bitrate_kbps=1000)
    peak = opt(build_args(SRC, "mp4", capped, OUT, maxrate_kbps=800, two_pass=2,
                          passlog=Path("/w/p")), "-maxrate")
    assert peak == "1000k"  # 1.5 x 800 would break the preset's bitrate cap


def test_decode_check_stops_at_the_first_error() -> None:
    args = decode_check_args(SRC, "mp4")
    assert "-xerror" in args and opt(args, "-f") == "null" and opt(args, "-map") == "0:v:0"
    both = decode_check_args(SRC, "mp4", audio=True)
    assert [both[i + 1] for i, a in enumerate(both) if a == "-map"] == ["0:v:0", "0:a:0"]


@pytest.mark.parametrize(("w", "h", "fps", "kbps", "level"), [
    (320, 180, Fraction(30), 300, "3.0"),
    (1280, 720, Fraction(30), 5000, "3.1"),
    (1280, 720, Fraction(60), 9000, "3.2"),
    (1920, 1080, Fraction(30), 6000, "4.0"),
    (1920, 1080, Fraction(30), 25000, "4.1"),   # Instagram's 25 Mbps cap
    (1080, 1920, Fraction(60), 12000, "4.2"),
    (3840, 2160, Fraction(30), 20000, "5.1"),
    (3840, 2160, Fraction(60), 40000, "5.2"),
])
def test_h264_level(w: int, h: int, fps: Fraction, kbps: int, level: str) -> None:
    assert h264_level(w, h, fps, kbps) == level


def test_bitrate_caps_bound_maxrate() -> None:
    for variant, cap in (("instagram-reels", 25_000), ("linkedin-video", 30_000)):
        t, _ = plan(vinfo(3840, 2160, fps=Fraction(60), fps_real=Fraction(60),
                          bitrate_kbps=80_000), variant)
        assert t.action == "transcode" and 0 < t.maxrate_kbps <= cap


def test_byte_budget_bounds_maxrate() -> None:
    spec = spec_of("telegram-video")
    t, _, _ = plan_video(vinfo(1920, 1080, codec="vp9", duration_s=120), spec,
                         max_bytes=20_000_000, trim_s=None, from_image=False,
                         x264_preset="medium")
    # 20 MB over 120 s minus 128 kbps audio and container overhead
    assert t.maxrate_kbps <= 20_000_000 * 8 / 120 / 1000 - 128
    assert t.maxrate_kbps > 1000


def test_audio_target_rules() -> None:
    spec = spec_of("facebook-reels")  # 48 kHz only
    kept = audio_target(vinfo(audio=AudioStream("aac", "LC", 44100, 2, "stereo", 128)),
                        spec_of("twitter-video"), reencode_all=False)
    assert kept.action == "copy" and kept.sample_rate_hz == 44100
    fb = audio_target(vinfo(audio=AudioStream("aac", "LC", 44100, 2, "stereo", 128)), spec,
                      reencode_all=False)
    assert fb.action == "encode" and fb.sample_rate_hz == 48000
    mono = audio_target(vinfo(audio=AudioStream("opus", None, 48000, 1, "mono", 64)),
                        spec_of("twitter-video"), reencode_all=False)
    assert (mono.action, mono.channels, mono.bitrate_kbps) == ("encode", 1, 128)


def test_geometry_of_rotated_and_anamorphic_sources() -> None:
    rotated, _ = plan(vinfo(1920, 1080, rotation_deg=90, display_width=1080,
                            display_height=1920), "tiktok-video")
    assert (rotated.geometry.width, rotated.geometry.height) == (1080, 1920)
    assert rotated.geometry.fit == "none"  # upright it is already 9:16
    ana, _ = plan(vinfo(720, 480, sar=Fraction(32, 27), display_width=852))
    assert ana.square_pixels and (ana.geometry.source_width, ana.geometry.height) == (852, 480)
    graph = opt(build_args(SRC, "mp4", ana, OUT), "-filter_complex") or ""
    assert "scale=852:480:flags=lanczos[" in graph and "setsar=1" in graph


# --------------------------------------------------------------------------- shared decodes


def _plan_job(accounts: list[dict[str, Any]], info: MediaInfo, *, share: bool = True) -> Any:
    job = parse_job({"workspace_id": "w", "content": [{"media": ["v"]}], "accounts": accounts},
                    PRESETS)
    probed = {MediaRef("library", "v"): info}
    checks = [check_account(job, a, PRESETS.get(a.platform), probed)  # type: ignore[arg-type]
              for a in job.accounts]
    return plan_job(checks, sha_of={MediaRef("library", "v"): "sha-v"}, thumb_infos={},
                    share=share)


def test_different_encodes_of_one_source_share_a_decode() -> None:
    # Each account's own target (LinkedIn would otherwise take X's output: test_sharing.py).
    jobplan = _plan_job([{"id": "tt", "platform": "tiktok"}, {"id": "x", "platform": "x"},
                         {"id": "li", "platform": "linkedin"},
                         {"id": "yt", "platform": "youtube"}],
                        vinfo(1920, 1080, codec="vp9", fmt="webm"), share=False)
    encodes = [r for r in jobplan.renditions if r.target.action == "transcode"]
    assert len(encodes) >= 3
    assert len(jobplan.decodes) == 1 and set(jobplan.decodes[0]) == {r.key for r in encodes}
    outputs = [(r.target, Path(f"/w/{r.name}")) for r in encodes]
    args = build_shared_args(SRC, "webm", outputs, duration_s=10)
    assert args.count("-i") == 1  # one decode
    names = filters(args)
    blurred = sum(1 for t, _ in outputs if t.geometry.fit == "blur")
    assert names[0] == "split" and names.count("split") == 1 + blurred
    for _, out in outputs:
        assert str(out) in args
    assert args.count("-vcodec") == len(outputs) and args.count("-map") == 2 * len(outputs)


def test_shared_decode_refuses_targets_that_differ_before_the_split() -> None:
    a, _ = plan(vinfo(codec="vp9"))
    b, _ = plan(vinfo(codec="vp9", interlaced=True))
    with pytest.raises(ValueError, match="cannot share"):
        build_shared_args(SRC, "mp4", [(a, Path("/w/a.mp4")), (b, Path("/w/b.mp4"))])
    with pytest.raises(ValueError, match="at least two"):
        build_shared_args(SRC, "mp4", [(a, Path("/w/a.mp4"))])


def test_shared_decodes_grouping() -> None:
    t, _ = plan(vinfo(codec="vp9"))
    loud = dataclasses.replace(t, audio=dataclasses.replace(t.audio, loudnorm=True))
    renditions = []
    for i, target in enumerate([t, dataclasses.replace(t, pad_color="white"), loud,
                                dataclasses.replace(t, deinterlace=True)]):
        from pipeline.models import MediaRef
        from pipeline.plan import Rendition
        renditions.append(Rendition(key=f"k{i}", source_sha256="s", ref_text="r",
                                    ref=MediaRef("url", "r"),
                                    target=target, actions=(), warnings=(), name=f"{i}.mp4"))
    # loudnorm measures the whole track per output; a different pre-chain cannot split
    assert shared_decodes(renditions) == (("k0", "k1"),)


# --------------------------------------------------------------------------- budget retries


def test_shrink_respects_the_preset_minimum_and_144p() -> None:
    t, _ = plan(vinfo(1920, 1080, codec="vp9"), "tiktok-video")
    g = t.geometry
    sizes = []
    while (g := _shrink(g, t)) is not None:  # type: ignore[assignment]
        sizes.append((g.width, g.height))
    assert sizes and all(w >= 360 and h >= 360 for w, h in sizes)  # TikTok's 360 px minimum
    x, _ = plan(vinfo(1280, 720, codec="vp9"))
    g = x.geometry
    last = g
    while (g := _shrink(g, x)) is not None:  # type: ignore[assignment]
        last = g
    assert min(last.width, last.height) >= 144


def test_shared_output_meets_the_stricter_caps() -> None:
    info = vinfo(1920, 1080, codec="vp9", fmt="webm")
    jobplan = _plan_job([{"id": "tt", "platform": "tiktok"},
                         {"id": "ig", "platform": "instagram", "settings": {"post_type": "REELS"}}],
                        info)
    (shared,) = jobplan.renditions  # the same 1080x1920 blurred encode for both
    assert {u.account_id for u in shared.uses} == {"tt", "ig"}
    # TikTok has no bitrate cap and 4 GB, Instagram 25 Mbps and 100 MB: both bind
    assert shared.target.spec_max_bitrate_kbps == 25_000
    assert shared.target.max_bytes == 100_000_000


def test_key_ignores_what_a_stream_copy_does_not_change() -> None:
    remux, _ = plan(vinfo(moov_first=False))
    assert target_key("s", remux) == target_key("s", dataclasses.replace(
        remux, geometry=dataclasses.replace(remux.geometry, width=2), level="6.2"))
    enc, _ = plan(vinfo(codec="vp9"))
    assert target_key("s", enc) != target_key("s", dataclasses.replace(enc, level="6.2"))
    assert target_key("s", enc) == target_key("s", dataclasses.replace(enc, max_bytes=1))


# --------------------------------------------------------------------------- verification


@pytest.mark.parametrize(("change", "problem"), [
    ({"rotation_deg": 90}, "rotation"),
    ({"vfr": True}, "variable frame rate"),
    ({"max_keyframe_interval_s": 2.5}, "keyframes"),
    ({"profile": "Main"}, "profile"),
    ({"interlaced": True}, "interlaced"),
    ({"color_primaries": "bt2020"}, "colour tags"),
    ({"color_range": "pc"}, "full-range"),
    ({"sar": Fraction(4, 3)}, "sample aspect"),
    ({"fps": Fraction(120)}, "fps"),
    ({"hdr": True}, "HDR"),
])
def test_check_video_catches_stream_violations(change: dict[str, Any], problem: str) -> None:
    t, _ = plan(vinfo(codec="vp9"))
    good = vinfo(start_time_s=0.067, duration_s=10.05)
    assert check_video(good, spec_of("twitter-video"), t, 10.0) == []
    bad = dataclasses.replace(good, video=dataclasses.replace(good.video, **change))
    problems = check_video(bad, spec_of("twitter-video"), t, 10.0)
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize(("change", "problem"), [
    ({"moov_first": False}, "moov"),
    ({"edit_list": True}, "edit list"),
    ({"start_time_s": 1.0}, "starts at"),
    ({"duration_s": 8.0}, "duration"),
    ({"size_bytes": 600_000_000}, "byte cap"),
    ({"has_location": True}, "location"),
    ({"extra_streams": 1}, "extra stream"),
    ({"audio": None}, "audio track was lost"),
    ({"audio": AudioStream("aac", "HE-AAC", 48000, 2, "stereo", 64)}, "AAC profile"),
    ({"audio": AudioStream("aac", "LC", 48000, 6, "5.1", 384)}, "channels"),
    ({"width": 1281}, "odd size"),
])
def test_check_video_catches_file_violations(change: dict[str, Any], problem: str) -> None:
    t, _ = plan(vinfo(codec="vp9"))
    bad = dataclasses.replace(vinfo(), **change)
    problems = check_video(bad, spec_of("twitter-video"), t, 10.0)
    assert any(problem in p for p in problems), problems


# --------------------------------------------------------------------------- stream starts


def test_audio_that_starts_after_the_picture_is_never_copied() -> None:
    # An empty edit before the AAC (a phone's or an editor's late audio): a copy into an MP4
    # without an edit list would start it at 0.
    late = AudioStream("aac", "LC", 48000, 2, "stereo", 128, start_s=0.044)
    t, actions = plan(vinfo(audio=late, fmt="mov", max_keyframe_interval_s=1.0),
                      "tiktok-video")
    assert t.audio.action == "encode" and "audio_encoded" in actions
    on_time = AudioStream("aac", "LC", 48000, 2, "stereo", 128, start_s=0.0005)
    assert plan(vinfo(audio=on_time), "tiktok-video")[0].audio.action == "copy"


def test_a_late_picture_next_to_new_audio_is_encoded_whole() -> None:
    # A copied picture would start at 0 and lose its 0.2 s; an encode holds its first frame.
    mp3 = AudioStream("mp3", None, 44100, 2, "stereo", 192)
    t, _ = plan(vinfo(audio=mp3, start_s=0.2))
    assert t.action == "transcode" and t.audio_shift_s == 0.0  # 0.2 s is 6 whole frames
    assert plan(vinfo(audio=mp3))[0].action == "audio_only"
    # A B-frame delay (no edit list): the copy starts the picture at 0 and the sound with it.
    t, _ = plan(vinfo(audio=mp3, start_s=2 / 30))
    assert t.action == "audio_only" and t.audio_shift_s == pytest.approx(2 / 30, abs=1e-6)


@pytest.mark.parametrize(("variant", "action"), [("instagram-reels", "transcode"),
                                                 ("twitter-video", "audio_only")])
def test_a_picture_a_fraction_of_a_frame_in_moves_the_sound_with_it(variant: str,
                                                                    action: str) -> None:
    # Matroska with Opus: the file starts at the first Opus packet (-7 ms), the picture 14 ms
    # later; the encode puts the first frame at 0 (its frame grid), a copy at 0 too.
    opus = AudioStream("opus", None, 48000, 2, "stereo", 96, start_s=-0.007)
    info = vinfo(fmt="matroska", audio=opus, start_time_s=-0.007, start_s=0.007)
    t, _ = plan(info, variant)
    assert t.action == action and t.audio_shift_s == pytest.approx(0.014)
    args = build_args(SRC, "matroska", t, OUT, duration_s=10.0)
    graph = opt(args, "-filter_complex") or ""
    assert "atrim=start_sample=1696" in graph  # 1024 priming + 672 samples (14 ms)
    assert plan(vinfo(), variant)[0].audio_shift_s == 0.0


def test_a_picture_starting_after_its_grid_point_delays_the_sound() -> None:
    # 20 ms in at 30 fps rounds to the second frame (33 ms): the picture moves 13 ms later.
    pcm = AudioStream("pcm_s16le", None, 48000, 2, "stereo", 1536)
    t, _ = plan(vinfo(fmt="mov", audio=pcm, start_s=0.02), "instagram-reels")
    assert t.audio_shift_s == pytest.approx(0.02 - 1 / 30, abs=1e-6)
    graph = opt(build_args(SRC, "mov", t, OUT, duration_s=10.0), "-filter_complex") or ""
    assert f"atrim=start_sample={1024 + round((0.02 - 1 / 30) * 48000)}" in graph


@pytest.mark.parametrize(("end_s", "frames"), [
    (9.98, 299),   # the sound runs 0.6 frame past the picture: no frame is held for it
    (9.95, None),  # 1.5 frames: the last frame is held (ffmpeg's -t decides how many)
    (10.0, None),  # they end together
])
def test_an_encode_ends_with_its_last_frame(end_s: float, frames: int | None) -> None:
    t, _ = plan(vinfo(end_s=end_s), "instagram-reels")
    assert t.picture_frames == frames
    args = build_args(SRC, "mp4", t, OUT, duration_s=10.0)
    assert opt(args, "-frames:v") == (str(frames) if frames else None)
    if frames is None:  # an output the cap does not change keeps its content key
        assert target_key("s", t) == target_key("s", dataclasses.replace(t, picture_frames=None))
