"""Verification: every output is probed and checked against its preset before it is stored.

A violation here is our bug, never the user's: the account fails with ``processing_failed``
and the file does not ship.
"""

from __future__ import annotations

from .. import rules
from ..errors import ProcessingFailed
from ..models import MediaInfo
from ..plan import ImageTarget, VideoTarget, start_tolerance_s
from ..presets import ImageSpec, VideoSpec


def check_image(info: MediaInfo, spec: ImageSpec, target: ImageTarget) -> list[str]:
    """Problems of an image output against its variant, as the platform would judge it.

    The shared image rules (:func:`pipeline.rules.image_problems`), with the slack of whole
    pixels: format, byte cap, size limits, shape, frame count, and what a photo must not
    carry (an EXIF orientation, EXIF/GPS/XMP metadata, a colour space other than sRGB).

    Returns:
        Every problem found; empty when the output ships.

    Raises:
        Nothing.
    """
    return rules.image_problems(info, spec, max_bytes=target.max_bytes,
                                animation=target.animated, tolerance=rules.IMAGE_OUTPUT)


def check_video(info: MediaInfo, spec: VideoSpec, target: VideoTarget,
                source_duration_s: float) -> list[str]:
    """Problems of a video output against its variant (empty: it ships).

    Checks what a platform's ingest checks: container and moov position, edit lists, codec,
    profile, pixel format, progressive scan, square pixels, no rotation, size and shape,
    constant frame rate in range, keyframe spacing, SDR BT.709 (for our encodes), bitrate and
    byte caps, audio codec/layout/rate, duration and start time.

    Args:
        info: the probed output.
        spec: the variant's video rules (the output must satisfy every variant sharing it).
        target: what was planned (the byte cap is the smallest of everyone sharing it).
        source_duration_s: the source's duration, to prove the length did not change.

    Returns:
        Human-readable violations; empty when the output ships.

    Raises:
        Nothing.
    """
    problems: list[str] = []
    v = info.video
    if v is None:
        return ["no video stream in the output"]
    encoded = target.action == "transcode"
    if info.format_name not in spec.containers and not (
            info.format_name == "mp4" and "mov" in spec.containers):
        problems.append(f"container {info.format_name}")
    problems += rules.video_stream_problems(info, spec, max_bytes=target.max_bytes,
                                            tolerance=rules.OUTPUT, encoded=encoded)
    if encoded:
        tags = (v.color_primaries, v.color_transfer, v.color_space)
        if tags != ("bt709", "bt709", "bt709"):
            problems.append(f"colour tags {'/'.join(str(x) for x in tags)}, not BT.709")
    if spec.faststart and info.format_name in ("mp4", "mov") and not info.moov_first:
        problems.append("moov atom not at the front")
    if spec.faststart and info.edit_list:
        problems.append("edit list present")
    if info.has_location:
        problems.append("location metadata left in the output")
    if target.action != "passthrough" and info.extra_streams:
        problems.append(f"{info.extra_streams} extra stream(s) (data, subtitles)")
    if abs(info.start_time_s) > start_tolerance_s(v.fps):
        problems.append(f"starts at {info.start_time_s:.3f} s")
    problems += _audio_problems(info, spec, target)
    problems += _duration_problems(info, spec, target, source_duration_s)
    return problems


def _audio_problems(info: MediaInfo, spec: VideoSpec, target: VideoTarget) -> list[str]:
    """The audio track against the variant, and against what was planned for it."""
    a = info.audio
    problems: list[str] = []
    if a is None:
        if spec.audio.required:
            problems.append("no audio track")
        elif target.audio.action not in ("none",):
            problems.append("the audio track was lost")
        return problems
    if target.audio.action == "none":
        problems.append("an audio track the source did not have")
    if a.codec not in spec.audio.codecs:
        problems.append(f"audio codec {a.codec}")
    if a.codec == "aac" and (a.profile or "LC") != "LC":
        problems.append(f"AAC profile {a.profile}, not LC")
    if not 1 <= a.channels <= spec.audio.max_channels:
        problems.append(f"{a.channels} audio channels")
    if a.sample_rate_hz not in spec.audio.sample_rates_hz:
        problems.append(f"audio sample rate {a.sample_rate_hz}")
    return problems


def _duration_problems(info: MediaInfo, spec: VideoSpec, target: VideoTarget,
                       source_duration_s: float) -> list[str]:
    """The output's length: the source's (looped, trimmed), and within the variant's maximum."""
    v = info.video
    assert v is not None
    problems: list[str] = []
    looped_s = source_duration_s * target.loops
    expected = min(looped_s, target.trim_s or looped_s)
    # Two frames of slack (the last frame's duration, rounding), at least a quarter second,
    # plus the B-frame delay a file without an edit list starts with.
    slack = max(0.25, expected * 0.02, 2 / float(v.fps or 30)) + start_tolerance_s(v.fps)
    if info.duration_s is not None and abs(info.duration_s - expected) > slack:
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
