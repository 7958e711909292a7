"""Covers: the exact frame of the delivered video at a timestamp, or a conformed custom thumbnail."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from . import ffmpeg
from .errors import CorruptMedia, ProcessingFailed, ThumbnailInvalid, TooLarge
from .image import MIME, render_image, save_within_budget
from .models import MediaInfo
from .plan import CoverTarget, frame_target, thumbnail_target
from .probe import DEMUXERS

log = logging.getLogger(__name__)

# Mean luma under this (of 255) with little variation reads as a black frame to a viewer.
BLACK_MEAN = 16
BLACK_STDDEV = 6


@dataclass(frozen=True, slots=True)
class CoverResult:
    """A written cover image."""

    path: Path
    mime: str
    width: int
    height: int
    warnings: tuple[str, ...]


def frame_args(video: Path, at_ms: int, out: Path, container: str = "mp4") -> list[str]:
    """argv that decodes exactly the frame shown at ``at_ms`` into a lossless PNG.

    ``-ss`` before ``-i`` seeks to the keyframe before the time and decodes forward from it,
    so the cost depends on the GOP length, not on how far into the file the frame is; since
    ffmpeg 2.1 this input seek is frame-accurate when decoding.
    """
    return [ffmpeg.ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-v", "error",
            "-ss", f"{at_ms / 1000:.3f}",
            *ffmpeg.safe_input(video, DEMUXERS.get(container, "mov")),
            "-map", "0:v:0", "-frames:v", "1", "-f", "image2", "-c:v", "png",
            "-map_metadata", "-1", str(out)]


def make_frame_cover(video: Path, info: MediaInfo, at_ms: int, target: CoverTarget,
                     workdir: Path, *, timeout_s: float) -> CoverResult:
    """Extract the frame at ``at_ms`` of the delivered video and encode it as the cover.

    Raises:
        ProcessingFailed: no frame could be decoded at that time.
        TooLarge: the frame cannot be encoded under the cover's byte cap.
    """
    from PIL import Image, ImageStat

    png = workdir / f"frame-{at_ms}.png"
    frame_ms = 1000 / float(info.video.fps) if info.video and info.video.fps else 33
    # A seek to the very last frame can land past it; step back one frame at a time.
    for attempt in range(3):
        at = max(0, int(at_ms - attempt * frame_ms))
        ffmpeg.run(frame_args(video, at, png, info.format_name), timeout_s=timeout_s)
        if png.exists() and png.stat().st_size > 0:
            break
    else:
        raise ProcessingFailed(f"no frame could be decoded at {at_ms} ms")
    with Image.open(png, formats=("PNG",)) as im:
        frame = im.convert("RGB")
    if frame.size != (target.width, target.height):
        raise ProcessingFailed(
            f"the frame is {frame.size[0]}x{frame.size[1]}, expected {target.width}x{target.height}"
        )
    warnings: list[str] = []
    stat = ImageStat.Stat(frame.convert("L"))
    if stat.mean[0] < BLACK_MEAN and stat.stddev[0] < BLACK_STDDEV:
        warnings.append(f"cover frame at {at_ms} ms is black or nearly black")
    out = workdir / f"cover-{at_ms}.{'jpg' if target.format == 'jpeg' else target.format}"
    result = save_within_budget(frame, frame_target(target), out)
    png.unlink(missing_ok=True)
    return CoverResult(out, MIME[target.format], result.width, result.height,
                       (*warnings, *result.warnings))


def make_thumbnail_cover(src: Path, info: MediaInfo, target: CoverTarget,
                         workdir: Path) -> CoverResult:
    """Conform a custom thumbnail to the cover's format, shape, size and byte cap.

    Raises:
        ThumbnailInvalid: not an image, or undecodable.
        TooLarge: it cannot be brought under the byte cap.
    """
    if info.kind != "image" or info.image is None:
        raise ThumbnailInvalid("the cover thumbnail is not an image")
    itarget = thumbnail_target(info, target)
    out = workdir / f"thumb-{target.width}x{target.height}.{'jpg' if target.format == 'jpeg' else target.format}"
    try:
        result = render_image(src, info.format_name, itarget, out)
    except CorruptMedia as err:
        raise ThumbnailInvalid(f"the cover thumbnail cannot be decoded: {err.message}") from err
    except TooLarge:
        raise
    return CoverResult(result.path, result.mime, result.width, result.height, result.warnings)
