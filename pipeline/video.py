"""Video engine: ffmpeg argv built with ffmpeg-python's graph builder (pure), run by our runner.

ffmpeg-python is used here and only here, and only to assemble filter graphs and argv; it never
runs anything. Every output is H.264 High / yuv420p / CFR / closed GOP / AAC-LC in an MP4 with
the moov atom first and no edit list, unless the plan says the input can be passed through or
remuxed untouched.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg as ffg  # ffmpeg-python: graph and argv building only

from . import ffmpeg
from .errors import TooLarge
from .plan import Geometry, VideoTarget
from .probe import DEMUXERS

log = logging.getLogger(__name__)

MIN_VIDEO_KBPS = 250          # below this a 360p picture falls apart: shrink instead
MAX_BUDGET_ATTEMPTS = 4
SHRINK_STEP = 0.75
# The blurred background is computed at 1/8 size: the blur hides the detail anyway, and it
# keeps the fill from costing more than the picture itself.
BLUR_DOWNSCALE = 8


@dataclass(frozen=True, slots=True)
class VideoResult:
    """A produced (or passed-through) video and what happened beyond the plan."""

    path: Path
    extra_actions: tuple[str, ...]
    warnings: tuple[str, ...]


def _even(n: float) -> int:
    return max(2, int(round(n / 2)) * 2)


def video_filters(stream: Any, g: Geometry, t: VideoTarget, *, sar_fix: tuple[int, int] | None
                  ) -> Any:
    """Chain the picture filters: deinterlace, tone-map, square pixels, crop, scale, fill, fps."""
    v = stream
    if t.deinterlace:
        v = v.filter("bwdif", mode="send_frame")
    if t.tonemap:
        # PQ/HLG -> linear light -> BT.709 primaries -> Hable tone curve -> BT.709 SDR, limited.
        v = (v.filter("zscale", t="linear", npl=100)
             .filter("format", "gbrpf32le")
             .filter("zscale", p="bt709")
             .filter("tonemap", tonemap="hable", desat=0)
             .filter("zscale", t="bt709", m="bt709", r="tv")
             .filter("format", "yuv420p"))
    if sar_fix is not None:
        v = v.filter("scale", sar_fix[0], sar_fix[1]).filter("setsar", 1)
    if (g.crop_width, g.crop_height) != (g.source_width, g.source_height):
        v = v.filter("crop", g.crop_width, g.crop_height, g.crop_x, g.crop_y)
    scale_opts: dict[str, Any] = {"flags": "lanczos"}
    if not t.tonemap:
        scale_opts.update(out_color_matrix="bt709", out_range="tv")
    v = v.filter("scale", g.content_width, g.content_height, **scale_opts)
    if (g.width, g.height) != (g.content_width, g.content_height):
        if g.fit == "blur":
            parts = v.filter_multi_output("split")
            fg, bg = parts[0], parts[1]
            small_w = _even(g.width / BLUR_DOWNSCALE)
            small_h = _even(g.height / BLUR_DOWNSCALE)
            bg = (bg.filter("scale", small_w, small_h, force_original_aspect_ratio="increase")
                  .filter("crop", small_w, small_h)
                  .filter("boxblur", luma_radius=10, luma_power=2)
                  .filter("scale", g.width, g.height, flags="bilinear"))
            v = ffg.overlay(bg, fg, x="(W-w)/2", y="(H-h)/2")
        else:
            v = v.filter("pad", g.width, g.height, "(ow-iw)/2", "(oh-ih)/2", color=t.pad_color)
    if t.fps is not None:
        v = v.filter("fps", fps=f"{t.fps.numerator}/{t.fps.denominator}")
    return v.filter("setsar", 1).filter("format", "yuv420p")


def build_args(src: Path, src_format: str, t: VideoTarget, out: Path, *,
               sar_display: tuple[int, int] | None = None,
               maxrate_kbps: int | None = None, geometry: Geometry | None = None,
               two_pass: int = 0, passlog: Path | None = None, progress: bool = False) -> list[str]:
    """The full ffmpeg argv for one target (pure: no process is started).

    Args:
        src: the local source we wrote.
        src_format: its sniffed container (chooses the forced demuxer).
        t: the target.
        out: output path in the workdir.
        sar_display: (width, height) to scale anamorphic input to before geometry, if SAR != 1.
        maxrate_kbps: override of the target's bitrate cap (byte-budget retries).
        geometry: override of the target's geometry (shrinking retries).
        two_pass: 0 for one pass, else 1 or 2 (average-bitrate two-pass encode).
        passlog: the two-pass log file prefix.
        progress: add ``-progress pipe:1`` for progress events.
    """
    g = geometry or t.geometry
    demuxer = DEMUXERS.get(src_format)
    inp = ffg.input("file:" + str(src.resolve()), f=demuxer, protocol_whitelist="file")
    out_opts: dict[str, Any] = {"map_metadata": -1, "map_chapters": -1}
    streams: list[Any] = []
    if t.action in ("passthrough", "remux"):
        streams = [inp["v:0"]]
        if t.audio.action == "copy":
            streams.append(inp["a:0"])
        out_opts.update(c="copy")
    elif t.action == "audio_only":
        streams = [inp["v:0"]]
        out_opts.update(vcodec="copy")
    else:
        v = video_filters(inp["v:0"], g, t, sar_fix=sar_display)
        streams = [v]
        rate = maxrate_kbps or t.maxrate_kbps
        out_opts.update({
            "vcodec": "libx264", "preset": t.x264_preset or "medium", "profile:v": "high",
            "pix_fmt": "yuv420p", "g": t.gop_frames, "keyint_min": min(t.gop_frames, 25),
            "color_primaries": "bt709", "color_trc": "bt709", "colorspace": "bt709",
            "color_range": "tv", "x264-params": "open-gop=0",
        })
        if two_pass:
            out_opts.update({"b:v": f"{rate}k", "maxrate": f"{int(rate * 1.5)}k",
                             "bufsize": f"{rate * 2}k", "pass": two_pass,
                             "passlogfile": str(passlog)})
        else:
            out_opts.update({"crf": _crf(), "maxrate": f"{rate}k", "bufsize": f"{rate * 2}k"})
    if t.action in ("audio_only", "transcode") and t.audio.action in ("copy", "encode", "silent"):
        if t.audio.action == "copy":
            streams.append(inp["a:0"])
            out_opts["acodec"] = "copy"
        else:
            if t.audio.action == "silent":
                silence = ffg.input(f"anullsrc=r={t.audio.sample_rate_hz}:cl=stereo", f="lavfi")
                streams.append(silence["a"])
                out_opts["shortest"] = None
            else:
                streams.append(inp["a:0"])
            out_opts.update({"acodec": "aac", "b:a": f"{t.audio.bitrate_kbps}k",
                             "ar": t.audio.sample_rate_hz, "ac": t.audio.channels})
    if t.trim_s is not None:
        out_opts["t"] = f"{t.trim_s:.3f}"
    if two_pass == 1:
        out_opts["an"] = None
        streams = streams[:1]
        out_opts.pop("acodec", None)
        out_opts.update(f="null")
        target_out = "/dev/null"
    else:
        target_out = str(out)
        out_opts.update(f="mp4", movflags="+faststart", use_editlist=0)
    node = ffg.output(*streams, target_out, **out_opts)
    args = [ffmpeg.ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-v", "error"]
    if progress:
        args += ["-progress", "pipe:1", "-nostats"]
    return args + node.get_args()


def _crf() -> int:
    from .plan import CRF

    return CRF


def render_video(src: Path, src_format: str, t: VideoTarget, out: Path, *,
                 sar_display: tuple[int, int] | None, duration_s: float, timeout_s: float,
                 on_progress: Callable[[float], None] | None = None) -> VideoResult:
    """Produce ``out`` (or reuse ``src`` for a pass-through), keeping it under the byte cap.

    Raises:
        FFmpegError, FFmpegTimeout: ffmpeg failed or took too long.
        TooLarge: not even the smallest attempt fits the cap.
    """
    if t.action == "passthrough":
        return VideoResult(src, (), ())  # the source itself is the output: no copy
    duration = min(duration_s, t.trim_s or math.inf)
    args = build_args(src, src_format, t, out, sar_display=sar_display,
                      progress=on_progress is not None)
    ffmpeg.run(args, timeout_s=timeout_s, on_progress=on_progress, duration_s=duration)
    size = out.stat().st_size
    if size <= t.max_bytes:
        return VideoResult(out, (), ())
    if t.action != "transcode":
        raise TooLarge(f"the video is {size} bytes without re-encoding, over the "
                       f"{t.max_bytes}-byte cap")
    return _fit_budget(src, src_format, t, out, size=size, duration_s=duration,
                       sar_display=sar_display, timeout_s=timeout_s)


def _fit_budget(src: Path, src_format: str, t: VideoTarget, out: Path, *, size: int,
                duration_s: float, sar_display: tuple[int, int] | None,
                timeout_s: float) -> VideoResult:
    """Two-pass average-bitrate retries, then smaller pictures, until the file fits."""
    geometry = t.geometry
    audio_kbps = t.audio.bitrate_kbps if t.audio.action in ("encode", "silent", "copy") else 0
    total_kbps = t.max_bytes * 8 * 0.96 / max(duration_s, 0.1) / 1000
    rate = int(total_kbps - audio_kbps)
    warnings: list[str] = ["reencoded_for_byte_budget"]
    extra: list[str] = []
    passlog = out.with_suffix(".passlog")
    for _attempt in range(MAX_BUDGET_ATTEMPTS):
        if rate < MIN_VIDEO_KBPS:
            geometry = _shrink(geometry)
            if "resized" not in extra:
                extra.append("resized")
            rate = int(total_kbps - audio_kbps)
            if rate < MIN_VIDEO_KBPS / 4 or geometry.width < 160:
                break
        for n in (1, 2):
            args = build_args(src, src_format, t, out, sar_display=sar_display,
                              maxrate_kbps=max(rate, 50), geometry=geometry, two_pass=n,
                              passlog=passlog)
            ffmpeg.run(args, timeout_s=timeout_s)
        size = out.stat().st_size
        if size <= t.max_bytes:
            _cleanup_passlog(passlog)
            return VideoResult(out, tuple(extra), tuple(warnings))
        rate = int(rate * t.max_bytes / size * 0.92)
    _cleanup_passlog(passlog)
    out.unlink(missing_ok=True)
    raise TooLarge(f"cannot fit the video under {t.max_bytes} bytes at an acceptable "
                   "bitrate and size")


def _shrink(g: Geometry) -> Geometry:
    def s(n: int) -> int:
        return _even(n * SHRINK_STEP)

    return Geometry(width=s(g.width), height=s(g.height), content_width=s(g.content_width),
                    content_height=s(g.content_height), crop_x=g.crop_x, crop_y=g.crop_y,
                    crop_width=g.crop_width, crop_height=g.crop_height, fit=g.fit,
                    source_width=g.source_width, source_height=g.source_height,
                    upscaled=g.upscaled)


def _cleanup_passlog(prefix: Path) -> None:
    for p in prefix.parent.glob(prefix.name + "*"):
        p.unlink(missing_ok=True)
