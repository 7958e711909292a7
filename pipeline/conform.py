"""Verification: every output is probed and checked against its preset before it is stored.

A violation here is our bug, never the user's: the account fails with ``processing_failed``
and the file does not ship.
"""

from __future__ import annotations

from fractions import Fraction

from .errors import ProcessingFailed
from .models import MediaInfo
from .plan import ImageTarget, VideoTarget
from .presets import ImageSpec, VideoSpec

ASPECT_TOLERANCE = 0.01  # rounding to whole (even) pixels moves the ratio a little


def _aspect_ok(w: int, h: int, lo: Fraction | None, hi: Fraction | None) -> bool:
    a = w / h
    return (lo is None or a >= float(lo) * (1 - ASPECT_TOLERANCE)) and (
        hi is None or a <= float(hi) * (1 + ASPECT_TOLERANCE))


def check_image(info: MediaInfo, spec: ImageSpec, target: ImageTarget) -> list[str]:
    """Problems of an image output against its variant (empty: it ships)."""
    problems: list[str] = []
    animated_ok = target.animated and info.format_name in spec.animated_formats
    if info.format_name not in spec.formats and not animated_ok:
        problems.append(f"format {info.format_name} not in {spec.formats}")
    if info.size_bytes > target.max_bytes:
        problems.append(f"{info.size_bytes} bytes over the {target.max_bytes}-byte cap")
    if not (info.width <= spec.max_width and info.height <= spec.max_height):
        problems.append(f"{info.width}x{info.height} over {spec.max_width}x{spec.max_height}")
    if info.width < spec.min_width or info.height < spec.min_height:
        problems.append(f"{info.width}x{info.height} under the minimum")
    if spec.max_pixels and info.width * info.height > spec.max_pixels:
        problems.append("over the pixel cap")
    if spec.max_side_sum and info.width + info.height > spec.max_side_sum:
        problems.append("width + height over the cap")
    if spec.max_short_side and min(info.width, info.height) > spec.max_short_side:
        problems.append("short side over the cap")
    if not _aspect_ok(info.width, info.height, spec.aspect_min, spec.aspect_max):
        problems.append(f"aspect {info.width}:{info.height} out of range")
    facts = info.image
    if facts is not None:
        if facts.exif_orientation != 1:
            problems.append("EXIF orientation left in the output")
        if facts.has_gps:
            problems.append("GPS metadata left in the output")
    return problems


def check_video(info: MediaInfo, spec: VideoSpec, target: VideoTarget,
                source_duration_s: float) -> list[str]:
    """Problems of a video output against its variant (empty: it ships)."""
    problems: list[str] = []
    v = info.video
    if v is None:
        return ["no video stream in the output"]
    if info.format_name not in spec.containers and not (
            info.format_name == "mp4" and "mov" in spec.containers):
        problems.append(f"container {info.format_name}")
    if v.codec not in spec.codecs:
        problems.append(f"codec {v.codec}")
    if v.pix_fmt not in spec.pix_fmts:
        problems.append(f"pixel format {v.pix_fmt}")
    if v.rotation_deg or v.mirrored:
        problems.append("rotation metadata left in the output")
    if v.sar != 1:
        problems.append(f"sample aspect ratio {v.sar}")
    if not (spec.min_width <= info.width <= spec.max_width
            and spec.min_height <= info.height <= spec.max_height):
        problems.append(f"size {info.width}x{info.height} out of range")
    if not _aspect_ok(info.width, info.height, spec.aspect_min, spec.aspect_max):
        problems.append(f"aspect {info.width}:{info.height} out of range")
    if not (spec.fps_min * Fraction(99, 100) <= v.fps <= spec.fps_max * Fraction(101, 100)):
        problems.append(f"{float(v.fps):.3f} fps out of range")
    if target.action == "transcode" and v.vfr:
        problems.append("variable frame rate")
    if spec.sdr_only and v.hdr:
        problems.append("still HDR")
    if info.size_bytes > target.max_bytes:
        problems.append(f"{info.size_bytes} bytes over the {target.max_bytes}-byte cap")
    if spec.faststart and info.format_name in ("mp4", "mov") and not info.moov_first:
        problems.append("moov atom not at the front")
    if spec.faststart and info.edit_list:
        problems.append("edit list present")
    if info.has_location:
        problems.append("location metadata left in the output")
    a = info.audio
    if a is not None:
        if a.codec not in spec.audio.codecs:
            problems.append(f"audio codec {a.codec}")
        if a.channels > spec.audio.max_channels:
            problems.append(f"{a.channels} audio channels")
        if a.sample_rate_hz not in spec.audio.sample_rates_hz:
            problems.append(f"audio sample rate {a.sample_rate_hz}")
    elif spec.audio.required:
        problems.append("no audio track")
    expected = min(source_duration_s, target.trim_s or source_duration_s)
    if info.duration_s is not None and abs(info.duration_s - expected) > max(0.25, expected * 0.02):
        problems.append(f"duration {info.duration_s:.2f} s, expected {expected:.2f} s")
    if spec.max_duration_s is not None and (info.duration_s or 0) > spec.max_duration_s + 0.5:
        problems.append("over the maximum duration")
    return problems


def require(problems: list[str], what: str) -> None:
    """Raise when an output breaks its preset.

    Raises:
        ProcessingFailed: the output does not conform (a bug in planning or rendering).
    """
    if problems:
        raise ProcessingFailed(f"{what} does not conform after processing: " + "; ".join(problems),
                               details={"violations": problems})
