"""Video probing: ffprobe's stream JSON and packet index into a typed :class:`MediaInfo`.

The display size (rotation and SAR applied) is resolved here, once, so no later stage reasons
about rotation or anamorphic pixels again.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..errors import CorruptMedia, TooLarge, UnsupportedMedia
from ..models import AudioStream, MediaInfo, VideoStream
from .containers import has_edit_list, moov_first
from .ffprobe import (
    PacketFacts,
    as_float,
    as_kbps,
    as_ratio,
    ffprobe_json,
    hidden_priming_s,
    scan_packets,
)

HDR_TRANSFERS = {"smpte2084", "arib-std-b67"}
# HDR10 side data; it marks HDR only on a stream deeper than 8 bits.
_HDR_SIDE_DATA = ("Mastering display metadata", "Content light level metadata")
# The largest video frame any platform takes: YouTube's 8K (7680x4320), DCI 8K (8192x4320)
# for the longest side. Anything bigger is refused from the stream header, before ffmpeg
# decodes a frame (a 16000x16000 frame costs 2.5 GB per ffmpeg process).
MAX_VIDEO_SIDE_PX = 8192
MAX_VIDEO_PIXELS = 8192 * 4320
# Containers with ISO-BMFF boxes: edit lists, faststart and encoder priming are read there.
_BMFF = ("mp4", "mov")


def probe_video(path: Path, fmt: str, *, timeout_s: float = 60.0,
                max_side_px: int = MAX_VIDEO_SIDE_PX, max_pixels: int = MAX_VIDEO_PIXELS,
                own_output: bool = False) -> MediaInfo:
    """Probe a video file into :class:`MediaInfo`.

    ``own_output``: a file we made (an encode, or a copy of a source probed already), not one
    a user sent: its packet scan runs alongside the stream probe (one ffprobe start less of
    waiting). A source's waits for the headers' checks, which refuse an oversized frame
    before anything else reads the file.

    Raises:
        UnsupportedMedia: no video stream (audio-only), or a codec this ffmpeg cannot decode.
        CorruptMedia: ffprobe fails or reports nonsense.
        TooLarge: the coded or displayed frame is over ``max_side_px`` on a side or over
            ``max_pixels`` (checked from the headers, before anything is decoded).
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        scanning = (pool.submit(scan_packets, path, fmt, timeout_s=timeout_s) if own_output
                    else None)
        data = ffprobe_json(path, fmt, timeout_s=timeout_s)
        streams = data.get("streams") or []
        fmt_info = data.get("format") or {}
        vstream, astream = _pick_streams(streams)
        video = _video_stream(vstream)
        check_frame_size(video, max_side_px=max_side_px, max_pixels=max_pixels)
        packets = (scanning.result() if scanning is not None
                   else scan_packets(path, fmt, timeout_s=timeout_s))
    video = _with_packet_facts(video, packets)
    edit_list = has_edit_list(path) if fmt in _BMFF else False
    audio = None
    if astream is not None:
        audio = _audio_stream(astream)
        if edit_list:  # without one nothing is hidden: no ffprobe run to find that out
            audio = replace(audio, priming_s=hidden_priming_s(path, fmt, astream,
                                                              timeout_s=timeout_s))
    duration = _duration_s(fmt, fmt_info, vstream, packets)
    return MediaInfo(
        kind="video", format_name=fmt, size_bytes=path.stat().st_size,
        width=video.display_width, height=video.display_height, duration_s=duration,
        bitrate_kbps=as_kbps(fmt_info.get("bit_rate")),
        start_time_s=as_float(fmt_info.get("start_time")) or 0.0,
        video=video, audio=audio, moov_first=moov_first(path) if fmt in _BMFF else None,
        edit_list=edit_list,
        has_location=_has_location(fmt_info, streams),
        extra_streams=len(streams) - 1 - (1 if astream is not None else 0),
    )


