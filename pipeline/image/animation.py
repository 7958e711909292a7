"""Animations: a GIF re-encoded frame by frame into the planned geometry."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ..errors import CannotFit, TooLarge
from ..plan import ANIMATION_PIXEL_BUDGET, ImageTarget
from ..probe import open_image
from .encode import MIME, ImageResult
from .geometry import apply_geometry


def render_animated(src: Path, fmt: str, target: ImageTarget, out: Path) -> ImageResult:
    """Re-encode an animation (GIF) frame by frame into the planned geometry.

    Raises:
        TooLarge: the animation is over the pixel budget.
        CannotFit: re-encoded, it is over the byte cap.
    """
    from PIL import ImageSequence

    g = target.geometry
    im = open_image(src, fmt)
    frames_total = int(getattr(im, "n_frames", 1))
    if g.width * g.height * frames_total > ANIMATION_PIXEL_BUDGET:
        raise TooLarge(f"the animation is {g.width}x{g.height} x {frames_total} frames, over the "
                       f"{ANIMATION_PIXEL_BUDGET:,} pixel budget")
    frames = []
    durations = []
    for frame in ImageSequence.Iterator(im):
        rgba = frame.convert("RGBA")
        rgba.info.clear()
        frames.append(apply_geometry(rgba, g, target.background))
        durations.append(int(frame.info.get("duration", 0) or 0))
    buf = io.BytesIO()
    first, rest = frames[0], frames[1:]
    options: dict[str, Any] = {"save_all": True, "append_images": rest, "duration": durations,
                               "disposal": 2, "optimize": False}
    if "loop" in im.info:
        options["loop"] = im.info["loop"]
    first.save(buf, "GIF", **options)
    data = buf.getvalue()
    if len(data) > target.max_bytes:
        raise CannotFit(f"the animation re-encoded is {len(data)} bytes, over the "
                        f"{target.max_bytes}-byte cap")
    out.write_bytes(data)
    return ImageResult(out, MIME["gif"], g.width, g.height, (), ())

