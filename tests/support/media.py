"""Tiny test videos made with lavfi at test time, and helpers to look at outputs like a platform.

``make_clip(...)`` (the session fixture) builds a clip from its parameters and caches it for the
session, so two tests asking for the same clip share one file. Never modify a returned file:
copy it first.

ffmpeg 5.1 cannot write a display matrix from the command line (``-metadata:s:v rotate=90``
does nothing any more), so rotated and mirrored phone clips are made by patching the ``tkhd``
matrix of an ordinary MP4 in place: :func:`set_display_matrix`.

The ``quadrants`` pattern has a different colour in each quarter (red top-left, green
top-right, blue bottom-left, grey bottom-right), so :func:`quadrant_colours` of an output tells
whether it is upright, rotated or mirrored, and whether colours survived (HDR tone-mapping).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import struct
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# The quadrant colours (sRGB, limited to 40..200 so HDR round trips do not clip).
RED, GREEN, BLUE, GREY = (200, 40, 40), (40, 200, 40), (40, 40, 200), (128, 128, 128)
QUADRANTS = {"tl": RED, "tr": GREEN, "bl": BLUE, "br": GREY}

_VIDEO_CODECS = {
    "h264": ["-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high"],
    "h264_444": ["-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high444"],
    "hevc": ["-c:v", "libx265", "-preset", "ultrafast", "-tag:v", "hvc1"],
    "vp9": ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k"],
    "mpeg4": ["-c:v", "mpeg4", "-q:v", "5"],
    "mpeg2": ["-c:v", "mpeg2video", "-q:v", "5"],
    "gif": ["-c:v", "gif"],
}
_AUDIO_CODECS = {
    "aac": ["-c:a", "aac", "-b:a", "128k"],
    "opus": ["-c:a", "libopus", "-b:a", "96k"],
    "mp3": ["-c:a", "libmp3lame", "-b:a", "128k"],
    "ac3": ["-c:a", "ac3", "-b:a", "192k"],
    "vorbis": ["-c:a", "libvorbis"],
}
_LAYOUTS = {"mono": "mono", "stereo": "stereo", "5.1": "5.1"}


def _run(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(args, capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}\n{proc.stderr.decode(errors='replace')[-2000:]}")
    return proc


def _pattern(kind: str, width: int, height: int, fps: str, seconds: float) -> str:
    size = f"{width}x{height}"
    if kind == "testsrc2":
        return f"testsrc2=s={size}:r={fps}:d={seconds}"
    if kind == "noise":  # incompressible: for byte-budget tests
        return f"testsrc2=s={size}:r={fps}:d={seconds},noise=alls=80:allf=t+u"
    if kind == "quadrants":
        def pick(channel: int) -> str:
            tl, tr, bl, br = (QUADRANTS[q][channel] for q in ("tl", "tr", "bl", "br"))
            return f"if(lt(Y,H/2),if(lt(X,W/2),{tl},{tr}),if(lt(X,W/2),{bl},{br}))"
        # a small moving white square keeps the encoder honest about motion
        return (f"nullsrc=s={size}:r={fps}:d={seconds},format=gbrp,"
                f"geq=r='{pick(0)}':g='{pick(1)}':b='{pick(2)}'")
    raise ValueError(kind)


def build_clip(out: Path, *, width: int = 320, height: int = 180, seconds: float = 1.0,
               fps: str | int = 30, audio: str | None = "stereo", audio_codec: str = "aac",
               audio_rate: int = 48000, codec: str = "h264", container: str = "mp4",
               pix_fmt: str = "yuv420p", pattern: str = "testsrc2", hdr: str | None = None,
               sar: tuple[int, int] | None = None, interlaced: bool = False,
               vfr: bool = False, faststart: bool = True, gop: int | None = None,
               rotate: int = 0, mirror: bool = False, centre_only_audio: bool = False,
               video_bitrate: str | None = None, start_s: float = 0.0,
               edit_list: bool = True) -> Path:
    """Write one clip to ``out`` (see :func:`make_clip` for the meaning of each parameter)."""
    fps = str(fps)
    if container == "webm" and audio_codec == "aac":
        audio_codec = "opus"  # WebM holds Opus or Vorbis only
    # Big pictures are drawn small and scaled up: geq per pixel at 4K is slow.
    small = (width > 960 and pattern == "quadrants")
    chain = [_pattern(pattern, 480 if small else width, 270 if small else height, fps, seconds)]
    if small:
        chain.append(f"scale={width}:{height}:flags=neighbor")
    if vfr:
        # drop every 3rd and 4th of 5 frames: timestamps keep their gaps (variable rate)
        chain.append("select='lt(mod(n\\,5)\\,3)'")
    if sar:
        chain.append(f"setsar={sar[0]}/{sar[1]}")
    if hdr:
        transfer = {"hlg": "arib-std-b67", "pq": "smpte2084"}[hdr]
        chain.append(f"zscale=tin=bt709:min=bt709:pin=bt709:rin=tv:t={transfer}:m=bt2020nc:"
                     "p=bt2020:r=tv:npl=203")
    if interlaced:
        chain.append("setfield=tff")
    chain.append(f"format={pix_fmt}")
    args = ["ffmpeg", "-hide_banner", "-nostdin", "-y", "-v", "error",
            "-f", "lavfi", "-i", ",".join(chain)]
    if audio:
        layout = _LAYOUTS[audio]
        if centre_only_audio:
            # 5.1 with a tone on the front centre only: a naive "first two channels" is silence
            src = (f"aevalsrc=0|0|0.5*sin(440*2*PI*t)|0|0|0:c=5.1:s={audio_rate}:d={seconds}")
        else:
            src = f"sine=f=440:r={audio_rate}:d={seconds},aformat=channel_layouts={layout}"
        args += ["-f", "lavfi", "-i", src]
    args += ["-map", "0:v"] + (["-map", "1:a"] if audio else [])
    args += _VIDEO_CODECS[codec]
    if codec == "gif":
        args += ["-loop", "0"]
    elif codec != "mpeg4":
        args += ["-pix_fmt", pix_fmt]
    if gop is not None:
        args += ["-g", str(gop), "-keyint_min", str(gop)]
    if video_bitrate:
        args += ["-b:v", video_bitrate]
    x265: list[str] = ["log-level=error"]
    if hdr:
        transfer = {"hlg": "arib-std-b67", "pq": "smpte2084"}[hdr]
        args += ["-color_primaries", "bt2020", "-color_trc", transfer, "-colorspace", "bt2020nc",
                 "-color_range", "tv"]
        x265 += ["colorprim=bt2020", f"transfer={transfer}", "colormatrix=bt2020nc"]
        if hdr == "pq":
            x265 += ["hdr10=1", "master-display=G(13250,34500)B(7500,3000)R(34000,16000)"
                     "WP(15635,16450)L(10000000,1)", "max-cll=1000,400"]
    if codec == "hevc":
        args += ["-x265-params", ":".join(x265)]
    if interlaced:
        if codec == "h264":
            args += ["-x264-params", "interlaced=1:tff=1"]
        else:
            args += ["-flags", "+ilme+ildct", "-top", "1"]
    if pix_fmt == "yuvj420p":
        args += ["-color_range", "pc"]
    if audio:
        args += _AUDIO_CODECS[audio_codec] + ["-ar", str(audio_rate)]
    if vfr:
        args += ["-fps_mode", "vfr"]
    if start_s:
        args += ["-output_ts_offset", str(start_s)]
    if container in ("mp4", "mov") and faststart:
        args += ["-movflags", "+faststart"]
    if container in ("mp4", "mov") and not edit_list:
        args += ["-use_editlist", "0"]
    fmt = {"mp4": "mp4", "mov": "mov", "webm": "webm", "avi": "avi", "mkv": "matroska",
           "gif": "gif", "ts": "mpegts"}[container]
    args += ["-f", fmt, str(out)]
    _run(args)
    if rotate or mirror:
        set_display_matrix(out, display_matrix(rotate, mirror))
    return out


@pytest.fixture(scope="session")
def make_clip(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``make_clip(width=320, height=180, seconds=1, fps=30, audio="stereo", codec="h264", ...)``.

    Parameters: ``audio`` None/"mono"/"stereo"/"5.1" (``centre_only_audio`` puts the tone on
    the 5.1 front centre only), ``audio_codec`` aac/opus/mp3/ac3/vorbis, ``audio_rate``;
    ``codec`` h264/h264_444/hevc/vp9/mpeg4/mpeg2/gif; ``container`` mp4/mov/webm/avi/mkv/gif/ts;
    ``pix_fmt``; ``pattern`` testsrc2/quadrants/noise; ``hdr`` None/"hlg"/"pq" (10-bit HEVC
    with real HDR pixels and tags); ``sar`` (num, den); ``interlaced``; ``vfr``; ``faststart``
    (moov first); ``gop`` (keyframe interval in frames); ``rotate`` (clockwise display
    rotation, 0/90/180/270) and ``mirror`` (a display matrix patched into the tkhd);
    ``video_bitrate``; ``start_s`` (first timestamp); ``edit_list`` (ffmpeg writes one for
    the B-frame delay by default; False leaves it out, as platforms want).
    """
    folder = tmp_path_factory.mktemp("clips")
    made: dict[str, Path] = {}

    def make(**params: Any) -> Path:
        key = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
        if key not in made:
            ext = params.get("container", "mp4")
            made[key] = build_clip(folder / f"{key}.{ext}", **params)
        return made[key]

    return make


