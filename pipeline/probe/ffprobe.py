"""What we ask ffprobe, and how its answers are read: the stream JSON and packet listings.

ffprobe runs only through :mod:`pipeline.ffmpeg` (the argv head, the demuxer table, the
protocol lock-down live there); this module builds the per-probe options and converts ffprobe's
loosely typed values (``"N/A"``, ``"30000/1001"``, bit rates as strings) at the boundary.
"""

from __future__ import annotations

import array
import itertools
import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from .. import ffmpeg
from ..errors import CorruptMedia, FFmpegError, FFmpegTimeout, UnsupportedMedia


def ffprobe_argv(path: Path, fmt: str) -> list[str]:
    """The ffprobe argv for a local file: JSON out, only the ``file`` protocol, forced demuxer.

    With the demuxer forced, a playlist (HLS, ``ffconcat``) saved under a video name is read as
    the container we sniffed and fails as corrupt instead of being followed; the protocol
    whitelist stops any reference inside a real container (MOV data references, which the mov
    demuxer also ignores by default) from reaching the network.

    Raises:
        UnsupportedMedia: ``fmt`` has no demuxer of ours: ffprobe is never left to guess.
        ConfigError: ffprobe is not installed.
    """
    if fmt not in ffmpeg.DEMUXERS:
        raise UnsupportedMedia(f"no demuxer is allowed for {fmt!r}")
    return ffmpeg.ffprobe_head("-v", "error", "-print_format", "json", "-show_format",
                               "-show_streams", *ffmpeg.probe_input(path, fmt))


