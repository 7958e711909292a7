"""What the page and the sheet share: the pictures made for a stored file, a variant's UI zones."""

from __future__ import annotations

from dataclasses import dataclass

from ..presets import PresetRegistry, UiZone

NOT_AVAILABLE = "not available"  # an output outside the root, absent or unreadable: one text

@dataclass(frozen=True, slots=True)
class Picture:
    """The pictures made for one stored file, as names relative to the report folder."""

    still: str | None
    strip: tuple[str, ...] = ()
    error: str | None = None
    video: str | None = None  # where the page's player loads the video from (file: or https:)
    note: str | None = None  # why a video has no player (a codec browsers don't play)
    path: str | None = None  # smart framing's path drawn shot by shot (see .path)
    path_text: tuple[str, ...] = ()  # what the drawing shows, in words


def zones_for(variant_label: str, presets: PresetRegistry) -> tuple[UiZone, ...]:
    """The UI zones of an account's variant (``"tiktok-video"``), empty when it has none.

    A thread of several variants (``a+b``) takes the first that has zones.
    """
    for variant_id in variant_label.split("+"):
        found = presets.find_variant(variant_id)
        if found is not None and found[1].ui_zones:
            return found[1].ui_zones
    return ()
