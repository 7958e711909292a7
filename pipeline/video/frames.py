"""An animation ffmpeg cannot read (or must loop) as frames on disk, streamed one at a time.

ffmpeg 5.1's WebP decoder reads no animation, and a looped animation must repeat each frame
with its own delay (see :func:`pipeline.video.render._decodable`). Pillow composites every
frame; each is written as it comes to a lossless one-frame APNG in a folder of the job's work
folder, and an ``ffconcat`` list names them in order, each with its delay. Memory holds one
frame whatever the frame or loop count; disk holds each frame once (loops repeat list lines).

Why one-frame APNGs and not plain PNGs: the concat demuxer gives its stream the time base of
the files it reads; a plain PNG is read by ``png_pipe`` at 1/25 s, which would round every
delay to 40 ms, while the APNG demuxer counts in 1/100000 s. The list is read in the concat
demuxer's safe mode (relative names of portable characters, in the list's own folder), with
the file protocol only (:func:`pipeline.ffmpeg.locked_input`).
"""

from __future__ import annotations

import io
import shutil
import struct
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import CorruptMedia
from ..probe import PIL_FORMATS, first_animation_frame, frame_delays_ms

# The format name :func:`write_frames` returns (ffmpeg.DEMUXERS forces the concat demuxer).
FRAMES_FORMAT = "ffconcat"
LIST_NAME = "frames.ffconcat"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IHDR_END = len(_PNG_SIGNATURE) + 4 + 4 + 13 + 4  # length, type, body, CRC


def write_frames(src: Path, src_format: str, folder: Path, *, loops: int,
                 check: Callable[[], None]) -> Path:
    """Write the animation's composited frames and the list that plays them ``loops`` times.

    Each frame keeps its own delay as the probe measured it (browsers' rule for delays of
    10 ms or less), in whole milliseconds, the last one included.

    Args:
        src: the animation (GIF, APNG, WebP).
        src_format: its sniffed format.
        folder: the job's work folder; the frames go into a new folder of their own in it
            (``<stem>-frames-*``: two renders of one source never share one).
        loops: how many times the list plays the frames (1 or more).
        check: called before each frame; raises to stop (the job's deadline).

    Returns:
        The list file (format :data:`FRAMES_FORMAT`).

    Raises:
        CorruptMedia: Pillow cannot read the animation (the frames folder is removed).
        Whatever ``check`` raises (the frames folder is removed).
    """
    from PIL import Image

    out = Path(tempfile.mkdtemp(prefix=src.stem + "-frames-", dir=folder))
    try:
        with Image.open(src, formats=PIL_FORMATS[src_format]) as im:
            durations = [round(d) for d in frame_delays_ms(im, src_format, src)]
            names = _write_each(im, src_format, out, durations, check)
        if not names:
            raise CorruptMedia("the animation has no frames")
        (out / LIST_NAME).write_text(_playlist(names, durations, loops), encoding="ascii")
    except (OSError, ValueError, EOFError) as err:
        shutil.rmtree(out, ignore_errors=True)
        raise CorruptMedia(f"cannot read the animation: {err}") from err
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return out / LIST_NAME


def discard_frames(readable: Path) -> None:
    """Remove what :func:`write_frames` wrote, given the list it returned."""
    shutil.rmtree(readable.parent, ignore_errors=True)


def _write_each(im: Any, src_format: str, out: Path, durations: list[int],
                check: Callable[[], None]) -> list[str]:
    """Write frame after frame (only the one being written is in memory); their names."""
    names: list[str] = []
    for delay_ms, frame in zip(durations, _frames(im, src_format), strict=False):
        check()
        name = f"f{len(names):06d}.png"
        with (out / name).open("wb") as fh:
            _write_one_frame_apng(frame.convert("RGBA"), delay_ms, fh)
        names.append(name)
    return names


def _frames(im: Any, src_format: str) -> Iterator[Any]:
    """The animation's frames as Pillow composites them, from its first animation frame."""
    from PIL import ImageSequence

    first = first_animation_frame(im, src_format)
    for index, frame in enumerate(ImageSequence.Iterator(im)):
        if index >= first:
            yield frame


def _playlist(names: list[str], durations: list[int], loops: int) -> str:
    """The ffconcat list: every frame with its delay (in seconds, exact to the ms), looped.

    ``duration`` sets where the next entry starts, so each frame lasts its own delay, the
    last one's included (the list's total is the animation's length times ``loops``).
    """
    entries = "".join(f"file {name}\nduration {delay_ms / 1000:.3f}\n"
                      for name, delay_ms in zip(names, durations, strict=False))
    return "ffconcat version 1.0\n" + entries * loops


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _write_one_frame_apng(frame: Any, delay_ms: int, fh: io.BufferedWriter) -> None:
    """A lossless PNG of ``frame`` made a one-frame APNG (acTL and fcTL after IHDR), so
    ffmpeg reads it with the APNG demuxer's fine time base (see the module docstring)."""
    buf = io.BytesIO()
    frame.save(buf, format="PNG", compress_level=1)
    png = buf.getbuffer()
    width, height = frame.size
    actl = _chunk(b"acTL", struct.pack(">II", 1, 0))
    # sequence 0, the whole canvas, delay delay_ms/1000 s, no disposal, source blend.
    fctl = _chunk(b"fcTL", struct.pack(">IIIIIHHBB", 0, width, height, 0, 0,
                                       min(delay_ms, 0xFFFF), 1000, 0, 0))
    fh.write(png[:_IHDR_END])
    fh.write(actl + fctl)
    fh.write(png[_IHDR_END:])
    png.release()
