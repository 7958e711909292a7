"""Smart framing's path drawn for the preview: where the delivered window sat, shot by shot.

The manifest's ``reframe`` lists each shot's window size and keyframes in displayed source
pixels. The report may read only objects under the destination root (:mod:`.scope`), and the
source is normally not there, so the path is drawn as a diagram: per shot, a grey area as far
as the window reaches in the source (the source may be wider: the manifest does not say), the
window's box at the shot's middle filled with the delivered frame of that moment (the window's
content, exactly), its keyframes' boxes and the line between them. Nothing of the source is
read or guessed.

The shots come from the manifest, written by whoever calls the API: only finite numbers in a
sane range are drawn, at most :data:`MAX_PANELS` shots (spread over the clip) and
:data:`MAX_KEYS` keys of each, so the picture's size and the decode count are bounded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from PIL import Image, ImageDraw, ImageFont

PATH_RGB = (0, 200, 255)  # cyan: the window; no zone, badge or text uses it
KEY_RGB = (0, 110, 140)  # a keyframe's box: a darker cyan, behind the window
REACH_RGB = (70, 70, 70)  # the source as far as the window reaches
PANEL_PX = 150  # the longer side of a shot's diagram
LABEL_PX = 30  # two lines of text under it
GAP_PX = 6
MAX_PANELS = 8
MAX_KEYS = 64
MAX_COORD = 100_000  # no display is wider: larger numbers are not a real path


@dataclass(frozen=True, slots=True)
class Shot:
    """One shot of the path, checked: times in seconds, the window in source pixels."""

    start_s: float
    end_s: float
    camera: str
    width: int
    height: int
    keys: tuple[tuple[float, int, int], ...]  # (t_s, x, y) of the window's top-left corner

    def at(self, t_s: float) -> tuple[float, float]:
        """The window's top-left corner at ``t_s`` (straight lines between keys)."""
        keys = self.keys
        if t_s <= keys[0][0]:
            return float(keys[0][1]), float(keys[0][2])
        for (t0, x0, y0), (t1, x1, y1) in pairwise(keys):
            if t_s <= t1:
                share = (t_s - t0) / (t1 - t0) if t1 > t0 else 1.0
                return x0 + (x1 - x0) * share, y0 + (y1 - y0) * share
        return float(keys[-1][1]), float(keys[-1][2])

    @property
    def middle_s(self) -> float:
        return (self.start_s + self.end_s) / 2

    def describe(self, index: int) -> str:
        """``shot 1: 0.00-2.00 s, still, window 608x1080 at (184, 0)`` (or the pan's ends)."""
        first, last = self.keys[0], self.keys[-1]
        where = (f"at ({first[1]}, {first[2]})" if self.camera == "still" or len(self.keys) == 1
                 else f"from ({first[1]}, {first[2]}) to ({last[1]}, {last[2]}) "
                      f"in {len(self.keys)} keys")
        return (f"shot {index + 1}: {self.start_s:.2f}-{self.end_s:.2f} s, {self.camera}, "
                f"window {self.width}x{self.height} {where}")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and 0 <= value <= MAX_COORD else None


def _shot(data: Any) -> Shot | None:
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        return None
    start, end = _number(data.get("start_s")), _number(data.get("end_s"))
    width, height = _number(data.get("window_width")), _number(data.get("window_height"))
    keys = []
    for key in data["keys"][:MAX_KEYS]:
        t, x, y = (_number(key.get(n)) for n in ("t_s", "x", "y")) if isinstance(
            key, dict) else (None, None, None)
        if t is None or x is None or y is None:
            return None
        keys.append((t, round(x), round(y)))
    if start is None or end is None or end < start or not width or not height or not keys:
        return None
    camera = data.get("camera") if data.get("camera") in ("still", "pan") else "?"
    return Shot(start, end, str(camera), round(width), round(height),
                tuple(sorted(keys)))


def read_path(reframe: Any) -> tuple[tuple[Shot, ...], int] | None:
    """The shots to draw (at most :data:`MAX_PANELS`, spread over the clip) and how many the
    path has; ``None`` when it is not a path of the published shape with sane numbers."""
    if not isinstance(reframe, list) or not reframe:
        return None
    picked = (reframe if len(reframe) <= MAX_PANELS
              else [reframe[round(i * (len(reframe) - 1) / (MAX_PANELS - 1))]
                    for i in range(MAX_PANELS)])
    shots = [_shot(s) for s in picked]
    if any(s is None for s in shots):
        return None
    return tuple(s for s in shots if s is not None), len(reframe)


def _reach(shots: Sequence[Shot]) -> tuple[int, int]:
    """How far the window reaches in the source, over every drawn shot."""
    return (max(k[1] + s.width for s in shots for k in s.keys),
            max(k[2] + s.height for s in shots for k in s.keys))


def draw_path(shots: Sequence[Shot], frame_at: Callable[[float], Image.Image | None]
              ) -> Image.Image:
    """The diagram: one panel per shot, side by side, each labelled with its times and camera.

    ``frame_at(t_s)`` gives the delivered frame at a time (``None`` when there is none).
    """
    reach_w, reach_h = _reach(shots)
    scale = PANEL_PX / max(reach_w, reach_h)
    pw, ph = max(1, round(reach_w * scale)), max(1, round(reach_h * scale))
    width = max(pw, 110)
    image = Image.new("RGB", (len(shots) * (width + GAP_PX) - GAP_PX, ph + LABEL_PX),
                      (255, 255, 255))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=11)
    for i, shot in enumerate(shots):
        left = i * (width + GAP_PX)
        draw.rectangle((left, 0, left + pw - 1, ph - 1), fill=REACH_RGB)
        box = _scaled(shot, scale, left)
        for t, _, _ in shot.keys:
            draw.rectangle(box(t), outline=KEY_RGB, width=1)
        centres = [_centre(box(t)) for t, _, _ in shot.keys]
        if len(centres) > 1:
            draw.line(centres, fill=KEY_RGB, width=1)
        window = box(shot.middle_s)
        frame = frame_at(shot.middle_s)
        if frame is not None:
            size = (max(1, window[2] - window[0] + 1), max(1, window[3] - window[1] + 1))
            image.paste(frame.convert("RGB").resize(size, Image.Resampling.LANCZOS),
                        window[:2])
        draw.rectangle(window, outline=PATH_RGB, width=2)
        draw.text((left, ph + 2), f"shot {i + 1}  {shot.start_s:.1f}-{shot.end_s:.1f} s",
                  fill=(20, 20, 20), font=font)
        draw.text((left, ph + 15), shot.camera, fill=(20, 20, 20), font=font)
    return image


def _scaled(shot: Shot, scale: float, left: int) -> Callable[[float], tuple[int, int, int, int]]:
    """The window's box at a time, in the panel's pixels."""
    def box(t_s: float) -> tuple[int, int, int, int]:
        x, y = shot.at(t_s)
        x0, y0 = left + round(x * scale), round(y * scale)
        return (x0, y0, x0 + max(1, round(shot.width * scale)) - 1,
                y0 + max(1, round(shot.height * scale)) - 1)
    return box


def _centre(box: tuple[int, int, int, int]) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
