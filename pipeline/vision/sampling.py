"""Small RGB pictures of a delivered output: sampled video frames or a downscaled still.

Shared by the preview sheet (posters, filmstrips) and the subject finder, which both look at
what a viewer sees: the delivered file, at low resolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageOps

from .. import ffmpeg
from ..errors import CorruptMedia
from ..geometry import round_even
from ..models import MediaInfo

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

# What a delivered image or cover can be (the presets' formats): no other decoder is tried.
OUTPUT_IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "DIB", "TIFF")
LONG_CLIP_S = 20.0  # above this, frames are taken by seeking rather than one full decode
# Up to this, a keyframes-only sample of a longer clip is one pass over the file instead of a
# seek per frame: each ffmpeg start costs ~70 ms, a keyframe's decode a few (2 s GOPs).
KEYFRAME_PASS_MAX_S = 60.0


def fit_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """``width`` x ``height`` scaled to fit ``max_side`` (never up), both sides even and >= 2."""
    scale = min(1.0, max_side / max(width, height, 1))
    return round_even(width * scale), round_even(height * scale)


def sample_video(path: Path, info: MediaInfo, *, count: int, max_side: int,
                 timeout_s: float, keyframes: bool = False) -> list[Image.Image]:
    """``count`` frames spread evenly over the video (the middle of each 1/count slice).

    Args:
        path: a local video file (a delivered output).
        info: its probe result (display size, duration).
        count: how many frames; fewer come back from a very short clip.
        max_side: the frames' longer side, in pixels.
        timeout_s: limit for the one ffmpeg run.
        keyframes: a keyframe near each slice's middle will do (where a subject is, not which
            exact frame): when the file has a keyframe in every slice (its probed longest
            keyframe interval is at most a slice), only keyframes are decoded, and each
            slice gets the first keyframe at or after its middle. Measured on a 20 s
            1080x1920 output: 0.13 CPU-s instead of 2.5 for decoding all of it.

    Returns:
        RGB images at the display size scaled to ``max_side`` (rotation and SAR applied).

    Raises:
        FFmpegError: ffmpeg failed to decode the file.
        FFmpegTimeout: it took longer than ``timeout_s``.
    """
    width, height = fit_size(info.width, info.height, max_side)
    duration_s = max(info.duration_s or 0.0, 0.04)
    step_s = duration_s / count
    scale = f"scale={width}:{height}:flags=area,setsar=1"
    demuxer = ffmpeg.DEMUXERS.get(info.format_name)  # as probed: ffmpeg never guesses the format
    skip = ["-skip_frame", "nokey"] if keyframes and keyframe_in_every_slice(info, count) else []
    if skip and duration_s <= KEYFRAME_PASS_MAX_S:
        # The first keyframe at or after each slice's middle, in one pass (issue 26: a seek
        # per frame was most of the subject check); passthrough: only those frames. The
        # same frames as the seeks below, and as the check's tap (pipeline.vision.tap)
        # picks from the encode's own copy.
        runs = [[*skip, *ffmpeg.safe_input(path, demuxer),
                 "-vf", f"{first_at_or_after(slice_targets(duration_s, count))},{scale}",
                 "-fps_mode", "passthrough", "-frames:v", str(count)]]
    elif duration_s <= LONG_CLIP_S:
        # One decode of the whole (short) clip, keeping one frame per slice.
        runs = [["-ss", f"{step_s / 2:.3f}", *ffmpeg.safe_input(path, demuxer),
                 "-vf", f"fps={count}/{duration_s:.3f},{scale}", "-frames:v", str(count)]]
    else:
        # A long clip: seek to each slice (decoding from the keyframe before it) instead of
        # decoding minutes of video for a handful of frames.
        runs = [["-ss", target, *skip, *ffmpeg.safe_input(path, demuxer),
                 "-vf", scale, "-frames:v", "1"] for target in slice_targets(duration_s, count)]
    data = b"".join(
        ffmpeg.run([*ffmpeg.ffmpeg_head("-loglevel", "error"), *run,
                    "-an", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
                   timeout_s=timeout_s).stdout
        for run in runs)
    return _rgb_frames(data, width, height, path)


def keyframe_in_every_slice(info: MediaInfo, count: int) -> bool:
    """Whether each of ``count`` equal slices of the video holds a keyframe (its probed
    longest keyframe interval is at most a slice): then keyframes alone are sampled."""
    gop_s = info.video.max_keyframe_interval_s if info.video else None
    return gop_s is not None and gop_s <= max(info.duration_s or 0.0, 0.04) / count


def slice_targets(duration_s: float, count: int) -> list[str]:
    """The middle of each of ``count`` equal slices of ``duration_s``, in seconds, as the
    frames are asked for (three decimals, as an ``-ss`` value)."""
    step_s = max(duration_s, 0.04) / count
    return [f"{step_s * (i + 0.5):.3f}" for i in range(count)]


def first_at_or_after(targets: Sequence[str]) -> str:
    """A select filter passing, for each target (seconds, as an ``-ss`` value), the first
    frame at or after it: for all targets in one pass what ``-ss TARGET -i FILE -frames:v 1``
    gives. A frame two targets share passes once.

    Time counts from the first frame passed in (``start_pts``), and a target is rounded to
    the stream's time base as ``-ss`` rounds it (``prev_pts``: the frame before, NaN at
    first). :func:`pick_first_at_or_after` is the same rule over timestamps already known.
    """
    def at_or_after(target: str) -> str:
        edge = f"round({target}/TB)"
        return (f"gte(pts-start_pts,{edge})"
                f"*(isnan(prev_pts)+lt(prev_pts-start_pts,{edge}))")

    return "select=" + "+".join(at_or_after(t) for t in targets).replace(",", "\\,")


def pick_edges(time_base: Fraction, targets: Sequence[str]) -> list[int]:
    """The targets as :func:`first_at_or_after` compares them: in ticks of ``time_base``,
    to the bit (the target parsed as a double, divided by the time base as a double,
    rounded half away from zero as C's ``round``)."""
    tb = time_base.numerator / time_base.denominator
    return [int(Decimal(float(t) / tb).to_integral_value(ROUND_HALF_UP)) for t in targets]


def pick_first_at_or_after(pts: Sequence[int], time_base: Fraction,
                           targets: Sequence[str]) -> list[int]:
    """Which of the frames with these timestamps (in ``time_base``) :func:`first_at_or_after`
    passes: their indices, in order."""
    picks: set[int] = set()
    for edge in pick_edges(time_base, targets):
        found = next((k for k, p in enumerate(pts) if p - pts[0] >= edge), None)
        if found is not None:
            picks.add(found)
    return sorted(picks)


def sample_rate(path: Path, info: MediaInfo, *, fps: float, max_side: int,
                timeout_s: float, start_s: float = 0.0,
                length_s: float | None = None) -> list[Image.Image]:
    """Frames at ``fps`` from ``start_s`` (frame ``i`` is the one shown at
    ``start_s + i / fps``), for ``length_s`` seconds or to the end.

    One decode, scaled small inside ffmpeg: smart framing's sampling.

    Raises:
        FFmpegError: ffmpeg failed to decode the file.
        FFmpegTimeout: it took longer than ``timeout_s``.
        CorruptMedia: no frame could be decoded.
    """
    width, height = fit_size(info.width, info.height, max_side)
    demuxer = ffmpeg.DEMUXERS.get(info.format_name)
    # An input seek that keeps the file's clock (-copyts), so the fps grid below starts at
    # start_s exactly and frame i is the one shown at start_s + i / fps.
    window = ["-copyts", "-ss", f"{start_s:.4f}"] if start_s > 0 else []
    length = ["-frames:v", str(max(1, math.ceil(length_s * fps)))] if length_s is not None else []
    data = ffmpeg.run([*ffmpeg.ffmpeg_head("-loglevel", "error"),
                       *window, *ffmpeg.safe_input(path, demuxer),
                       "-vf", f"fps={fps:.4f}:start_time={start_s:.4f},"
                       f"scale={width}:{height}:flags=area,setsar=1", *length,
                       "-an", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
                      timeout_s=timeout_s).stdout
    return _rgb_frames(data, width, height, path)


def _rgb_frames(data: bytes, width: int, height: int, path: Path) -> list[Image.Image]:
    """Split ffmpeg's raw RGB output into pictures (a partial last frame is dropped).

    Raises:
        CorruptMedia: not one whole frame was decoded.
    """
    size = width * height * 3
    frames = [Image.frombytes("RGB", (width, height), data[i:i + size])
              for i in range(0, len(data) - size + 1, size)]
    if not frames:
        raise CorruptMedia(f"{path.name}: no frame could be decoded")
    return frames


def still(path: Path, *, max_side: int) -> Image.Image:
    """An image file, upright and RGB, scaled to fit ``max_side`` (first frame if animated).

    Raises:
        CorruptMedia: Pillow cannot read it.
    """
    Image.init()  # registers every plugin: ``formats`` names some that load lazily (WebP)
    try:
        with Image.open(path, formats=OUTPUT_IMAGE_FORMATS) as img:
            img.seek(0)
            # A JPEG is decoded at 1/2..1/8 scale by libjpeg, never below max_side: an 8192 px
            # output is looked at without its full-size decode and RGB copies.
            img.draft("RGB", (max_side, max_side))
            upright = ImageOps.exif_transpose(img) or img
            rgb = upright.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise CorruptMedia(f"{path.name}: not a readable image: {err}") from err
    rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return rgb


def every_frame(path: Path, info: MediaInfo, *, max_side: int, max_frames: int,
                timeout_s: float) -> tuple[npt.NDArray[np.uint8], float]:
    """Every frame of a video, tiny, in one decode: cut detection's input.

    The rate is the source's (at most 60 fps), lowered for a clip so long that it would give
    more than ``max_frames``: memory and time grow with the clip's length, nothing else.

    Returns:
        The frames as an array (frames, height, width, 3) and their rate: frame ``i`` is the
        one shown at ``i / rate``.

    Raises:
        FFmpegError: ffmpeg failed to decode the file.
        FFmpegTimeout: it took longer than ``timeout_s``.
        CorruptMedia: no frame could be decoded.
    """
    import numpy as np

    width, height = fit_size(info.width, info.height, max_side)
    source = info.video.fps if info.video is not None and info.video.fps > 0 else Fraction(30)
    duration_s = max(info.duration_s or 0.0, 0.04)
    rate = min(source, Fraction(60), Fraction(max_frames) / Fraction(duration_s))
    rate = rate.limit_denominator(1001)
    demuxer = ffmpeg.DEMUXERS.get(info.format_name)
    data = ffmpeg.run([*ffmpeg.ffmpeg_head("-loglevel", "error"),
                       *ffmpeg.safe_input(path, demuxer),
                       "-vf", f"fps={rate.numerator}/{rate.denominator}:start_time=0,"
                       f"scale={width}:{height}:flags=area,setsar=1",
                       "-frames:v", str(max_frames),
                       "-an", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
                      timeout_s=timeout_s).stdout
    size = width * height * 3
    count = len(data) // size
    if count == 0:
        raise CorruptMedia(f"{path.name}: no frame could be decoded")
    frames = np.frombuffer(data, np.uint8, count * size).reshape(count, height, width, 3)
    return frames, float(rate)