def _pick_streams(streams: list[dict[str, Any]]
                  ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The first real video stream (not cover art) and the first audio stream, if any.

    Raises:
        UnsupportedMedia: audio but no video.
        CorruptMedia: no stream at all.
    """
    vstreams = [s for s in streams if s.get("codec_type") == "video"
                and not (s.get("disposition") or {}).get("attached_pic")]
    astreams = [s for s in streams if s.get("codec_type") == "audio"]
    if not vstreams:
        if astreams:
            raise UnsupportedMedia("the file has audio but no video stream")
        raise CorruptMedia("no video stream found")
    return vstreams[0], (astreams[0] if astreams else None)


def _duration_s(fmt: str, fmt_info: dict[str, Any], vstream: dict[str, Any],
                packets: PacketFacts) -> float:
    """The playing time: the container's, unless the packets prove it wrong or it has none.

    Raises:
        CorruptMedia: no duration anywhere.
    """
    duration = as_float(fmt_info.get("duration")) or as_float(vstream.get("duration"))
    length = packets.end_s - packets.start_s
    if duration and packets.start_s > 0.5 and 0 < length < duration - 0.05:
        # An offset first PTS (10 s) in an MP4/MKV whose declared duration is the end time:
        # the container looks 10 s longer than the video really is.
        duration = length
    if not duration and fmt in ("webm", "matroska") and length > 0:
        # A live recording (unknown-size Segment) declares no duration: the packets tell it.
        duration = length
    if not duration or duration <= 0:
        raise CorruptMedia("the video has no duration")
    return duration


def check_frame_size(video: VideoStream, *, max_side_px: int, max_pixels: int) -> None:
    """Refuse a frame larger than any platform takes, coded or as displayed (SAR applied).

    Raises:
        TooLarge: a side over ``max_side_px`` or an area over ``max_pixels``.
    """
    for width, height in ((video.width, video.height),
                          (video.display_width, video.display_height)):
        if max(width, height) > max_side_px or width * height > max_pixels:
            raise TooLarge(
                f"video frame {width}x{height} is larger than any platform takes "
                f"(at most {max_side_px} px a side and {max_pixels} pixels)",
                details={"width": width, "height": height, "max_side_px": max_side_px,
                         "max_pixels": max_pixels},
            )


def _with_packet_facts(v: VideoStream, facts: PacketFacts) -> VideoStream:
    # VP9/AV1 have invisible (alt-ref) packets a millisecond apart: only H.264/HEVC packet
    # timing says anything about the frame rate.
    irregular = facts.irregular and v.codec in ("h264", "hevc")
    return replace(v, max_keyframe_interval_s=facts.max_keyframe_interval_s,
                   vfr=v.vfr or irregular, start_s=facts.start_s, end_s=facts.end_s,
                   frame_count=v.frame_count or (facts.packets if v.codec in ("h264", "hevc")
                                                 else None))


def _has_location(fmt_info: dict[str, Any], streams: list[dict[str, Any]]) -> bool:
    """GPS/location tags (ISO 6709 in QuickTime/MP4 udta): stripped from outputs for privacy."""
    tag_sets = [fmt_info.get("tags") or {}] + [s.get("tags") or {} for s in streams]
    return any("location" in key.lower() for tags in tag_sets for key in tags)


def _video_stream(s: dict[str, Any]) -> VideoStream:
    """One ffprobe video stream as a :class:`VideoStream`, its display size resolved.

    Raises:
        UnsupportedMedia: no codec ffmpeg knows.
        CorruptMedia: no picture size.
    """
    codec = s.get("codec_name")
    if not codec or codec == "none":
        raise UnsupportedMedia(f"video codec {s.get('codec_tag_string', '?')!r} is not supported")
    width, height = int(s.get("width") or 0), int(s.get("height") or 0)
    if width <= 0 or height <= 0:
        raise CorruptMedia("the video stream has no picture size")
    sar = as_ratio(s.get("sample_aspect_ratio")) or Fraction(1)
    rotation, mirrored, matrix = _rotation(s)
    display_width, display_height = _display_size(width, height, sar, rotation)
    fps, real, vfr = _frame_rates(s)
    pix_fmt = s.get("pix_fmt") or "unknown"
    depth = _bit_depth(s, pix_fmt)
    transfer = s.get("color_transfer")
    frames = s.get("nb_frames")
    return VideoStream(
        codec=codec, profile=s.get("profile"), width=width, height=height,
        display_width=display_width, display_height=display_height, rotation_deg=rotation,
        mirrored=mirrored, display_matrix=matrix, sar=sar, fps=fps, fps_real=real, vfr=vfr,
        pix_fmt=pix_fmt, bit_depth=depth, color_transfer=transfer,
        color_primaries=s.get("color_primaries"), color_space=s.get("color_space"),
        color_range=s.get("color_range"), hdr=_is_hdr(s, transfer, depth),
        interlaced=s.get("field_order") not in (None, "progressive", "unknown"),
        bitrate_kbps=as_kbps(s.get("bit_rate")),
        frame_count=int(frames) if frames and str(frames).isdigit() else None,
        has_b_frames=int(s.get("has_b_frames") or 0),
    )


def _display_size(width: int, height: int, sar: Fraction, rotation: int) -> tuple[int, int]:
    """The size a player shows: anamorphic pixels stretched (to an even width), then turned."""
    display_width = width
    if sar != 1:
        display_width = _floor_even(round(width * sar.numerator / sar.denominator))
    if rotation in (90, 270):
        return height, display_width
    return display_width, height


def _frame_rates(s: dict[str, Any]) -> tuple[Fraction, Fraction, bool]:
    """(frame rate, real base rate, variable): the average rate unless there is none.

    An average more than 2 % off the base rate means the frame timing varies.
    """
    avg = as_ratio(s.get("avg_frame_rate")) or Fraction(0)
    real = as_ratio(s.get("r_frame_rate")) or avg
    fps = avg if avg > 0 else real
    vfr = bool(avg and real and abs(float(avg) - float(real)) / float(real) > 0.02)
    return fps, real, vfr


def _bit_depth(s: dict[str, Any], pix_fmt: str) -> int:
    """Bits per sample, as the stream says, else from the pixel format's name."""
    return int(s.get("bits_per_raw_sample") or 0) or (
        10 if "10" in pix_fmt else 12 if "12" in pix_fmt else 8)


def _is_hdr(s: dict[str, Any], transfer: str | None, depth: int) -> bool:
    """A PQ/HLG transfer, or HDR10 side data on a stream deeper than 8 bits."""
    side = s.get("side_data_list") or []
    return transfer in HDR_TRANSFERS or any(
        d.get("side_data_type") in _HDR_SIDE_DATA and depth > 8 for d in side)
def _rotation(s: dict[str, Any]) -> tuple[int, bool, tuple[int, ...] | None]:
    """Clockwise display rotation (0/90/180/270), whether it mirrors, and the raw matrix."""
    rotation = 0.0
    matrix: tuple[int, ...] | None = None
    for d in s.get("side_data_list") or []:
        if d.get("side_data_type") == "Display Matrix":
            rotation = float(d.get("rotation") or 0)
            matrix = _parse_matrix(d.get("displaymatrix") or "")
    if not matrix:
        tag = (s.get("tags") or {}).get("rotate")
        if tag is not None:
            rotation = -float(tag)  # the legacy tag is clockwise; side data is counter-clockwise
    turn = round(-rotation) % 360
    clockwise = min((0, 90, 180, 270), key=lambda a: min(abs(a - turn), 360 - abs(a - turn)))
    # A negative determinant flips the picture. ffmpeg's autorotate applies the flip as well
    # (transpose/hflip/vflip from the matrix signs); ffprobe's "rotation" alone does not say it.
    mirrored = bool(matrix and matrix[0] * matrix[4] - matrix[1] * matrix[3] < 0)
    return clockwise, mirrored, matrix


def _parse_matrix(text: str) -> tuple[int, ...] | None:
    numbers: list[int] = []
    for line in text.strip().splitlines():
        parts = line.split(":", 1)[-1].split()
        numbers += [int(p) for p in parts if p.lstrip("-").isdigit()]
    return tuple(numbers) if len(numbers) == 9 else None


def _audio_stream(s: dict[str, Any]) -> AudioStream:
    return AudioStream(
        codec=s.get("codec_name") or "unknown", profile=s.get("profile"),
        sample_rate_hz=int(s.get("sample_rate") or 0), channels=int(s.get("channels") or 0),
        channel_layout=s.get("channel_layout"), bitrate_kbps=as_kbps(s.get("bit_rate")),
        start_s=as_float(s.get("start_time")) or 0.0,
    )


def _floor_even(n: int) -> int:
    """``n`` rounded down to an even number, at least 2."""
    return max(2, n - (n % 2))
