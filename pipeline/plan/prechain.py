"""What the encodes of one shared decode do once, before the split (pure): the HDR tone map.

A tone map (zscale to linear light, Mobius, zscale back) costs more than the scale it follows;
done after each output's scale, an HDR source going to three outputs is tone-mapped three
times. Done once before the split, it runs at the size of the largest member: the source is
first scaled to the smallest size from which every member's crop still has at least its own
pixels, and each member's geometry is restated in that picture's pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..geometry import Geometry
from .targets import VideoTarget


@dataclass(frozen=True, slots=True)
class ToneMapOnce:
    """One tone map for a shared decode: the picture size it runs at, and each member's
    target with its geometry in that picture and its own tone map taken out."""

    width: int
    height: int
    members: tuple[VideoTarget, ...]


def tone_map_once(targets: Sequence[VideoTarget]) -> ToneMapOnce | None:
    """The shared tone map of these encodes of one decode, or None when they cannot share one.

    They share it when every one tone-maps the same transfer, primaries and matrix, and none
    follows a smart-framing path (its crop moves in source pixels).

    Raises:
        Nothing.
    """
    colours = {(t.tonemap, t.in_transfer, t.in_primaries, t.in_matrix) for t in targets}
    if (len(targets) < 2 or len(colours) != 1 or not targets[0].tonemap
            or not targets[0].in_transfer or any(t.reframe for t in targets)):
        return None
    src_w, src_h = targets[0].geometry.source_width, targets[0].geometry.source_height
    factor = min(1.0, max(_scale_needed(t.geometry) for t in targets))
    width = min(src_w, 2 * math.ceil(src_w * factor / 2))
    height = min(src_h, 2 * math.ceil(src_h * factor / 2))
    members = tuple(replace(t, geometry=rescaled(t.geometry, width, height), tonemap=False,
                            in_transfer=None, in_primaries="bt709", in_matrix="bt709",
                            full_to_limited=False) for t in targets)
    return ToneMapOnce(width, height, members)


def _scale_needed(g: Geometry) -> float:
    """How much of the source's size this output's picture needs (1: all of it)."""
    return max(g.content_width / max(1, g.crop_width), g.content_height / max(1, g.crop_height))


def rescaled(g: Geometry, width: int, height: int) -> Geometry:
    """The same crop, canvas and picture, with the source scaled to ``width`` x ``height``.

    Raises:
        Nothing.
    """
    sx, sy = width / g.source_width, height / g.source_height
    x, y = round(g.crop_x * sx), round(g.crop_y * sy)
    return replace(g, crop_x=x, crop_y=y, crop_width=min(width - x, round(g.crop_width * sx)),
                   crop_height=min(height - y, round(g.crop_height * sy)),
                   source_width=width, source_height=height)