def ffprobe_json(path: Path, fmt: str, *, timeout_s: float) -> dict[str, Any]:
    """Raw ffprobe output for a local file, with the demuxer forced and protocols locked down.

    Raises:
        UnsupportedMedia: no demuxer is allowed for ``fmt``.
        CorruptMedia: ffprobe cannot read the file (the stderr tail is in the message and in
            ``details["stderr"]``).
        FFmpegTimeout: ffprobe ran past ``timeout_s`` and was killed (``processing_timeout``).
        ConfigError: ffprobe is not installed.
    """
    args = ffprobe_argv(path, fmt)
    try:
        out = ffmpeg.run(args, timeout_s=timeout_s).stdout
    except FFmpegTimeout:
        raise
    except FFmpegError as err:
        tail = err.stderr_tail.strip()
        raise CorruptMedia(f"cannot read the {fmt} file: {tail[-300:] or 'ffprobe failed'}",
                           details={"stderr": tail, "returncode": err.returncode}) from err
    try:
        data = json.loads(out or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptMedia("ffprobe returned unreadable output") from err
    if not isinstance(data, dict):
        raise CorruptMedia("ffprobe returned unreadable output")
    return data


_IRREGULAR_INTERVAL = 0.25
# ...and a stream with more than this share of irregular intervals is variable frame rate.
# Phones drop the odd frame: that alone is not VFR to a platform's fps check.
_VFR_SHARE = 0.02


@dataclass(frozen=True, slots=True)
class PacketFacts:
    """What the video packet index says: keyframe spacing and frame timing."""

    packets: int
    max_keyframe_interval_s: float
    irregular: bool
    start_s: float
    end_s: float


def scan_packets(path: Path, fmt: str, *, timeout_s: float) -> PacketFacts:
    """Read the video packet index (times and key flags, no decoding) with ffprobe.

    The longest keyframe gap includes the stretch from the last keyframe to the end, so a
    clip with one keyframe at 0 s reports its whole length. Every video is scanned (it reads
    the file once, without decoding): the keyframe spacing decides whether a stream can be
    kept, and the first and last timestamps give the real length of an offset stream.

    Raises:
        CorruptMedia: ffprobe cannot read the packets.
        FFmpegTimeout: ffprobe ran past ``timeout_s``.
    """
    # CSV, not JSON: one short line per packet keeps a 1-hour 60 fps file's scan at a few MB
    # (JSON objects cost ~0.75 KB per packet once parsed). ffprobe prints the fields in its own
    # order: pts_time, dts_time, duration_time, flags.
    args = ffmpeg.ffprobe_head("-v", "error", "-select_streams", "v:0",
                               "-show_entries", "packet=pts_time,dts_time,duration_time,flags",
                               "-print_format", "csv=p=0", *ffmpeg.probe_input(path, fmt))
    out = _packets_csv(args, "video", timeout_s=timeout_s)
    times = array.array("d")
    keys = array.array("d")
    end = 0.0
    for line in out.splitlines():
        fields = line.decode("ascii", "replace").split(",")
        if len(fields) < 4:
            continue
        t = as_float(fields[0])
        if t is None:
            t = as_float(fields[1])
        if t is None:
            continue
        times.append(t)
        end = max(end, t + (as_float(fields[2]) or 0.0))
        if "K" in fields[3]:
            keys.append(t)
    if not times:
        raise CorruptMedia("the video stream has no packets")
    times = array.array("d", sorted(times))
    start = times[0]
    marks = sorted(keys) or [start]
    marks.append(end)
    if marks[0] > start:
        marks.insert(0, start)  # frames before the first keyframe cannot be shown on their own
    gap = max((b - a for a, b in itertools.pairwise(marks)), default=0.0)
    deltas = array.array("d", (b - a for a, b in itertools.pairwise(times) if b - a > 1e-6))
    irregular = False
    if len(deltas) >= 3:
        typical = sorted(deltas)[len(deltas) // 2]
        off = sum(1 for d in deltas if abs(d - typical) > typical * _IRREGULAR_INTERVAL)
        irregular = off > max(1, len(deltas) * _VFR_SHARE)
    return PacketFacts(len(times), round(gap, 6), irregular, start, end)



def hidden_priming_s(path: Path, fmt: str, stream: dict[str, Any], *,
                      timeout_s: float) -> float:
    """How much of the first audio track's start an edit list hides (the encoder's priming:
    1024 samples from ffmpeg, 2112 from Apple's AAC encoder): the first packet's time before
    the stream's start.

    Raises:
        CorruptMedia: ffprobe cannot read the packet.
        FFmpegTimeout: ffprobe ran past ``timeout_s``.
    """
    args = ffmpeg.ffprobe_head("-v", "error", "-select_streams", "a:0",
                               "-read_intervals", "%+#1", "-show_entries", "packet=pts_time",
                               "-print_format", "csv=p=0", *ffmpeg.probe_input(path, fmt))
    out = _packets_csv(args, "audio", timeout_s=timeout_s)
    first = as_float(out.decode("ascii", "replace").strip().split(",")[0] if out else None)
    start = as_float(stream.get("start_time")) or 0.0
    return max(0.0, start - first) if first is not None else 0.0


def _packets_csv(args: list[str], what: str, *, timeout_s: float) -> bytes:
    """Run an ffprobe packet listing; a file it cannot read is corrupt media.

    Raises:
        CorruptMedia: ffprobe cannot read the packets.
        FFmpegTimeout: ffprobe ran past ``timeout_s``.
    """
    try:
        return ffmpeg.run(args, timeout_s=timeout_s).stdout
    except FFmpegTimeout:
        raise
    except FFmpegError as err:
        raise CorruptMedia(f"cannot read the {what} packets: {err.stderr_tail.strip()[-300:]}",
                           details={"stderr": err.stderr_tail}) from err


def as_ratio(value: Any) -> Fraction | None:
    """A positive ``"n/d"`` or ``"n:d"`` ratio, or None (``"0/0"``, ``"N/A"``, missing)."""
    if not value or not isinstance(value, str):
        return None
    num, _, den = value.partition(":" if ":" in value else "/")
    try:
        n, d = int(num), int(den or 1)
    except ValueError:
        return None
    if n <= 0 or d <= 0:
        return None
    return Fraction(n, d)


def as_float(value: Any) -> float | None:
    """A number, or None for ffprobe's ``"N/A"``, a missing value or garbage."""
    try:
        return float(value) if value not in (None, "N/A") else None
    except (TypeError, ValueError):
        return None


def as_kbps(value: Any) -> int | None:
    """A bit rate in bit/s as whole kbit/s; None when unknown or zero."""
    f = as_float(value)
    return round(f / 1000) if f else None

