"""Covers: the exact frame of the delivered video at a timestamp, or a conformed custom thumbnail.

A frame cover is the picture a viewer sees at ``at_ms`` of the video we deliver (after rotation,
scaling, padding and tone mapping): the last frame whose time is at or before ``at_ms``. It is
found with an input-side seek to just before that time, so the cost depends on the GOP length,
not on how far into the file the frame is. A custom thumbnail goes through the image engine to
the cover's format, shape, size and byte cap. Every cover is checked before it is stored.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import ffmpeg
from .errors import (
    CorruptMedia,
    ProcessingFailed,
    ThumbnailInvalid,
    UnsupportedMedia,
    ValidationFailed,
)
from .image import MIME, render_image, save_within_budget
from .models import MediaInfo
from .plan import CoverTarget, frame_target, thumbnail_target

log = logging.getLogger(__name__)

# Mean luma at or under this (of 255) with little variation reads as a black frame to a viewer
# (limited-range black decodes to 0; a fade or a dark encoder start stays under ~16).
BLACK_MEAN = 16
BLACK_STDDEV = 8
# A frame belongs to at_ms when its time is <= at_ms. Frame times are exact multiples of the
# stream's time base; a microsecond of slack keeps a frame that starts exactly at at_ms from
# being lost to decimal printing, and is far below any frame interval (8.3 ms at 120 fps).
MATCH_SLACK_S = 1e-6
# When the frame rate is unknown or a first look-back finds no frame (variable frame rate,
# a video track that ends before the audio), look this far back before at_ms.
WIDE_LOOKBACK_MS = 2000
UNKNOWN_FRAME_MS = 100.0
# `conform cover` has no platform: the largest cover cap any preset has (TikTok, Pinterest).
QUICK_MAX_BYTES = 20_000_000
ASPECT_TOLERANCE = 0.01  # whole-pixel rounding moves a cover's ratio a little


@dataclass(frozen=True, slots=True)
class CoverResult:
    """A written cover image."""

    path: Path
    mime: str
    width: int
    height: int
    warnings: tuple[str, ...]


# --------------------------------------------------------------------------- argv (pure)


def frame_args(video: Path, out: Path, *, at_ms: int, lookback_ms: float, frame_ms: float,
               start_time_s: float = 0.0, demuxer: str | None = "mov",
               scale_to: tuple[int, int] | None = None) -> list[str]:
    """argv that writes the frame shown at ``at_ms`` of ``video`` to ``out`` as a PNG.

    ``-ss`` before ``-i`` seeks the demuxer to the keyframe before ``at_ms - lookback_ms`` and
    decodes forward from there, so the cost does not grow with the position in the file.
    ``-copyts`` keeps the file's own timestamps, which ``select`` compares with ``at_ms`` (the
    frame shown at a time is the last one starting at or before it); ``trim`` ends decoding a
    couple of frames later instead of at the end of the file. Every selected frame overwrites
    ``out`` (``-update 1``), so the last one, the frame shown at ``at_ms``, is what remains.

    Args:
        video: a local video file.
        out: the PNG to write (nothing is written when no frame is in the window).
        at_ms: the time, in milliseconds from the start of the file.
        lookback_ms: how far before ``at_ms`` to start decoding; at least one frame interval.
        frame_ms: the frame interval, to stop decoding soon after ``at_ms``.
        start_time_s: the file's start time (its timestamps are kept as they are).
        demuxer: the forced demuxer (never guessed from the content).
        scale_to: display size to scale to when the decoded picture has non-square pixels.

    Returns:
        The full argv, binary first.

    Raises:
        ConfigError: ffmpeg is not installed.
    """
    seek_ms = max(0, math.floor(at_ms - lookback_ms))
    at_s = start_time_s + at_ms / 1000
    end_s = at_s + 2 * frame_ms / 1000 + 0.001
    filters = [f"trim=end={end_s:.6f}", f"select='lte(t\\,{at_s + MATCH_SLACK_S:.6f})'"]
    if scale_to is not None:
        filters.append(f"scale={scale_to[0]}:{scale_to[1]}:flags=bicubic,setsar=1")
    return [*ffmpeg.ffmpeg_head("-y", "-v", "error"),
            "-copyts", "-ss", f"{seek_ms / 1000:.3f}", *ffmpeg.safe_input(video, demuxer),
            "-map", "0:v:0", "-an", "-sn", "-dn", "-vf", ",".join(filters),
            "-fps_mode", "passthrough", "-update", "1", "-f", "image2", "-c:v", "png",
            "-compression_level", "1", "-pix_fmt", "rgb24", "-map_metadata", "-1", str(out)]


def first_frame_args(video: Path, out: Path, *, at_ms: int, demuxer: str | None = "mov",
                     scale_to: tuple[int, int] | None = None) -> list[str]:
    """argv that writes the first frame at or after ``at_ms`` (a video whose picture starts late).

    Raises:
        ConfigError: ffmpeg is not installed.
    """
    vf = ["-vf", f"scale={scale_to[0]}:{scale_to[1]}:flags=bicubic,setsar=1"] if scale_to else []
    return [*ffmpeg.ffmpeg_head("-y", "-v", "error"),
            "-ss", f"{at_ms / 1000:.3f}", *ffmpeg.safe_input(video, demuxer),
            "-map", "0:v:0", "-an", "-sn", "-dn", *vf, "-frames:v", "1", "-f", "image2",
            "-c:v", "png", "-pix_fmt", "rgb24", "-map_metadata", "-1", str(out)]


# --------------------------------------------------------------------------- frames


def _decoded_size(info: MediaInfo) -> tuple[int, int]:
    """The picture ffmpeg decodes (rotation applied, pixels as stored)."""
    v = info.video
    assert v is not None
    return (v.height, v.width) if v.rotation_deg in (90, 270) else (v.width, v.height)


def extract_frame(video: Path, info: MediaInfo, at_ms: int, out: Path, *,
                  timeout_s: float) -> Path:
    """Write the frame shown at ``at_ms`` of ``video`` to ``out`` (PNG, display size).

    Args:
        video: a local video file.
        info: its probe.
        at_ms: milliseconds from the start of the file.
        out: where the PNG goes.
        timeout_s: limit for each ffmpeg run.

    Returns:
        ``out``.

    Raises:
        UnsupportedMedia: the file has no video stream.
        ValidationFailed: ``cover_timestamp_out_of_range``: the video track has no picture
            at that time (it ends earlier than the file).
        FFmpegError: ffmpeg failed.
        FFmpegTimeout: ffmpeg ran out of time.
    """
    v = info.video
    if v is None:
        raise UnsupportedMedia("the file has no video stream to take a frame from")
    frame_ms = 1000 / float(v.fps) if v.fps else UNKNOWN_FRAME_MS
    demuxer = ffmpeg.DEMUXERS.get(info.format_name)
    scale_to = None if _decoded_size(info) == (info.width, info.height) else (info.width,
                                                                               info.height)
    lookbacks = [2 * frame_ms + 1]
    if lookbacks[0] < WIDE_LOOKBACK_MS:
        lookbacks.append(WIDE_LOOKBACK_MS)
    # The player's clock: an MP4/MOV's timeline starts at 0 (its edit list, if any, already
    # applied by the demuxer), even when the first frame comes later (a B-frame delay
    # without an edit list, or audio first): at_ms is measured from 0, not from the first
    # frame. Other containers count from their first timestamp.
    origin_s = 0.0 if info.format_name in ("mp4", "mov") else info.start_time_s
    for lookback in lookbacks:
        out.unlink(missing_ok=True)
        ffmpeg.run(frame_args(video, out, at_ms=at_ms, lookback_ms=lookback,
                              frame_ms=max(frame_ms, 1.0), start_time_s=origin_s,
                              demuxer=demuxer, scale_to=scale_to), timeout_s=timeout_s)
        if out.exists() and out.stat().st_size > 0:
            return out
    # No frame starts at or before at_ms: the picture starts later than the file (the audio
    # leads); a player shows the first frame until then.
    ffmpeg.run(first_frame_args(video, out, at_ms=at_ms, demuxer=demuxer, scale_to=scale_to),
               timeout_s=timeout_s)
    if out.exists() and out.stat().st_size > 0:
        return out
    raise ValidationFailed(
        "cover_timestamp_out_of_range",
        f"video_cover_timestamp_ms {at_ms}: the video track has no picture at that time "
        "(it ends before the rest of the file)", content_index=0)


def make_frame_cover(video: Path, info: MediaInfo, at_ms: int, target: CoverTarget,
                     workdir: Path, *, timeout_s: float) -> CoverResult:
    """Extract the frame at ``at_ms`` of the delivered video and encode it as the cover.

    A black or nearly black frame is delivered as asked, with a warning.

    Args:
        video: the delivered video (the file the platform gets).
        info: its probe.
        at_ms: the requested time.
        target: the cover's format, size (the video's) and byte cap.
        workdir: scratch folder.
        timeout_s: limit for each ffmpeg run.

    Returns:
        The written cover.

    Raises:
        ValidationFailed: ``cover_timestamp_out_of_range`` when the video track has no
            picture at that time.
        ProcessingFailed: the frame is not the size of the delivered video, or the cover
            fails its check.
        FFmpegError: ffmpeg failed.
        TooLarge: the frame cannot be encoded under the cover's byte cap.
    """
    from PIL import Image

    png = extract_frame(video, info, at_ms, workdir / f"frame-{at_ms}.png", timeout_s=timeout_s)
    with Image.open(png, formats=("PNG",)) as im:
        frame = im.convert("RGB")
    png.unlink(missing_ok=True)
    if frame.size != (target.width, target.height):
        raise ProcessingFailed(
            f"the frame is {frame.size[0]}x{frame.size[1]}, expected {target.width}x{target.height}"
        )
    warnings: list[str] = []
    if is_black(frame):
        warnings.append(f"cover frame at {at_ms} ms is black or nearly black")
    ext = "jpg" if target.format == "jpeg" else target.format
    result = save_within_budget(frame, frame_target(target), workdir / f"cover-{at_ms}.{ext}")
    check_cover(result.path, target)
    return CoverResult(result.path, MIME[target.format], result.width, result.height,
                       (*warnings, *result.warnings))


def is_black(frame: Any) -> bool:
    """Whether a decoded RGB picture looks black or nearly black to a viewer."""
    from PIL import ImageStat

    stat = ImageStat.Stat(frame.convert("L"))
    return bool(stat.mean[0] <= BLACK_MEAN and stat.stddev[0] <= BLACK_STDDEV)


def cover_at(video: Path, info: MediaInfo, at_ms: int, workdir: Path, *,
             timeout_s: float) -> CoverResult:
    """The frame shown at ``at_ms`` of any video file, as a JPEG at its display size.

    What ``conform cover`` runs: the same extraction as a TikTok cover, without a platform.

    Args:
        video: a local video file.
        info: its probe.
        at_ms: the requested time.
        workdir: where the JPEG is written.
        timeout_s: limit for each ffmpeg run.

    Returns:
        The written JPEG.

    Raises:
        UnsupportedMedia: the file is not a video.
        ValidationFailed: ``cover_timestamp_out_of_range``: outside ``[0, duration)``.
        FFmpegError: ffmpeg failed.
        TooLarge: the frame cannot be encoded under 20 MB.
    """
    if info.kind != "video" or info.video is None:
        raise UnsupportedMedia(f"not a video ({info.kind}, {info.format_name}): no frame to take")
    duration_ms = info.duration_ms or 0
    if not 0 <= at_ms < duration_ms:
        raise ValidationFailed(
            "cover_timestamp_out_of_range",
            f"{at_ms} ms is outside the video [0, {duration_ms}) ms", content_index=0)
    target = CoverTarget("frame", at_ms, "jpeg", info.width, info.height, "none",
                         QUICK_MAX_BYTES, 1)
    return make_frame_cover(video, info, at_ms, target, workdir, timeout_s=timeout_s)


# --------------------------------------------------------------------------- thumbnails


def make_thumbnail_cover(src: Path, info: MediaInfo, target: CoverTarget,
                         workdir: Path) -> CoverResult:
    """Conform a custom thumbnail to the cover's format, shape, size and byte cap.

    Args:
        src: the fetched thumbnail.
        info: its probe.
        target: the cover target (from :func:`pipeline.plan.plan_cover`).
        workdir: scratch folder.

    Returns:
        The written cover.

    Raises:
        ThumbnailInvalid: not an image, or undecodable.
        TooLarge: it cannot be brought under the byte cap.
        ProcessingFailed: the result fails the cover check.
    """
    if info.kind != "image" or info.image is None:
        raise ThumbnailInvalid("the cover thumbnail is not an image")
    if info.animated:
        log.info("animated thumbnail: its first frame is the cover")
    itarget = thumbnail_target(info, target)
    ext = "jpg" if target.format == "jpeg" else target.format
    out = workdir / f"thumb-{target.width}x{target.height}.{ext}"
    try:
        result = render_image(src, info.format_name, itarget, out)
    except CorruptMedia as err:
        raise ThumbnailInvalid(f"the cover thumbnail cannot be decoded: {err.message}") from err
    check_cover(result.path, target)
    return CoverResult(result.path, result.mime, result.width, result.height, result.warnings)


# --------------------------------------------------------------------------- verification


_PIL_NAMES = {"jpeg": "JPEG", "png": "PNG"}


def check_cover(path: Path, target: CoverTarget) -> None:
    """Open a written cover the way a platform would and hold it to its target.

    Format, byte cap, minimum width, shape (within rounding) and no size over the target;
    8-bit RGB without EXIF or a colour profile, so it reads as sRGB everywhere.

    Raises:
        ProcessingFailed: the cover breaks its target (our bug: the cover does not ship).
    """
    from PIL import Image

    problems: list[str] = []
    size = path.stat().st_size
    if size > target.max_bytes:
        problems.append(f"{size} bytes over the {target.max_bytes}-byte cap")
    try:
        with Image.open(path, formats=(_PIL_NAMES.get(target.format, "JPEG"),)) as im:
            im.load()
            w, h = im.size
            if im.mode not in ("RGB", "L"):
                problems.append(f"mode {im.mode}")
            if im.info.get("exif") or im.info.get("icc_profile"):
                problems.append("EXIF or ICC data left in the cover")
    except (OSError, SyntaxError, ValueError) as err:
        raise ProcessingFailed(f"the cover cannot be read back: {err}") from err
    if w > target.width or h > target.height:
        problems.append(f"{w}x{h} over {target.width}x{target.height}")
    if w < target.min_width:
        problems.append(f"{w} px wide, under the minimum {target.min_width}")
    want = target.width / target.height
    if abs(w / h - want) > want * ASPECT_TOLERANCE:
        problems.append(f"shape {w}:{h} is not {target.width}:{target.height}")
    if problems:
        raise ProcessingFailed("cover check failed: " + "; ".join(problems))
