"""Animations: a GIF re-encoded frame by frame into the planned geometry."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import CannotFit, TooLarge
from ..plan import ImageTarget
from ..probe import open_image
from ..rules import ANIMATION_PIXEL_BUDGET
from .canvas import apply_geometry
from .encode import MIME, ImageResult


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
    loop = im.info.get("loop")

    def conformed() -> Iterator[Any]:
        # One frame at a time: the GIF writer keeps what it has taken as 8-bit palette
        # frames (a byte a pixel), where a list of RGBA frames held 4 (a 300-million-pixel
        # animation took 1.8 GB). Each frame carries its own delay to the writer.
        for frame in ImageSequence.Iterator(im):
            rgba = frame.convert("RGBA")
            rgba.info.clear()
            conformed_frame = apply_geometry(rgba, g, target.background)
            conformed_frame.info["duration"] = int(frame.info.get("duration", 0) or 0)
            yield conformed_frame

    frames = conformed()
    first = next(frames)
    options: dict[str, Any] = {"save_all": True, "append_images": frames, "disposal": 2,
                               "optimize": False}
    if loop is not None:
        options["loop"] = loop
    buf = io.BytesIO()
    first.save(buf, "GIF", **options)
    data = buf.getvalue()
    if len(data) > target.max_bytes:
        raise CannotFit(f"the animation re-encoded is {len(data)} bytes, over the "
                        f"{target.max_bytes}-byte cap")
    out.write_bytes(data)
    return ImageResult(out, MIME["gif"], g.width, g.height, (), ())

