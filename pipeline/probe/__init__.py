"""Sniff and probe media into a typed :class:`MediaInfo` (ffprobe JSON for video, Pillow images).

The display size (rotation and SAR applied) is resolved here, once, so no later stage reasons
about rotation or anamorphic pixels again. Formats are decided by magic bytes, never by file
name or Content-Type.

- :mod:`.sniff`: the format from magic bytes;
- :mod:`.containers`: truncation, faststart and edit-list checks on the container structure;
- :mod:`.images`: Pillow probing (limits, EXIF, ICC, bit depth, animation timing);
- :mod:`.videos`: video probing (streams, display size, rotation, duration);
- :mod:`.ffprobe`: the ffprobe calls (stream JSON, packet listings) and value parsers.
"""

from __future__ import annotations

from pathlib import Path

from ..budget import MAX_DECODE_BYTES
from ..models import MediaInfo
from ..settings import Settings
from .containers import check_bmff_complete, check_matroska_complete
from .ffprobe import PacketFacts, ffprobe_argv, ffprobe_json
from .images import (
    BROWSER_DEFAULT_DELAY_MS,
    BROWSER_MIN_DELAY_MS,
    PIL_FORMATS,
    ensure_pillow,
    first_animation_frame,
    frame_delays_ms,
    open_image,
    probe_image,
    setup_pillow,
    shown_delay_ms,
)
from .sniff import IMAGE_FORMATS, VIDEO_FORMATS, sniff
from .videos import (
    HDR_TRANSFERS,
    MAX_VIDEO_PIXELS,
    MAX_VIDEO_SIDE_PX,
    check_frame_size,
    probe_video,
)

__all__ = [
    "BROWSER_DEFAULT_DELAY_MS",
    "BROWSER_MIN_DELAY_MS",
    "HDR_TRANSFERS",
    "IMAGE_FORMATS",
    "MAX_VIDEO_PIXELS",
    "MAX_VIDEO_SIDE_PX",
    "PIL_FORMATS",
    "VIDEO_FORMATS",
    "PacketFacts",
    "check_bmff_complete",
    "check_frame_size",
    "check_matroska_complete",
    "ffprobe_argv",
    "ffprobe_json",
    "first_animation_frame",
    "frame_delays_ms",
    "open_image",
    "probe",
    "probe_image",
    "probe_video",
    "probe_with_limits",
    "setup_pillow",
    "shown_delay_ms",
    "sniff",
]


def probe(path: Path, *, timeout_s: float = 60.0, max_pixels: int = 400_000_000,
          max_frames: int = 2000, max_video_side_px: int = MAX_VIDEO_SIDE_PX,
          max_video_pixels: int = MAX_VIDEO_PIXELS,
          max_decode_bytes: int = MAX_DECODE_BYTES, own_output: bool = False) -> MediaInfo:
    """Probe a local file we wrote (``own_output``: encoded by us, see :func:`probe_video`).

    Raises:
        UnsupportedMedia: unknown format, no video stream, or an unknown codec.
        CorruptMedia: undecodable or truncated.
        TooLarge: an image header claims more pixels or frames than any camera makes, or more
            decode memory than ``max_decode_bytes``, or a video frame is larger than any
            platform takes.
    """
    fmt = sniff(path)
    if fmt in IMAGE_FORMATS:
        # Library use without the runner or CLI: the HEIF opener and the bomb limit.
        ensure_pillow(max_pixels, max_decode_bytes)
        return probe_image(path, fmt, max_pixels=max_pixels, max_frames=max_frames,
                           max_decode_bytes=max_decode_bytes)
    if fmt in ("mp4", "mov"):
        check_bmff_complete(path)
    elif fmt in ("webm", "matroska"):
        check_matroska_complete(path)
    return probe_video(path, fmt, timeout_s=timeout_s, max_side_px=max_video_side_px,
                       max_pixels=max_video_pixels, own_output=own_output)


def probe_with_limits(path: Path, settings: Settings, *,
                      timeout_s: float | None = None) -> MediaInfo:
    """:func:`probe` with every limit the operator configured (pixels, frames, video size,
    decode memory): how a source from a job, or from ``conform probe``, is read.

    Raises:
        UnsupportedMedia, CorruptMedia, TooLarge: as :func:`probe`.
    """
    return probe(path, timeout_s=settings.probe_timeout_s if timeout_s is None else timeout_s,
                 max_pixels=settings.max_image_pixels, max_frames=settings.max_animation_frames,
                 max_video_side_px=settings.max_video_side_px,
                 max_video_pixels=settings.max_video_pixels,
                 max_decode_bytes=settings.max_decode_bytes)
