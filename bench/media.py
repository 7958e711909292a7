"""Synthetic inputs for the bench, made with ffmpeg lavfi and Pillow: nothing is downloaded.

Every generator writes into a directory the bench owns under /tmp and returns the path; an
input that already exists (same parameters, same run) is reused.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .measure import run_process


def ffmpeg() -> str:
    """The ffmpeg binary the pipeline uses too (``FFMPEG_PATH`` or PATH)."""
    from pipeline.ffmpeg import ffmpeg_exe

    return ffmpeg_exe()


def _ff(*args: str) -> None:
    run_process([ffmpeg(), "-hide_banner", "-nostdin", "-y", "-v", "error", *args])


def clip(path: Path, *, width: int, height: int, seconds: float, fps: int = 30,
         gop_s: float = 2.0, audio: bool = True, preset: str = "veryfast", crf: int = 20,
         container: str = "mp4", pix_fmt: str = "yuv420p") -> Path:
    """A testsrc2 + sine clip: H.264 High yuv420p CFR, closed GOP, AAC-LC 48 kHz stereo.

    With ``container="mp4"`` it is the shape every platform accepts as it is (moov first, no
    edit list, start at 0); ``"mov"`` puts the same streams in QuickTime. ``pix_fmt="yuv422p"``
    makes the 4:2:2 picture of a pro camera or a screen recorder, which no platform takes.
    """
    if path.exists():
        return path
    args = ["-f", "lavfi", "-i", f"testsrc2=s={width}x{height}:r={fps}:d={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=f=440:r=48000:d={seconds}", "-ac", "2",
                 "-c:a", "aac", "-b:a", "128k"]
    gop = max(1, int(fps * gop_s))
    profile = "high" if pix_fmt == "yuv420p" else "high422"
    args += ["-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-profile:v", profile,
             "-pix_fmt", pix_fmt, "-g", str(gop), "-keyint_min", str(gop),
             "-x264-params", "open-gop=0:scenecut=0", "-color_primaries", "bt709",
             "-color_trc", "bt709", "-colorspace", "bt709", "-color_range", "tv",
             "-map_metadata", "-1", "-shortest", "-use_editlist", "0"]
    if container == "mp4":
        args += ["-movflags", "+faststart", "-f", "mp4"]
    else:
        args += ["-f", "mov"]
    tmp = path.with_name(path.name + ".part")
    _ff(*args, str(tmp))
    tmp.rename(path)
    return path


def remux_to_mov(src: Path, path: Path) -> Path:
    """The same streams in a QuickTime container (what an iPhone or a camera hands over)."""
    if not path.exists():
        tmp = path.with_name(path.name + ".part")
        _ff("-i", str(src), "-map", "0", "-c", "copy", "-f", "mov", str(tmp))
        tmp.rename(path)
    return path


def long_clip(path: Path, *, width: int, height: int, seconds: int, segment_s: int = 10,
              fps: int = 30) -> Path:
    """A long clip made by stream-copying one short segment over and over (fast to make).

    The segment has a 2 s closed GOP, like every video the pipeline delivers.
    """
    if path.exists():
        return path
    segment_s = min(segment_s, seconds)
    seg = clip(path.with_name(path.stem + f"-seg{segment_s}.mp4"), width=width, height=height,
               seconds=segment_s, fps=fps, preset="ultrafast", crf=28)
    listing = path.with_name(path.stem + "-list.txt")
    copies = max(1, round(seconds / segment_s))
    listing.write_text("".join(f"file '{seg}'\n" for _ in range(copies)))
    tmp = path.with_name(path.name + ".part")
    _ff("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy",
        "-movflags", "+faststart", "-use_editlist", "0", "-f", "mp4", str(tmp))
    tmp.rename(path)
    listing.unlink()
    return path


def big_clip(path: Path, *, size_bytes: int, width: int = 1920, height: int = 1080) -> Path:
    """A video of at least ``size_bytes``: lossless H.264 of a noisy picture (~3 MB a frame at
    1080p), made as a 2 s segment stream-copied until the size is reached. It is never
    conformant (High 4:4:4 Predictive, huge bitrate), so the pipeline must transcode it."""
    if path.exists() and path.stat().st_size >= size_bytes:
        return path
    seg = path.with_name(path.stem + "-seg.mp4")
    if not seg.exists():
        _ff("-f", "lavfi", "-i", f"testsrc2=s={width}x{height}:r=30:d=2,noise=alls=40:allf=t",
            "-f", "lavfi", "-i", "sine=f=440:r=48000:d=2", "-ac", "2", "-c:a", "aac",
            "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p",
            "-g", "30", "-shortest", "-f", "mp4", str(seg))
    copies = max(2, -(-size_bytes // seg.stat().st_size))  # >= 4 s: every platform's minimum
    listing = path.with_name(path.stem + "-list.txt")
    listing.write_text("".join(f"file '{seg}'\n" for _ in range(copies)))
    tmp = path.with_name(path.name + ".part")
    _ff("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy",
        "-movflags", "+faststart", "-f", "mp4", str(tmp))
    tmp.rename(path)
    listing.unlink()
    seg.unlink()
    return path


def camera_photo(path: Path, *, width: int, height: int, orientation: int = 6,
                 quality: int = 92) -> Path:
    """A camera-like JPEG: stored ``width`` x ``height`` (landscape sensor), EXIF orientation
    ``orientation`` (6: shot in portrait, to be rotated 90 degrees), camera EXIF tags, sharp
    detail and sensor-like noise softened as optics and demosaicing soften it (pure per-pixel
    noise would be harder than any real photo), at a camera's file size."""
    if path.exists():
        return path
    from PIL import Image

    png = path.with_suffix(".png")
    picture = f"testsrc2=s={width}x{height}:d=1,noise=alls=25:allf=t,gblur=sigma=0.6"
    _ff("-f", "lavfi", "-i", picture, "-frames:v", "1", "-f", "image2", "-c:v", "png", str(png))
    with Image.open(png) as im:
        rgb = im.convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = orientation       # Orientation
    exif[0x010F] = "BenchCam"        # Make
    exif[0x0110] = "Synthetic 24MP"  # Model
    tmp = path.with_name(path.name + ".part")
    rgb.save(tmp, "JPEG", quality=quality, exif=exif.tobytes(), subsampling="4:2:0")
    tmp.rename(path)
    png.unlink()
    return path


def small_photos(folder: Path, count: int, *, width: int = 2400, height: int = 1800
                 ) -> list[Path]:
    """``count`` distinct 4 MP phone-like JPEGs shot in portrait (EXIF orientation 6), so every
    platform has real work to do (rotate, crop, resize, re-encode); distinct bytes, so no output
    is shared between jobs or reused."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    base = Image.radial_gradient("L").resize((width, height)).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    paths = []
    for i in range(count):
        p = folder / f"p{i:04d}.jpg"
        if not p.exists():
            im = base.copy()
            draw = ImageDraw.Draw(im)
            for k in range(12):
                x = (i * 37 + k * 191) % (width - 200)
                y = (i * 53 + k * 149) % (height - 200)
                draw.ellipse((x, y, x + 180, y + 180), fill=((i * 7 + k * 40) % 256, 90, 160))
            im.save(p, "JPEG", quality=90, exif=exif.tobytes())
        paths.append(p)
    return paths


def remove(path: Path) -> None:
    """Delete a generated file or folder, ignoring what is already gone."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
