"""Captions burned into a video: which cues, and which bands of the frame they stay out of."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from ..captions import Cue, fit_to_video, render
from ..models import Selected
from ..presets import UiZone
from .targets import BurnIn

#: A content item's burned-in track: its language and its cues (overlaps merged, untimed).
BurnSource = tuple[str, tuple[Cue, ...]]


def burn_in_for(sel: Selected, source: BurnSource | None) -> BurnIn | None:
    """The captions one account's video shows burned in, timed to it as delivered; None when
    there are none (or none falls inside a trimmed video)."""
    if source is None or sel.variant.kind != "video":
        return None
    lang, cues = source
    timed = fit_to_video(cues, source_s=sel.info.duration_s or 0.0,
                         delivered_s=sel.delivered_s, loops=sel.loops)
    if not timed:
        return None
    zones = sel.variant.ui_zones
    return BurnIn(sha256=hashlib.sha256(render(timed, "srt")).hexdigest(), lang=lang,
                  bottom=_band(zones, "bottom"), left=_band(zones, "left"),
                  right=_band(zones, "right"), cues=tuple(timed))


def _band(zones: Sequence[UiZone], edge: str) -> float:
    """The deepest UI band along one edge (0 where the app draws nothing there)."""
    return max((z.fraction for z in zones if z.edge == edge), default=0.0)
