"""Smart framing's path as the manifest records it: per shot, the window's size and keyframes.

A rendition's ``meta.json`` keeps the shots as plain objects; these records read them back
(refusing any other shape) and write them into the manifest (``reframe``, typed in
``schemas/manifest.json`` as ``ReframeEntry`` and ``ReframeKey``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class ReframeKey:
    """A keyframe of the crop window: its top-left corner at ``t_s``, in displayed source
    pixels (the window moves in a straight line from one key to the next)."""

    t_s: float
    x: int
    y: int


@dataclass(frozen=True, slots=True)
class ReframeEntry:
    """One shot of a smart-framed video: its window's size and keyframes (one when still)."""

    start_s: float
    end_s: float
    camera: Literal["still", "pan"]
    window_width: int
    window_height: int
    keys: tuple[ReframeKey, ...]

    def to_dict(self) -> dict[str, Any]:
        """The manifest's shot object."""
        return {"start_s": self.start_s, "end_s": self.end_s, "camera": self.camera,
                "window_width": self.window_width, "window_height": self.window_height,
                "keys": [{"t_s": k.t_s, "x": k.x, "y": k.y} for k in self.keys]}

    @classmethod
    def from_dict(cls, data: Any) -> ReframeEntry:
        """A shot as a rendition's ``meta.json`` keeps it.

        Raises:
            ValueError: not a shot of this shape (e.g. written by an older version).
        """
        try:
            keys = tuple(ReframeKey(float(k["t_s"]), _int(k["x"]), _int(k["y"]))
                         for k in data["keys"])
            camera = data["camera"]
            if camera not in ("still", "pan") or not keys:
                raise ValueError(f"camera {camera!r} with {len(keys)} keys")
            return cls(float(data["start_s"]), float(data["end_s"]), camera,
                       _int(data["window_width"]), _int(data["window_height"]), keys)
        except (KeyError, TypeError) as err:
            raise ValueError(f"not a reframe shot: {err}") from err


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{value!r} is not an integer")
    return value


def reframe_entries(shots: Any) -> tuple[ReframeEntry, ...] | None:
    """A rendition's shots as the manifest lists them; None when it has none, or when its
    ``meta.json`` was written by a version that kept only each shot's first and last
    position (the output is still delivered; its path is just not listed)."""
    if not shots:
        return None
    try:
        return tuple(ReframeEntry.from_dict(s) for s in shots)
    except ValueError:
        return None
