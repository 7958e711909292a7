"""Geometry: crop, resize and place a decoded picture on its padded or blurred canvas."""

from __future__ import annotations

from typing import Any

from ..geometry import Geometry

# Keep at least this many source pixels per output pixel when reducing by an integer factor
# before the final Lanczos pass: Pillow's own ``reducing_gap`` advice, where the two-step
# result cannot be told from a single Lanczos pass.
REDUCING_GAP = 2.0


def apply_geometry(im: Any, g: Geometry, background: str) -> Any:
    """Crop, resize and place on a padded or blurred canvas, as planned.

    ``g`` is in the coordinates of the full-size upright picture; ``im`` may be smaller
    (decoded in draft mode or reduced), so the crop is scaled to it.
    """
    from PIL import Image, ImageFilter

    sx = im.size[0] / g.source_width
    sy = im.size[1] / g.source_height
    box = (g.crop_x * sx, g.crop_y * sy, (g.crop_x + g.crop_width) * sx,
           (g.crop_y + g.crop_height) * sy)
    cropping = any(abs(a - b) > 1e-6 for a, b in zip(box, (0, 0, *im.size), strict=True))
    if (g.content_width, g.content_height) != im.size or cropping:
        im = im.resize((g.content_width, g.content_height), Image.Resampling.LANCZOS,
                       box=box, reducing_gap=REDUCING_GAP)
    if (g.width, g.height) == im.size:
        return im
    if g.fit == "blur":
        canvas = _cover_resize(im, (g.width, g.height))
        radius = max(8, min(g.width, g.height) // 30)
        canvas = canvas.filter(ImageFilter.GaussianBlur(radius))
    else:
        canvas = Image.new(im.mode, (g.width, g.height), background)
    canvas.paste(im, ((g.width - im.size[0]) // 2, (g.height - im.size[1]) // 2))
    return canvas


def resize(im: Any, size: tuple[int, int]) -> Any:
    """Lanczos to ``size``, box-reducing first where the scale allows (REDUCING_GAP)."""
    from PIL import Image

    return im.resize(size, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)


def _cover_resize(im: Any, size: tuple[int, int]) -> Any:
    """Scale to cover ``size`` and centre-crop: the background of a blurred fill.

    Only the part of ``im`` that stays in view is resampled, straight to a quarter of the
    canvas (it is blurred afterwards, so detail would be wasted), then brought up to the canvas:
    nothing is ever larger than the output. Scaling the whole picture to cover first made an
    8192x2 strip 15 million pixels wide on its way to a 1080x1920 story (20 GB).
    """
    from PIL import Image

    w, h = size
    scale = max(w / im.size[0], h / im.size[1])
    seen_w, seen_h = w / scale, h / scale  # the window of ``im`` the canvas shows
    left, top = (im.size[0] - seen_w) / 2, (im.size[1] - seen_h) / 2
    quarter = (max(1, round(w / 4)), max(1, round(h / 4)))
    small = im.resize(quarter, Image.Resampling.BILINEAR,
                      box=(left, top, left + seen_w, top + seen_h))
    return small.resize((w, h), Image.Resampling.BILINEAR)
