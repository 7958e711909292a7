"""ffmpeg argv for the video engine, built with ffmpeg-python's graph builder (pure).

ffmpeg-python is imported here and nowhere else in the package, and only to assemble filter
graphs and argv; it never runs anything (:mod:`pipeline.ffmpeg` does). The picture chain's
order is described in :mod:`pipeline.video`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ffmpeg as ffg  # ffmpeg-python: graph and argv building only

from .. import ffmpeg
from ..geometry import Geometry, round_even
from ..plan import (
    HDR_REFERENCE_WHITE_NITS,
    LOUDNORM_I,
    LOUDNORM_LRA,
    LOUDNORM_TP,
    VideoTarget,
    tone_map_once,
)
from ..probe import BROWSER_DEFAULT_DELAY_MS, BROWSER_MIN_DELAY_MS
from .burnin import FONTS_DIR
from .frames import FRAMES_FORMAT
from .loudness import Loudness
from .tee import tee_output

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


# APNG frame delays as browsers show them (probe.shown_delay_ms): the demuxer replaces a delay
# whose rate (den // num, an integer division) is over max_fps, i.e. one of 10 ms or less, and a
# zero delay by 1/default_fps = 100 ms. Its defaults (no limit, 1/15 s) differ from viewers.
APNG_INPUT = {"max_fps": 1000 // BROWSER_MIN_DELAY_MS - 1,
              "default_fps": 1000 // BROWSER_DEFAULT_DELAY_MS}


def _input(src: Path, src_format: str) -> Any:
    """The source as an ffmpeg-python input: our own file, forced demuxer, file protocol only."""
    opts: dict[str, Any] = dict(APNG_INPUT) if src_format == "png" else {}
    if src_format == FRAMES_FORMAT:
        # One decoder thread: frame threads each hold a full-size RGBA frame and the one
        # before it (APNG blending), so their memory would grow with the host's cores.
        opts["threads"] = 1
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


def _branch_chain(stream: Any, t: VideoTarget, g: Geometry, duration_s: float,
                  captions: Path | None = None) -> Any:
    """One output's own picture filters: rate, crop, scale, colour, fill, burned-in captions
    (``captions``: the ASS script of :mod:`pipeline.video.burnin`)."""
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
        from ..vision.camera import crop_offset_expr

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
    if captions is not None:
        # Drawn on the finished frame, so the margins are the output's own pixels.
        v = v.filter("ass", filename=str(captions), fontsdir=str(FONTS_DIR))
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
        stream = _aligned_audio(inp["a:0"] if source is None else source, a.sample_rate_hz,
                                t.audio_shift_s)
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


def _aligned_audio(stream: Any, sample_rate_hz: int, shift_s: float = 0.0) -> Any:
    """The source's audio on the delivered file's timeline, ahead by the AAC encoder delay.

    An MP4 without an edit list starts every track at 0 and cannot hide the 1024 samples of
    priming an AAC encoder puts first, so players play them: the sound would come 21 ms late.
    The encoder is fed the audio from its 1024th sample on, and the priming takes the place
    of the samples cut: decoded sample n is the source's sample n again. ``first_pts=0`` pads
    (or trims) the start with silence first, so audio that starts after the picture keeps
    its offset to it. ``shift_s`` (the plan's ``audio_shift_s``) moves the sound earlier by
    as much as the picture moves onto the output's frame grid; a negative shift delays it.
    """
    skip = AAC_PRIMING_SAMPLES + round(shift_s * sample_rate_hz)
    stream = stream.filter("aresample", sample_rate_hz, first_pts=0)
    if skip < 0:
        # A later start than the priming can absorb: silence first (adelay's S is samples).
        stream = stream.filter("adelay", delays=f"{-skip}S", all=1)
        skip = 0
    return stream.filter("atrim", start_sample=skip).filter("asetpts", "PTS-STARTPTS")


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
    if t.picture_frames is not None:
        # The sound outlasts the picture by under a frame: no held frame for it (the plan's
        # picture_frames); the sound still plays to its end.
        opts["frames:v"] = t.picture_frames
    return opts


def output_length(t: VideoTarget, duration_s: float) -> float:
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


# Plan actions whose picture is copied, not decoded: no filter graph, no encoder.
STREAM_COPY_ACTIONS = frozenset({"passthrough", "remux", "audio_only"})


def build_args(src: Path, src_format: str, t: VideoTarget, out: Path, *,
               maxrate_kbps: int | None = None, geometry: Geometry | None = None,
               two_pass: int = 0, passlog: Path | None = None, progress: bool = False,
               loudness: Loudness | None = None, duration_s: float = 0.0,
               captions: Path | None = None, tap_fd: int | None = None) -> list[str]:
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
        captions: the ASS script of the target's burned-in captions (see
            :func:`pipeline.video.burnin.write_script`).
        tap_fd: an encode's second copy, for the subject check to decode while it runs
            (:mod:`pipeline.vision.tap`): the encoder's own packets, fragmented MP4, written
            to this inherited file descriptor too. Only for an encode into an MP4.

    Returns:
        argv, ``argv[0]`` being the ffmpeg binary.

    Raises:
        ConfigError: ffmpeg is not installed.
        ValueError: a tap asked for a stream copy, an analysis pass, or an ``out`` whose
            name a tee muxer cannot hold (:func:`.tee.tappable`).
    """
    if tap_fd is not None and (t.action in STREAM_COPY_ACTIONS or two_pass == 1):
        raise ValueError("only an encode into an MP4 can be tapped")
    inp = _input(src, src_format)
    if t.action in STREAM_COPY_ACTIONS:
        node = _copy_output(inp, t, out, loudness=loudness, duration_s=duration_s)
    else:
        g = geometry or t.geometry
        length = output_length(t, duration_s)
        v = _branch_chain(_pre_chain(inp["v:0"], t, g), t, g, length, captions)
        opts = _output_opts(t, rate_kbps=maxrate_kbps or t.maxrate_kbps, two_pass=two_pass,
                            passlog=passlog, duration_s=length)
        if two_pass == 1:
            # The analysis pass needs the picture only; its output is thrown away.
            node = ffg.output(v, "-", **opts, f="null")
        else:
            audio, audio_opts = _audio(inp, t, loudness=loudness, duration_s=length)
            name, muxing = tee_output(out, tap_fd, _mp4_opts())
            node = ffg.output(v, *audio, name, **opts, **audio_opts, **muxing)
    return _head(progress) + _args(node)


def _copy_output(inp: Any, t: VideoTarget, out: Path, *, loudness: Loudness | None,
                 duration_s: float) -> Any:
    """The output node of a target that copies the picture (pass-through, remux, audio only).

    The sound is copied too, except for an ``audio_only`` target: its picture conforms but
    its sound does not, so only the audio track is made anew (encoded, or silence added).
    """
    streams: list[Any] = [inp["v:0"]]
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
    return ffg.output(*streams, str(out), **opts, **_mp4_opts(), **_tag_opts(t))


def _tag_opts(t: VideoTarget) -> dict[str, Any]:
    # Stream copy keeps the source's sample-entry tag; Apple players and Instagram want
    # HEVC as 'hvc1' (parameter sets in the sample description), which is what phones write.
    return {"tag:v": "hvc1"} if t.source_codec == "hevc" else {}


def build_shared_args(src: Path, src_format: str, outputs: Sequence[tuple[VideoTarget, Path]],
                      *, progress: bool = False, duration_s: float = 0.0) -> list[str]:
    """One ffmpeg argv that encodes several targets from a single decode of ``src`` (pure).

    The shared part (decode, deinterlace, square pixels, and an HDR source's tone map at the
    largest member's size) is split once per output; each branch has its own rate, geometry,
    colour, fill, encoder and audio. All targets must
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
    targets = [t for t, _ in outputs]
    once = tone_map_once(targets)
    if once is not None:
        # HDR: one tone map for every output, at the largest member's size (pipeline.plan
        # .prechain); each branch then scales an SDR BT.709 picture, tags unchanged.
        pre = _colour_chain(pre.filter("scale", once.width, once.height, flags="lanczos"),
                            first)
        targets = list(once.members)
    parts = pre.filter_multi_output("split", len(outputs))
    # Each encoded audio gets its own branch: identical filter chains on one input would be
    # merged into one node by the graph builder, which cannot feed two outputs.
    encoded = [i for i, (t, _) in enumerate(outputs) if t.audio.action == "encode"]
    sounds = (inp["a:0"].filter_multi_output("asplit", len(encoded)) if len(encoded) > 1
              else None)
    nodes = []
    for i, (t, out) in enumerate(zip(targets, (out for _, out in outputs), strict=True)):
        length = output_length(t, duration_s)
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


def decode_check_args(src: Path, src_format: str, *, audio: bool = False) -> list[str]:
    """Decode the first video stream (and the first audio stream with ``audio``) to nothing,
    stopping at the first error (pure).

    Raises:
        ConfigError: ffmpeg is not installed.
    """
    inp = _input(src, src_format)
    streams = [inp["v:0"], inp["a:0"]] if audio else [inp["v:0"]]
    node = ffg.output(*streams, "-", f="null")
    return [*ffmpeg.ffmpeg_head("-v", "error", "-xerror"), *_args(node)]