# --------------------------------------------------------------------------- display matrix


def display_matrix(rotate_cw: int, mirror: bool = False) -> tuple[int, ...]:
    """The 3x3 display matrix (16.16 / 2.30 fixed point, tkhd order) of a clockwise rotation.

    Built like libavutil's ``av_display_rotation_set(m, -rotate_cw)`` followed by
    ``av_display_matrix_flip(m, hflip=mirror, vflip=0)``.
    """
    theta = math.radians(-rotate_cw)
    c, s = round(math.cos(theta)), round(math.sin(theta))
    one = 1 << 16
    m = [c * one, -s * one, 0, s * one, c * one, 0, 0, 0, 1 << 30]
    if mirror:
        m[0], m[3], m[6] = -m[0], -m[3], -m[6]
    return tuple(m)


def displayed_quadrants(matrix: tuple[int, ...]) -> dict[str, tuple[int, int, int]]:
    """Which colour each displayed quadrant must show, by the ISO/IEC 14496-12 matrix rule.

    A stored point (p, q) is shown at (p', q') = (a p + c q + x, b p + d q + y); we map the
    centre of each stored quadrant (in a centred coordinate system) and see where it lands.
    """
    a, b, c, d = matrix[0], matrix[1], matrix[3], matrix[4]
    shown: dict[str, tuple[int, int, int]] = {}
    for name, (p, q) in {"tl": (-1, -1), "tr": (1, -1), "bl": (-1, 1), "br": (1, 1)}.items():
        p2, q2 = a * p + c * q, b * p + d * q
        where = ("t" if q2 < 0 else "b") + ("l" if p2 < 0 else "r")
        shown[where] = QUADRANTS[name]
    return shown


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        header = 8
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8:pos + 16])[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header:
            return
        yield kind, pos + header, pos + size
        pos += size


def set_display_matrix(path: Path, matrix: tuple[int, ...]) -> None:
    """Overwrite the video track's tkhd matrix in place (the file's size does not change)."""
    data = bytearray(path.read_bytes())
    for kind, body, end in _boxes(data, 0, len(data)):
        if kind != b"moov":
            continue
        for tkind, tbody, tend in _boxes(data, body, end):
            if tkind != b"trak" or b"vide" not in data[tbody:tend]:
                continue
            for bkind, bbody, _ in _boxes(data, tbody, tend):
                if bkind != b"tkhd":
                    continue
                version = data[bbody]
                # version/flags, times, track id, reserved, duration, reserved, layer, group,
                # volume, reserved: 40 bytes (v0) or 52 bytes (v1) before the matrix
                offset = bbody + (52 if version == 1 else 40)
                data[offset:offset + 36] = struct.pack(">9i", *matrix)
                path.write_bytes(bytes(data))
                return
    raise ValueError(f"no video tkhd in {path}")


# --------------------------------------------------------------------------- looking at outputs


def ffprobe_json(path: Path, *extra: str) -> dict[str, Any]:
    """Raw ffprobe JSON (format and streams, plus any ``extra`` arguments)."""
    out = _run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format",
                "-show_streams", *extra, str(path)]).stdout
    data: dict[str, Any] = json.loads(out)
    return data


