"""Video engine: ffmpeg argv built with ffmpeg-python's graph builder (pure), run by our runner.

ffmpeg-python is used here and only here, and only to assemble filter graphs and argv; it never
runs anything (:mod:`pipeline.ffmpeg` does). Every encode is H.264 High / yuv420p / CFR /
closed GOP / BT.709 / AAC-LC in an MP4 with the moov atom first and no edit list; a plan that
says ``passthrough`` or ``remux`` keeps the streams untouched.

The picture goes through one chain, in this order: the decoder's autorotate (ffmpeg 5.1
applies every display matrix, mirrored ones included, as transpose/hflip/vflip, and the output
then carries none), deinterlace, square pixels, constant frame rate, crop, scale (with the
colour matrix and range conversion), tone-map or gamut conversion, fill (pad or blur), and
the encoder. Several encodes of one source share everything before the per-output ``split``
(:func:`build_shared_args`): one decode, several outputs.
"""

from __future__ import annotations

import json
import logging
import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import ffmpeg as ffg  # ffmpeg-python: graph and argv building only

from . import ffmpeg
from .bmff import UnsupportedLayout, strip_boxes
from .errors import (
    CannotFit,
    CorruptMedia,
    FFmpegError,
    FFmpegTimeout,
    ProcessingFailed,
)
from .plan import (
    HDR_REFERENCE_WHITE_NITS,
    LOUDNORM_I,
    LOUDNORM_LRA,
    LOUDNORM_TP,
    Geometry,
    VideoTarget,
    budget_kbps,
    round_even,
)
from .probe import (
    BROWSER_DEFAULT_DELAY_MS,
    BROWSER_MIN_DELAY_MS,
    PIL_FORMATS,
    first_animation_frame,
    frame_delays_ms,
    probe_video,
)

log = logging.getLogger(__name__)

# Byte budget: two-pass encodes at a falling bitrate, then smaller pictures, until it fits.
MAX_BUDGET_ATTEMPTS = 8
SHRINK_STEP = 0.75
# Below ~0.02 bit per pixel x264 output breaks into blocks: a smaller picture at a sane
# bitrate looks better than a starved big one, so retries shrink first.
MIN_BITS_PER_PIXEL = 0.02
# Never deliver video below this, whatever the size: too_large instead.
MIN_VIDEO_KBPS = 48
# Retries never shrink the short side below 144 px (the smallest common video size).
MIN_SHORT_SIDE = 144
# Each retry aims this much under the size that would just fit (x264's rate control overshoots
# by a few per cent on short clips).
BUDGET_MARGIN = 0.94
# The blurred background is computed at 1/8 size: the blur hides the detail anyway, and it
# keeps the fill from costing more than the picture itself.
BLUR_DOWNSCALE = 8
BLUR_MIN_SIDE = 16
# ffmpeg's AAC encoder puts 1024 samples of priming (its MDCT delay) before the sound.
AAC_PRIMING_SAMPLES = 1024
# Two-pass average-bitrate encodes may peak this much above the average (VBV maxrate), never
# above the preset's bitrate cap.
PEAK_OVER_AVERAGE = 1.5
# zscale names of the primaries/matrices we convert from; anything else is treated as BT.2020
# (HDR) or BT.709 (SDR).
_ZSCALE_PRIMARIES = {"bt709", "bt2020", "smpte170m", "bt470bg", "smpte432", "smpte431"}
_ZSCALE_MATRIX = {"bt709": "bt709", "bt601": "smpte170m", "bt2020": "bt2020nc",
                  "smpte240m": "smpte240m", "fcc": "fcc"}


@dataclass(frozen=True, slots=True)
class VideoResult:
    """A produced (or passed-through) video and what happened beyond the plan."""

    path: Path
    extra_actions: tuple[str, ...]
    warnings: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Loudness:
    """First-pass EBU R128 measurement (ffmpeg ``loudnorm`` ``print_format=json``)."""

    input_i: float
    input_tp: float
    input_lra: float
    input_thresh: float
    target_offset: float


# --------------------------------------------------------------------------- argv building


