"""Edits made at test (and bench) time: pieces of clips joined by cuts or dissolves, with the
frame each new shot starts on, so cut detection and framing can be checked against the truth.

A *jump cut* is two pieces of the same clip framed differently (a crop of it that sits
elsewhere): the room and the colours stay, the subject jumps. A *hard cut* joins different
clips. A *dissolve* cross-fades the last ``dissolve_s`` of a piece into the next; its shot
starts on the dissolve's middle frame.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal


@dataclass(frozen=True)
class Piece:
    """``length_s`` of ``path`` from ``start_s``, cropped to ``zoom`` of its size (the crop's
    left edge at ``crop_x`` of the room left: 0 left, 1 right), scaled to the edit's size."""

    path: Path
    start_s: float
    length_s: float
    zoom: float = 1.0
    crop_x: float = 0.5
    join: Literal["cut", "dissolve"] = "cut"  # how this piece follows the one before
    pan_to_x: float | None = None  # the crop glides to this crop_x over the piece (a pan)


@dataclass(frozen=True)
class Edit:
    path: Path
    fps: int
    frames: int
    cuts: tuple[int, ...]  # the first frame of each new shot (a dissolve's middle frame)
    shots: tuple[tuple[int, int], ...]  # (first, last) frame of each piece, as played


def make_edit(pieces: list[Piece], out: Path, *, size: tuple[int, int] = (640, 360),
              fps: int = 30, dissolve_s: float = 0.4) -> Edit:
    """Render the edit (H.264, yuv420p) and say where its shots start."""
    w, h = size
    args: list[str] = ["ffmpeg", "-v", "error", "-y"]
    lengths: list[int] = []
    chains = []
    for i, p in enumerate(pieces):
        frames = round(p.length_s * fps)
        lengths.append(frames)
        args += ["-ss", f"{p.start_s:.3f}", "-i", str(p.path)]
        x = (f"(iw-ow)*{p.crop_x}" if p.pan_to_x is None else
             f"(iw-ow)*({p.crop_x}+({p.pan_to_x - p.crop_x})*min(t/{p.length_s},1))")
        chains.append(
            f"[{i}:v]fps={fps},setpts=PTS-STARTPTS,crop=iw*{p.zoom}:ih*{p.zoom}:'{x}':(ih-oh)/2,"
            f"scale={w}:{h},setsar=1,format=yuv420p,trim=end_frame={frames},"
            f"setpts=PTS-STARTPTS[p{i}]")
    fade = round(dissolve_s * fps)
    acc, total = "p0", lengths[0]
    cuts: list[int] = []
    shots: list[tuple[int, int]] = []
    first = 0
    for i in range(1, len(pieces)):
        if pieces[i].join == "cut":
            chains.append(f"[{acc}][p{i}]concat=n=2:v=1:a=0[j{i}]")
            shots.append((first, total - 1))
            cuts.append(total)
            first = total
            total += lengths[i]
        else:
            offset = (total - fade) / fps
            chains.append(f"[{acc}][p{i}]xfade=transition=fade:duration={fade / fps:.4f}:"
                          f"offset={offset:.4f}[j{i}]")
            middle = total - fade + fade // 2
            shots.append((first, middle - 1))
            cuts.append(middle)
            first = middle
            total += lengths[i] - fade
        acc = f"j{i}"
    shots.append((first, total - 1))
    args += ["-filter_complex", ";".join(chains), "-map", f"[{acc}]", "-an",
             "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-pix_fmt", "yuv420p",
             "-r", str(fps), str(out)]
    subprocess.run(args, check=True, capture_output=True)
    return Edit(out, fps, total, tuple(cuts), tuple(shots))


def window_lefts(source: Any, delivered: Any, window: tuple[int, int]) -> list[int]:
    """Per delivered frame, where its crop window's left edge sits in the source frame, found
    from the pixels: the delivered frame, scaled back to the window's size, against every
    column offset of the source frame (the best match, at a quarter of the size, refined to
    the pixel). ``source`` and ``delivered`` are (frames, height, width, 3) arrays."""
    import cv2
    import numpy as np

    win_w, win_h = window
    out = []
    for src, dst in zip(source, delivered, strict=False):
        back = cv2.resize(dst, (win_w, win_h), interpolation=cv2.INTER_AREA).astype(np.float32)
        scores = cv2.matchTemplate(src.astype(np.float32), back, cv2.TM_SQDIFF)
        out.append(int(np.argmin(scores[0])))
    return out