def video_packets(path: Path, *, hashes: bool = True) -> list[dict[str, Any]]:
    """Video packets with pts_time, flags and (``hashes``) an MD5 of their data, in decode
    order. Equal hashes prove a stream was copied, not re-encoded."""
    args = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
            "packet=pts_time,dts_time,flags,size" + (",data_hash" if hashes else "")]
    if hashes:
        args += ["-show_data_hash", "md5"]
    data = json.loads(_run([*args, "-print_format", "json", str(path)]).stdout)
    packets: list[dict[str, Any]] = data.get("packets", [])
    return packets


def stream_packets(path: Path, select: str = "v:0") -> list[dict[str, Any]]:
    """Every packet of one stream (``v:0``, ``a:0``) in decode order: timestamps, duration,
    flags, size and an MD5 of the data. Equal lists mean the same samples with the same
    timing (a stream copy, or a container rewrite)."""
    args = ["ffprobe", "-v", "error", "-select_streams", select, "-show_entries",
            "packet=pts_time,dts_time,duration_time,flags,size,data_hash",
            "-show_data_hash", "md5", "-print_format", "json", str(path)]
    packets: list[dict[str, Any]] = json.loads(_run(args).stdout).get("packets", [])
    assert packets, f"no {select} packets in {path}"
    return packets