# APNG frame delays as browsers show them (probe.shown_delay_ms): the demuxer replaces a delay
# whose rate (den // num, an integer division) is over max_fps, i.e. one of 10 ms or less, and a
# zero delay by 1/default_fps = 100 ms. Its defaults (no limit, 1/15 s) differ from viewers.
APNG_INPUT = {"max_fps": 1000 // BROWSER_MIN_DELAY_MS - 1,
              "default_fps": 1000 // BROWSER_DEFAULT_DELAY_MS}


def _input(src: Path, src_format: str) -> Any:
    """The source as an ffmpeg-python input: our own file, forced demuxer, file protocol only."""
    opts: dict[str, Any] = dict(APNG_INPUT) if src_format == "png" else {}
    name, locked = ffmpeg.locked_input(src, src_format)
    return ffg.input(name, **locked, **opts)


def _pre_chain(stream: Any, t: VideoTarget, g: Geometry) -> Any:
    """What every output of one decode shares: deinterlace, alpha flattening, square pixels."""
    v = stream
    if t.deinterlace:
        # One output frame per input frame (send_frame): the rate stays the source's.
        v = v.filter("bwdif", mode="send_frame", parity="auto", deint="all")
    if t.from_image:
        # GIF/APNG transparency: premultiplied alpha composites the picture onto black.
        v = v.filter("format", "rgba").filter("premultiply", inplace=1)
    if t.square_pixels:
        # Anamorphic: scale to the displayed size (rotation is already applied) so crops and
        # fills work in square pixels.
        v = v.filter("scale", g.source_width, g.source_height, flags="lanczos").filter("setsar", 1)
    return v


def _colour_chain(v: Any, t: VideoTarget) -> Any:
    """HDR -> SDR BT.709 tone-map, or a BT.2020 SDR gamut into BT.709 (zscale)."""
    if t.tonemap and t.in_transfer:
        primaries = t.in_primaries if t.in_primaries in _ZSCALE_PRIMARIES else "bt2020"
        # Linear light with the HDR reference white (BT.2408: 203 nits) at 1.0, BT.709
        # primaries, then Mobius: exact below the knee, highlights rolled off smoothly.
        # desat=0 keeps colour in highlights (phone HDR otherwise comes out grey).
        return (v.filter("zscale", tin=t.in_transfer, pin=primaries,
                         min=_ZSCALE_MATRIX.get(t.in_matrix, "bt2020nc"), rin="tv",
                         t="linear", npl=HDR_REFERENCE_WHITE_NITS)
                .filter("format", "gbrpf32le")
                .filter("zscale", p="bt709")
                .filter("tonemap", tonemap="mobius", desat=0)
                .filter("zscale", t="bt709", m="bt709", r="tv")
                .filter("format", "yuv420p"))
    if t.in_primaries == "bt2020":
        # Wide-gamut SDR (10-bit VP9/HEVC tagged BT.2020): convert the gamut, not just the matrix.
        return (v.filter("zscale", pin="bt2020", min=_ZSCALE_MATRIX.get(t.in_matrix, "bt2020nc"),
                         tin="bt709", rin="pc" if t.full_to_limited else "tv",
                         p="bt709", m="bt709", t="bt709", r="tv")
                .filter("format", "yuv420p"))
    return v


def _branch_chain(stream: Any, t: VideoTarget, g: Geometry, duration_s: float) -> Any:
    """One output's own picture filters: rate, crop, scale, colour, fill."""
    v = stream
    if duration_s > 0:
        # Hold the last frame so the picture lasts as long as the file says (a last frame
        # without a duration, or audio longer than the video); the output's -t cuts it.
        v = v.filter("tpad", stop_mode="clone", stop_duration=f"{duration_s:.3f}")
    if t.fps is not None:
        # Constant frame rate first: a 120 -> 60 fps output then filters half the frames.
        # start_time=0: a picture that starts after the sound holds its first frame from 0,
        # as a player shows it, so the frames keep their time against the audio.
        v = v.filter("fps", fps=f"{t.fps.numerator}/{t.fps.denominator}", start_time=0)
    if t.reframe:
        # Smart framing: the window follows its planned path; crop evaluates x/y per frame.
        from .framing import crop_offset_expr

        offset = crop_offset_expr(t.reframe)
        x, y = (offset, g.crop_y) if t.reframe[0].axis == "x" else (g.crop_x, offset)
        v = v.filter("crop", g.crop_width, g.crop_height, x=x, y=y)
    elif (g.crop_width, g.crop_height) != (g.source_width, g.source_height):
        v = v.filter("crop", g.crop_width, g.crop_height, g.crop_x, g.crop_y)
    scale_opts: dict[str, Any] = {"flags": "lanczos"}
    if not t.tonemap and t.in_primaries != "bt2020":
        # swscale converts the matrix (BT.601 -> BT.709) and full range to limited here.
        scale_opts.update(in_color_matrix=t.in_matrix, out_color_matrix="bt709",
                          in_range="pc" if t.full_to_limited else "auto", out_range="tv")
    v = _colour_chain(v.filter("scale", g.content_width, g.content_height, **scale_opts), t)
    if (g.width, g.height) != (g.content_width, g.content_height):
        if g.fit == "blur":
            split = v.filter_multi_output("split")
            fg, bg = split[0], split[1]
            small_w = max(BLUR_MIN_SIDE, round_even(g.width / BLUR_DOWNSCALE))
            small_h = max(BLUR_MIN_SIDE, round_even(g.height / BLUR_DOWNSCALE))
            # boxblur needs radius <= a quarter of the smaller side (the 4:2:0 chroma plane)
            radius = max(1, min(10, min(small_w, small_h) // 4))
            bg = (bg.filter("scale", small_w, small_h, force_original_aspect_ratio="increase")
                  .filter("crop", small_w, small_h)
                  .filter("boxblur", luma_radius=radius, luma_power=2)
                  .filter("scale", g.width, g.height, flags="bilinear"))
            v = ffg.overlay(bg, fg, x="(W-w)/2", y="(H-h)/2")
        else:
            v = v.filter("pad", g.width, g.height, "(ow-iw)/2", "(oh-ih)/2", color=t.pad_color)
    return v.filter("setsar", 1).filter("format", "yuv420p")


def _audio(inp: Any, t: VideoTarget, *, loudness: Loudness | None, duration_s: float,
           source: Any = None) -> tuple[list[Any], dict[str, Any]]:
    """Audio streams and options for one output (nothing when the output has no audio).

    ``source``: this output's branch of the decoded audio (a shared decode splits it), else
    the input's first audio stream.
    """
    a = t.audio
    if a.action == "none":
        return [], {}
    if a.action == "copy":
        return [inp["a:0"]], {"acodec": "copy"}
    if a.action == "silent":
        # A silent track exactly as long as the picture (no -shortest guesswork).
        silence = ffg.input(f"aevalsrc=0:c=stereo:s={a.sample_rate_hz}:d={duration_s:.3f}",
                            f="lavfi")
        stream = silence["a"]
    else:
        stream = _aligned_audio(inp["a:0"] if source is None else source, a.sample_rate_hz)
        if a.loudnorm and loudness is not None:
            stream = stream.filter(
                "loudnorm", I=LOUDNORM_I, TP=LOUDNORM_TP, LRA=LOUDNORM_LRA,
                measured_I=loudness.input_i, measured_TP=loudness.input_tp,
                measured_LRA=loudness.input_lra, measured_thresh=loudness.input_thresh,
                offset=loudness.target_offset, linear="true")
    # -ac/-ar make ffmpeg resample at the graph's end: 5.1 is downmixed with the standard
    # matrix (centre and surrounds at -3 dB into left/right, LFE dropped), not truncated.
    return [stream], {"acodec": "aac", "b:a": f"{a.bitrate_kbps}k", "ar": a.sample_rate_hz,
                      "ac": a.channels, "profile:a": "aac_low"}


def _aligned_audio(stream: Any, sample_rate_hz: int) -> Any:
    """The source's audio on the delivered file's timeline, ahead by the AAC encoder delay.

    An MP4 without an edit list starts every track at 0 and cannot hide the 1024 samples of
    priming an AAC encoder puts first, so players play them: the sound would come 21 ms late.
    The encoder is fed the audio from its 1024th sample on, and the priming takes the place
    of the samples cut: decoded sample n is the source's sample n again. ``first_pts=0`` pads
    (or trims) the start with silence first, so audio that starts after the picture keeps
    its offset to it.
    """
    return (stream.filter("aresample", sample_rate_hz, first_pts=0)
            .filter("atrim", start_sample=AAC_PRIMING_SAMPLES)
            .filter("asetpts", "PTS-STARTPTS"))


def _x264_opts(t: VideoTarget, *, rate_kbps: int, two_pass: int,
               passlog: Path | None) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "vcodec": "libx264", "preset": t.x264_preset or "medium", "profile:v": "high",
        "pix_fmt": "yuv420p", "g": t.gop_frames, "keyint_min": min(t.gop_frames, 25),
        # Closed GOP (X, Instagram, Threads, Facebook Reels); 8x8 transforms keep the
        # stream High profile even with the fastest presets (ultrafast turns them off).
        # force-cfr: the SPS's VUI says fixed_frame_rate_flag=1 (time_scale = 2 x fps), which
        # is what a checker reading the bitstream takes for constant frame rate; the frames
        # are already constant-rate (the fps filter, and -fps_mode cfr).
        "x264-params": "open-gop=0:8x8dct=1:force-cfr=1", "fps_mode": "cfr",
        "color_primaries": "bt709", "color_trc": "bt709", "colorspace": "bt709",
        "color_range": "tv",
    }
    if t.level:
        opts["level:v"] = t.level
    if two_pass:
        peak = int(rate_kbps * PEAK_OVER_AVERAGE)
        if t.spec_max_bitrate_kbps:
            peak = min(peak, t.spec_max_bitrate_kbps)
        opts.update({"b:v": f"{rate_kbps}k", "maxrate": f"{max(peak, rate_kbps)}k",
                     "bufsize": f"{max(peak, rate_kbps) * 2}k", "pass": two_pass,
                     "passlogfile": str(passlog)})
    else:
        # Constant quality, capped by the budget/bitrate ceiling through the VBV.
        opts.update({"crf": t.crf, "maxrate": f"{rate_kbps}k", "bufsize": f"{rate_kbps * 2}k"})
    return opts


def _mp4_opts() -> dict[str, Any]:
    # moov first (+faststart), no edit list (Instagram/Threads refuse them), no source
    # metadata (GPS, device) and no chapters. Without an edit list a track cannot start
    # late, so the muxer folds any start offset into the first sample's duration: with the
    # default (auto) an AAC encoder's priming shifts a copied video track and its first frame
    # lasts 55 ms instead of 33 (variable frame rate); make_non_negative shifts every stream
    # together instead.
    # Negative composition offsets (ctts version 1, brand iso4): the first frame is shown at
    # 0, not after the B-frame reorder delay (two frames), so the picture does not lag the
    # sound (checked with ffmpeg and Chromium: each frame is shown at its source time).
    return {"f": "mp4", "movflags": "+faststart+negative_cts_offsets", "use_editlist": 0,
            "map_metadata": -1, "map_chapters": -1, "avoid_negative_ts": "make_non_negative"}


def _output_opts(t: VideoTarget, *, rate_kbps: int, two_pass: int, passlog: Path | None,
                 duration_s: float) -> dict[str, Any]:
    opts = _x264_opts(t, rate_kbps=rate_kbps, two_pass=two_pass, passlog=passlog)
    if duration_s > 0:
        opts["t"] = f"{duration_s:.3f}"  # the source's length, or the trim
    return opts


def _length(t: VideoTarget, duration_s: float) -> float:
    """The output's duration: the source's (times its loops), or the trim's when shorter."""
    duration_s *= t.loops
    return min(duration_s, t.trim_s) if t.trim_s is not None and duration_s > 0 else duration_s


def _args(node: Any) -> list[str]:
    return [str(a) for a in node.get_args()]


def _head(progress: bool) -> list[str]:
    args = ffmpeg.ffmpeg_head("-y", "-v", "error")
    if progress:
        args += ["-progress", "pipe:1", "-nostats"]
    return args


def build_args(src: Path, src_format: str, t: VideoTarget, out: Path, *,
               maxrate_kbps: int | None = None, geometry: Geometry | None = None,
               two_pass: int = 0, passlog: Path | None = None, progress: bool = False,
               loudness: Loudness | None = None, duration_s: float = 0.0) -> list[str]:
    """The full ffmpeg argv for one target (pure: no process is started).

    Args:
        src: the local source we wrote.
        src_format: its sniffed container (chooses the forced demuxer).
        t: the target.
        out: output path in the workdir.
        maxrate_kbps: the video bitrate for this attempt (byte-budget retries); default the
            target's cap.
        geometry: override of the target's geometry (shrinking retries).
        two_pass: 0 for one constant-quality pass, else 1 or 2 (average-bitrate two-pass).
        passlog: the two-pass log file prefix.
        progress: add ``-progress pipe:1`` for progress events.
        loudness: the first-pass loudness measurement, when the target normalises loudness.
        duration_s: the source's duration: an encode lasts exactly this long (or the
            trim), holding the last frame if the picture ends early. A looped target lasts
            ``t.loops`` times this, ``src`` then being the looped frames from ``_decodable``.

    Returns:
        argv, ``argv[0]`` being the ffmpeg binary.

    Raises:
        ConfigError: ffmpeg is not installed.
    """
    g = geometry or t.geometry
    inp = _input(src, src_format)
    streams: list[Any]
    if t.action in ("passthrough", "remux", "audio_only"):
        streams = [inp["v:0"]]
        opts: dict[str, Any] = {"vcodec": "copy"}
        if t.audio.action == "copy" or t.action != "audio_only":
            if t.audio.action != "none":
                streams.append(inp["a:0"])
                opts["acodec"] = "copy"
        else:
            audio, audio_opts = _audio(inp, t, loudness=loudness, duration_s=duration_s)
            streams += audio
            opts.update(audio_opts)
        if t.trim_s is not None:
            opts["t"] = f"{t.trim_s:.3f}"
        opts.update(_mp4_opts())
        opts.update(_tag_opts(t))
        node = ffg.output(*streams, str(out), **opts)
        return _head(progress) + _args(node)
    length = _length(t, duration_s)
    v = _branch_chain(_pre_chain(inp["v:0"], t, g), t, g, length)
    rate = maxrate_kbps or t.maxrate_kbps
    opts = _output_opts(t, rate_kbps=rate, two_pass=two_pass, passlog=passlog,
                        duration_s=length)
    if two_pass == 1:
        # The analysis pass needs the picture only; its output is thrown away.
        node = ffg.output(v, "-", **opts, f="null")
        return _head(progress) + _args(node)
    audio, audio_opts = _audio(inp, t, loudness=loudness, duration_s=length)
    node = ffg.output(v, *audio, str(out), **opts, **audio_opts, **_mp4_opts())
    return _head(progress) + _args(node)


def _tag_opts(t: VideoTarget) -> dict[str, Any]:
    # Stream copy keeps the source's sample-entry tag; Apple players and Instagram want
    # HEVC as 'hvc1' (parameter sets in the sample description), which is what phones write.
    return {"tag:v": "hvc1"} if t.source_codec == "hevc" else {}


def build_shared_args(src: Path, src_format: str, outputs: Sequence[tuple[VideoTarget, Path]],
                      *, progress: bool = False, duration_s: float = 0.0) -> list[str]:
    """One ffmpeg argv that encodes several targets from a single decode of ``src`` (pure).

    The shared part (decode, deinterlace, square pixels) is split once per output; each
    branch has its own rate, geometry, colour, fill, encoder and audio. All targets must
    come from :func:`pipeline.plan.shared_decodes` (same source, same shared part).

    Raises:
        ValueError: fewer than two outputs, or targets that do not share a decode.
        ConfigError: ffmpeg is not installed.
    """
    if len(outputs) < 2:
        raise ValueError("a shared decode needs at least two outputs")
    first = outputs[0][0]
    shared = {(t.deinterlace, t.from_image, t.square_pixels, t.full_to_limited, t.action,
               t.loops) for t, _ in outputs}
    if len(shared) != 1 or first.action != "transcode" or any(
            t.audio.loudnorm for t, _ in outputs):
        raise ValueError("these targets cannot share one decode")
    inp = _input(src, src_format)
    pre = _pre_chain(inp["v:0"], first, first.geometry)
    parts = pre.filter_multi_output("split", len(outputs))
    # Each encoded audio gets its own branch: identical filter chains on one input would be
    # merged into one node by the graph builder, which cannot feed two outputs.
    encoded = [i for i, (t, _) in enumerate(outputs) if t.audio.action == "encode"]
    sounds = (inp["a:0"].filter_multi_output("asplit", len(encoded)) if len(encoded) > 1
              else None)
    nodes = []
    for i, (t, out) in enumerate(outputs):
        length = _length(t, duration_s)
        v = _branch_chain(parts[i], t, t.geometry, length)
        opts = _output_opts(t, rate_kbps=t.maxrate_kbps, two_pass=0, passlog=None,
                            duration_s=length)
        branch = sounds[encoded.index(i)] if sounds is not None and i in encoded else None
        audio, audio_opts = _audio(inp, t, loudness=None, duration_s=length, source=branch)
        nodes.append(ffg.output(v, *audio, str(out), **opts, **audio_opts, **_mp4_opts()))
    return _head(progress) + _args(ffg.merge_outputs(*nodes))


def loudness_args(src: Path, src_format: str, *, trim_s: float | None) -> list[str]:
    """First loudnorm pass: measure the first audio track, write nothing (pure).

    Raises:
        ConfigError: ffmpeg is not installed.
    """
    inp = _input(src, src_format)
    a = inp["a:0"].filter("loudnorm", I=LOUDNORM_I, TP=LOUDNORM_TP, LRA=LOUDNORM_LRA,
                          print_format="json")
    opts: dict[str, Any] = {"f": "null"}
    if trim_s is not None:
        opts["t"] = f"{trim_s:.3f}"
    # loudnorm prints its JSON at log level info, after everything else.
    return [*ffmpeg.ffmpeg_head("-nostats", "-v", "info"), *_args(ffg.output(a, "-", **opts))]


def decode_check_args(src: Path, src_format: str) -> list[str]:
    """Decode the first video stream to nothing, stopping at the first error (pure).

    Raises:
        ConfigError: ffmpeg is not installed.
    """
    node = ffg.output(_input(src, src_format)["v:0"], "-", f="null")
    return [*ffmpeg.ffmpeg_head("-v", "error", "-xerror"), *_args(node)]


# --------------------------------------------------------------------------- running


def render_video(src: Path, src_format: str, t: VideoTarget, out: Path, *, duration_s: float,
                 timeout_s: float, on_progress: Callable[[float], None] | None = None,
                 first_pass: Path | None = None) -> VideoResult:
    """Produce ``out``, keeping it under the byte cap.

    A pass-through is the source rewritten with only the boxes a player needs
    (:func:`pipeline.bmff.strip_boxes`: same samples, same timing, no metadata or appended
    payloads); a layout that rewrite does not handle (fragmented MP4) is re-muxed instead.

    Args:
        src: the fetched source.
        src_format: its sniffed format.
        t: the planned target.
        out: where to write the output (its folder must exist).
        duration_s: the source's duration.
        timeout_s: wall-clock limit for each ffmpeg run.
        on_progress: called with 0..1 during the main encode.
        first_pass: an output already encoded for this target (a shared decode), so the
            first encode is skipped and only the byte cap is checked.

    Returns:
        Where the output is, and actions/warnings beyond the plan (byte-budget retries).

    Raises:
        CorruptMedia: the source cannot be decoded.
        FFmpegError: ffmpeg failed for another reason (``processing_failed``, stderr tail in
            the message).
        FFmpegTimeout: ffmpeg ran past ``timeout_s`` (``processing_timeout``).
        CannotFit: not even the smallest acceptable attempt fits the byte cap.
        ProcessingFailed: the pass-through copy could not be written.
    """
    fallback: tuple[str, ...] = ()
    if t.action == "passthrough":
        try:
            strip_boxes(src, out)
            return VideoResult(out, (), ())
        except UnsupportedLayout as err:
            log.info("pass-through rewrite not possible (%s): re-muxing instead", err)
            t, fallback = replace(t, action="remux"), ("remuxed",)
        except OSError as err:
            raise ProcessingFailed(f"cannot write the pass-through copy: {err.strerror}") from err
    work = _Work(src, src_format, t, out, duration_s=duration_s, timeout_s=timeout_s)
    try:
        result = work.run(on_progress, first_pass)
        describe_brands(result.path)
        return replace(result, extra_actions=(*fallback, *result.extra_actions))
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    finally:
        work.cleanup()


# ftyp brands that describe what we write: ISO base media (iso4 with negative composition
# offsets), MP4 v1/v2 and the codecs of a stream copy. ffmpeg 5.1 adds 'dby1' (Dolby Vision)
# whenever the source stream had a Dolby Vision configuration, even when the output is
# tone-mapped SDR H.264 or a copy without the configuration box.
OWN_BRANDS = frozenset({b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42",
                        b"avc1", b"av01"})


def own_brands(ftyp_body: bytes) -> bytes:
    """An ``ftyp`` payload with every brand that does not describe our output replaced.

    The payload keeps its length (so no offset in the file moves): a foreign major brand
    becomes ``isom``, a foreign compatible brand ``mp42`` (or the major brand when ``mp42``
    is already listed).

    Raises:
        Nothing.
    """
    if len(ftyp_body) < 8 or len(ftyp_body) % 4:
        return ftyp_body
    major = ftyp_body[:4] if ftyp_body[:4] in OWN_BRANDS else b"isom"
    compatible = [ftyp_body[i:i + 4] for i in range(8, len(ftyp_body), 4)]
    filler = b"mp42" if b"mp42" not in compatible else major
    return major + ftyp_body[4:8] + b"".join(
        b if b in OWN_BRANDS else filler for b in compatible)


def describe_brands(path: Path) -> None:
    """Rewrite, in place, the ``ftyp`` brands of an MP4 we wrote so they describe it.

    Raises:
        OSError: the file cannot be read or written.
    """
    with path.open("r+b") as fh:
        head = fh.read(8)
        if len(head) < 8:
            return
        size, kind = struct.unpack(">I4s", head)
        if kind != b"ftyp" or not 16 <= size <= 4096:
            return
        body = fh.read(size - 8)
        fixed = own_brands(body)
        if fixed != body:
            fh.seek(8)
            fh.write(fixed)


def _decodable(src: Path, src_format: str, folder: Path, loops: int = 1) -> tuple[Path, str]:
    """The source as ffmpeg can read it: animated WebP, and any looped animation, become a
    lossless APNG first.

    ffmpeg 5.1's WebP decoder reads no animation (ANIM/ANMF chunks); Pillow does, and gives
    every frame already composited. Each frame keeps its own delay, as the probe measured it
    (browsers' rule for delays of 10 ms or less): a WebP frame's ``info["duration"]`` is only
    set once the frame is decoded, so it is not read from Pillow.

    ``loops`` > 1 writes the frames that many times over. ``-stream_loop`` cannot be used: it
    restarts each loop one *average* frame after the last frame's start, not after that
    frame's own delay, so uneven delays shift every loop and the last one gets cut. Looping
    happens only to animations shorter than a platform's minimum (a few seconds).

    Raises:
        CorruptMedia: Pillow cannot read the animation.
    """
    if src_format != "webp" and loops <= 1:
        return src, src_format
    from PIL import Image, ImageSequence

    out = folder / (src.stem + "-frames.apng")
    try:
        with Image.open(src, formats=PIL_FORMATS[src_format]) as im:
            # Whole milliseconds: APNG stores each delay as n/1000 s (Pillow writes it so).
            durations = [round(d) for d in frame_delays_ms(im, src_format, src)]
            frames = [frame.convert("RGBA") for frame in ImageSequence.Iterator(im)][
                first_animation_frame(im, src_format):]
            frames[0].save(out, format="PNG", save_all=True,
                           append_images=frames[1:] + frames * (loops - 1),
                           duration=durations * loops, loop=0, default_image=False,
                           compress_level=1)
    except (OSError, ValueError, EOFError) as err:
        out.unlink(missing_ok=True)
        raise CorruptMedia(f"cannot read the animation: {err}") from err
    return out, "png"


def render_shared(src: Path, src_format: str, outputs: Sequence[tuple[VideoTarget, Path]], *,
                  duration_s: float, timeout_s: float,
                  on_progress: Callable[[float], None] | None = None) -> None:
    """Encode several targets of one source in one ffmpeg process (one decode).

    The outputs are first passes: :func:`render_video` with ``first_pass`` then checks each
    against its byte cap (and re-encodes the ones over it on their own).

    Raises:
        CorruptMedia: the source cannot be decoded.
        FFmpegError, FFmpegTimeout: ffmpeg failed or took too long (no output is left).
        ValueError: the targets cannot share a decode.
    """
    # loudnorm measures the whole track; a trimmed output would measure only its part, so
    # trims and loudness normalisation are encoded one by one.
    if any(t.audio.loudnorm for t, _ in outputs):
        raise ValueError("loudness-normalised targets are encoded on their own")
    readable, fmt = _decodable(src, src_format, outputs[0][1].parent, outputs[0][0].loops)
    args = build_shared_args(readable, fmt, outputs, progress=on_progress is not None,
                             duration_s=duration_s)
    longest = max(_length(t, duration_s) for t, _ in outputs)
    try:
        _run_encode(args, readable, fmt, timeout_s=timeout_s, on_progress=on_progress,
                    duration_s=longest)
    except BaseException:
        for _, out in outputs:
            out.unlink(missing_ok=True)
        raise
    finally:
        if readable != src:
            readable.unlink(missing_ok=True)


class _Work:
    """One target's encode attempts and the files they leave behind."""

    def __init__(self, src: Path, src_format: str, t: VideoTarget, out: Path, *,
                 duration_s: float, timeout_s: float) -> None:
        self.original = src
        self.src, self.fmt, self.t, self.out = src, src_format, t, out
        self.duration_s, self.timeout_s = duration_s, timeout_s  # the source's duration
        self.length_s = _length(t, duration_s)  # the output's: loops and trim applied
        self.passlog = out.with_name(out.stem + "-passlog")
        self.loudness: Loudness | None = None

    def run(self, on_progress: Callable[[float], None] | None,
            first_pass: Path | None) -> VideoResult:
        t = self.t
        self.src, self.fmt = _decodable(self.src, self.fmt, self.out.parent, t.loops)
        if t.audio.loudnorm and t.audio.action == "encode":
            self.loudness = _measure_loudness(self.src, self.fmt, trim_s=t.trim_s,
                                              timeout_s=self.timeout_s)
        if t.action != "transcode":
            self._encode(build_args(self.src, self.fmt, t, self.out, loudness=self.loudness,
                                    duration_s=self.duration_s, progress=bool(on_progress)),
                         on_progress)
            size = self.out.stat().st_size
            if size > t.max_bytes:
                raise CannotFit(f"the video is {size} bytes without re-encoding, over the "
                                f"{t.max_bytes}-byte cap")
            return VideoResult(self.out, (), ())
        audio_kbps = t.audio.bitrate_kbps if t.audio.action != "none" else 0
        budget = budget_kbps(t.max_bytes, self.length_s, audio_kbps)
        if budget < _floor_kbps(t.geometry, t):
            # The cap cannot hold this picture at a watchable bitrate: skip the doomed
            # constant-quality pass and go straight to smaller two-pass encodes.
            return self._fit_budget(budget)
        if first_pass is None or not first_pass.exists():
            self._encode(build_args(self.src, self.fmt, t, self.out, loudness=self.loudness,
                                    duration_s=self.duration_s, progress=bool(on_progress)),
                         on_progress)
        elif first_pass != self.out:
            first_pass.replace(self.out)
        size = self.out.stat().st_size
        over_rate = self._over_bitrate_cap()
        if size <= t.max_bytes and over_rate is None:
            return VideoResult(self.out, (), ())
        log.info("%s is %d bytes (cap %d), %s kbps video (cap %s): two-pass retries",
                 self.out.name, size, t.max_bytes, over_rate, t.spec_max_bitrate_kbps)
        rate = min(budget, int(t.maxrate_kbps * t.max_bytes / size * BUDGET_MARGIN))
        if over_rate is not None and t.spec_max_bitrate_kbps:
            # The VBV bounds peaks, not the average of a short clip: aim under the cap.
            rate = min(rate, int(t.spec_max_bitrate_kbps * BUDGET_MARGIN))
        return self._fit_budget(rate)

    def _over_bitrate_cap(self) -> int | None:
        """The output's video kbps when it is over the preset's bitrate cap, else None."""
        cap = self.t.spec_max_bitrate_kbps
        if not cap:
            return None
        out = probe_video(self.out, "mp4", timeout_s=self.timeout_s)
        kbps = (out.video.bitrate_kbps if out.video else None) or out.bitrate_kbps or 0
        return kbps if kbps > cap else None

    def _fit_budget(self, rate: int) -> VideoResult:
        """Two-pass average-bitrate retries, then smaller pictures, until the file fits."""
        t = self.t
        geometry = t.geometry
        extra: list[str] = []
        analysed: Geometry | None = None
        for _attempt in range(MAX_BUDGET_ATTEMPTS):
            while rate < _floor_kbps(geometry, t):
                smaller = _shrink(geometry, t)
                if smaller is None:
                    raise CannotFit(
                        f"cannot fit the video under {t.max_bytes} bytes: it would need "
                        f"{rate} kbps at {geometry.width}x{geometry.height} or less "
                        f"(at least {_floor_kbps(geometry, t)} kbps is needed)")
                geometry = smaller
                if "resized" not in extra:
                    extra.append("resized")
            if analysed != geometry:  # the analysis pass depends on the picture, not the rate
                self._encode(build_args(self.src, self.fmt, t, self.out, maxrate_kbps=rate,
                                        geometry=geometry, two_pass=1, passlog=self.passlog,
                                        duration_s=self.duration_s), None)
                analysed = geometry
            self._encode(build_args(self.src, self.fmt, t, self.out, maxrate_kbps=rate,
                                    geometry=geometry, two_pass=2, passlog=self.passlog,
                                    loudness=self.loudness, duration_s=self.duration_s), None)
            size = self.out.stat().st_size
            over_rate = self._over_bitrate_cap()
            if size <= t.max_bytes and over_rate is None:
                return VideoResult(self.out, tuple(extra), ("reencoded_for_byte_budget",))
            shrink = t.max_bytes / size
            if over_rate is not None and t.spec_max_bitrate_kbps:
                shrink = min(shrink, t.spec_max_bitrate_kbps / over_rate)
            rate = int(rate * shrink * BUDGET_MARGIN)
        raise CannotFit(f"cannot fit the video under {t.max_bytes} bytes after "
                        f"{MAX_BUDGET_ATTEMPTS} attempts")

    def _encode(self, args: list[str], on_progress: Callable[[float], None] | None) -> None:
        _run_encode(args, self.src, self.fmt, timeout_s=self.timeout_s, on_progress=on_progress,
                    duration_s=self.length_s)

    def cleanup(self) -> None:
        for p in self.passlog.parent.glob(self.passlog.name + "*"):
            p.unlink(missing_ok=True)
        if self.src != self.original:
            self.src.unlink(missing_ok=True)  # the APNG made from a WebP or looped animation


def _run_encode(args: list[str], src: Path, src_format: str, *, timeout_s: float,
                on_progress: Callable[[float], None] | None, duration_s: float) -> None:
    """Run an encode; a failure on a source that does not decode is ``corrupt_media``."""
    ffmpeg.require_capabilities()  # once per process, before the first encode
    try:
        ffmpeg.run(args, timeout_s=timeout_s, on_progress=on_progress, duration_s=duration_s)
    except FFmpegTimeout:
        raise
    except FFmpegError as err:
        _raise_if_undecodable(src, src_format, timeout_s=timeout_s, cause=err)
        raise


def _raise_if_undecodable(src: Path, src_format: str, *, timeout_s: float,
                          cause: FFmpegError) -> None:
    """Tell a broken source from our own failure: decode it alone, stopping at any error.

    Raises:
        CorruptMedia: the source's video does not decode.
    """
    try:
        ffmpeg.run(decode_check_args(src, src_format), timeout_s=timeout_s)
    except FFmpegTimeout:
        return  # inconclusive: report the original failure
    except FFmpegError as err:
        raise CorruptMedia(f"the video cannot be decoded: {err.stderr_tail.strip()[-300:]}",
                           details={"stderr": err.stderr_tail,
                                    "encode_stderr": cause.stderr_tail}) from cause


def _measure_loudness(src: Path, src_format: str, *, trim_s: float | None,
                      timeout_s: float) -> Loudness | None:
    """First loudnorm pass; None for silence (nothing to normalise).

    Raises:
        ProcessingFailed: loudnorm printed no measurement.
        FFmpegError, FFmpegTimeout: ffmpeg failed.
    """
    done = ffmpeg.run(loudness_args(src, src_format, trim_s=trim_s), timeout_s=timeout_s)
    return parse_loudness(done.stderr_tail)


def parse_loudness(stderr_tail: str) -> Loudness | None:
    """The JSON block loudnorm prints last (its machine-readable report, not a log line).

    Returns:
        The measurement, or None when the input is silent (loudnorm reports ``-inf``).

    Raises:
        ProcessingFailed: no JSON report in the text.
    """
    start, end = stderr_tail.rfind("{"), stderr_tail.rfind("}")
    try:
        data = json.loads(stderr_tail[start:end + 1]) if 0 <= start < end else None
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise ProcessingFailed("loudnorm did not report a measurement",
                               details={"stderr": stderr_tail})
    try:
        values = [float(data[k]) for k in ("input_i", "input_tp", "input_lra", "input_thresh",
                                           "target_offset")]
    except (KeyError, TypeError, ValueError) as err:
        raise ProcessingFailed("loudnorm reported an unreadable measurement") from err
    if not all(math.isfinite(v) for v in values):
        return None
    return Loudness(*values)


def _floor_kbps(g: Geometry, t: VideoTarget) -> int:
    fps = float(t.fps or 30)
    return max(MIN_VIDEO_KBPS, int(g.width * g.height * fps * MIN_BITS_PER_PIXEL / 1000))


def _shrink(g: Geometry, t: VideoTarget) -> Geometry | None:
    """The same picture 25 % smaller, or None at the preset's (or our) minimum size."""
    floor = max(t.min_width / g.width, t.min_height / g.height,
                MIN_SHORT_SIDE / min(g.width, g.height))
    step = max(SHRINK_STEP, floor)
    if step >= 1.0:
        return None

    def s(n: int) -> int:
        return round_even(n * step)

    new = replace(g, width=s(g.width), height=s(g.height), content_width=s(g.content_width),
                  content_height=s(g.content_height))
    if (new.width, new.height) == (g.width, g.height):
        return None
    return new