def packets_from_zero(path: Path, select: str = "v:0") -> list[dict[str, Any]]:
    """:func:`stream_packets` on a clock whose first presented frame is at 0.

    A remux writes negative composition offsets (issue #13): the same samples, shown from 0
    instead of after the B-frame delay. Equal lists mean the same samples, flags and spacing
    (to 0.1 ms: the two files may count time in different units).
    """
    packets = stream_packets(path, select)
    first = min(float(p["pts_time"]) for p in packets)
    return [{**p, "pts_time": round(float(p["pts_time"]) - first, 4),
             "dts_time": round(float(p["dts_time"]) - first, 4)} for p in packets]


def top_level_boxes(path: Path) -> list[bytes]:
    """The types of an MP4/MOV's top-level boxes, in order."""
    data = path.read_bytes()
    return [kind for kind, _, _ in _boxes(data, 0, len(data))]


def keyframe_times(path: Path) -> list[float]:
    """Presentation times of the video keyframes (from packet flags)."""
    return sorted(float(p["pts_time"]) for p in video_packets(path, hashes=False)
                  if "K" in p.get("flags", ""))


def frame_times(path: Path) -> list[float]:
    """Presentation times of every video packet, sorted."""
    return sorted(float(p["pts_time"]) for p in video_packets(path, hashes=False))


def frame_rgb(path: Path, at_s: float = 0.0) -> tuple[int, int, bytes]:
    """Decode one frame at ``at_s`` to RGB24: (width, height, pixels). Rotation is applied."""
    info = ffprobe_json(path)
    v = next(s for s in info["streams"] if s["codec_type"] == "video")
    raw = _run(["ffmpeg", "-v", "error", "-ss", f"{at_s:.3f}", "-i", str(path),
                "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]).stdout
    w, h = int(v["width"]), int(v["height"])
    if len(raw) != w * h * 3:  # autorotated by the decoder: swap
        w, h = h, w
    assert len(raw) == w * h * 3, (len(raw), w, h)
    return w, h, raw


def mean_rgb(frame: tuple[int, int, bytes], box: tuple[float, float, float, float]
             ) -> tuple[float, float, float]:
    """Mean colour of a box given as fractions (x0, y0, x1, y1) of the frame."""
    w, h, raw = frame
    x0, y0, x1, y1 = int(box[0] * w), int(box[1] * h), int(box[2] * w), int(box[3] * h)
    total = [0, 0, 0]
    n = 0
    for y in range(y0, y1):
        row = raw[(y * w + x0) * 3:(y * w + x1) * 3]
        total[0] += sum(row[0::3])
        total[1] += sum(row[1::3])
        total[2] += sum(row[2::3])
        n += x1 - x0
    return (total[0] / n, total[1] / n, total[2] / n)


def quadrant_colours(path: Path, at_s: float = 0.0, content: tuple[float, float, float, float]
                     = (0.0, 0.0, 1.0, 1.0)) -> dict[str, tuple[float, float, float]]:
    """Mean colour of the middle of each quadrant of ``content`` (fractions of the frame)."""
    frame = frame_rgb(path, at_s)
    x0, y0, x1, y1 = content
    cw, ch = x1 - x0, y1 - y0
    out = {}
    for name, (qx, qy) in {"tl": (0, 0), "tr": (1, 0), "bl": (0, 1), "br": (1, 1)}.items():
        bx = x0 + cw * (qx * 0.5 + 0.15)
        by = y0 + ch * (qy * 0.5 + 0.15)
        out[name] = mean_rgb(frame, (bx, by, bx + cw * 0.2, by + ch * 0.2))
    return out


def close(colour: tuple[float, ...], want: tuple[int, ...], tolerance: float = 30) -> bool:
    """Every channel within ``tolerance`` of ``want``."""
    return all(abs(a - b) <= tolerance for a, b in zip(colour, want, strict=True))


def copy_clip(src: Path, dest_dir: Path, name: str | None = None) -> Path:
    """A private copy of a cached clip (for tests that patch or truncate it)."""
    dest = dest_dir / (name or src.name)
    shutil.copyfile(src, dest)
    return dest


# Flat colours far apart in RGB (and after x264's 4:2:0): one per animation frame, so a decoded
# frame says which source frame it shows.
FRAME_COLOURS = ((230, 20, 20), (20, 200, 20), (20, 20, 230), (230, 230, 20), (20, 220, 220),
                 (220, 20, 220), (245, 245, 245), (10, 10, 10))


def make_animation(path: Path, delays_ms: list[int], *, loop: int | None = 0,
                   size: tuple[int, int] = (64, 48)) -> Path:
    """An animated GIF, APNG (``.png``) or WebP by Pillow, frame i a flat FRAME_COLOURS[i % 8].

    ``loop`` is the file's loop count (0: forever; None: no loop extension, i.e. a GIF that
    plays once).
    """
    from PIL import Image

    frames = [Image.new("RGB", size, FRAME_COLOURS[i % len(FRAME_COLOURS)])
              for i in range(len(delays_ms))]
    fmt = {".gif": "GIF", ".png": "PNG", ".webp": "WEBP"}[path.suffix]
    extra: dict[str, Any] = {"lossless": True} if fmt == "WEBP" else {}
    if loop is not None:
        extra["loop"] = loop
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:],
                   duration=delays_ms, **extra)
    return path


def colour_runs(path: Path) -> tuple[float, list[tuple[int, int]]]:
    """Decode every frame of a video, as a player shows it, into (fps, runs).

    ``runs`` are (index into FRAME_COLOURS of the picture's centre, frames shown in a row).
    """
    info = ffprobe_json(path)
    v = next(s for s in info["streams"] if s["codec_type"] == "video")
    num, den = (int(x) for x in v["avg_frame_rate"].split("/"))
    # Even sides: ffmpeg rounds a 4:2:0 crop down to them (540 // 8 = 67 would read as 66,
    # and every frame boundary after the first would be off).
    w, h = int(v["width"]) // 16 * 2, int(v["height"]) // 16 * 2
    raw = _run(["ffmpeg", "-v", "error", "-i", str(path), "-vsync", "passthrough",
                "-vf", f"crop={w}:{h}", "-f", "rawvideo", "-pix_fmt", "rgb24",
                "-"]).stdout
    size = w * h * 3
    runs: list[tuple[int, int]] = []
    for i in range(len(raw) // size):
        frame = raw[i * size:(i + 1) * size]
        centre = frame[len(frame) // 2 // 3 * 3:len(frame) // 2 // 3 * 3 + 3]
        nearest = min(range(len(FRAME_COLOURS)), key=lambda k: sum(
            (a - b) ** 2 for a, b in zip(centre, FRAME_COLOURS[k], strict=True)))
        if runs and runs[-1][0] == nearest:
            runs[-1] = (nearest, runs[-1][1] + 1)
        else:
            runs.append((nearest, 1))
    return num / den, runs
