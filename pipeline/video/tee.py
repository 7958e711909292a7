"""An encode written twice: the delivered MP4, and a copy for the subject check's tap.

The copy is the encoder's own packets through ffmpeg's tee muxer (:mod:`pipeline.vision.tap`
decodes it while the encode runs). Argv text only, like :mod:`.graph`; nothing runs here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

# The tap's copy: the same MP4 muxer fragmented (no moov at the end), every frame its own
# fragment, flushed, so each keyframe reaches the tap as it is encoded; dropped, not
# fatal, when its reader goes away.
_TAP_MOVFLAGS = "+frag_every_frame+empty_moov+default_base_moof+negative_cts_offsets"
# Characters that mean something in a tee muxer's output list: a path holding one is not
# tapped rather than escaped.
_TEE_SPECIAL = frozenset("[]|:\\'\"=;,")
# How an ffmpeg built without the tee muxer refuses it (an encode then runs untapped).
TEE_REFUSED = "'tee'"


class EncodeTap(Protocol):
    """What an encode needs of a tap on it (:class:`pipeline.vision.tap.SubjectTap`)."""

    def writer(self) -> int | None:
        """The descriptor the encode's copy goes to (the encode closes it), or None."""

    def abandon(self, why: str) -> None:
        """The delivered file is not the tapped encode."""


def tappable(out: Path) -> bool:
    """Whether an encode into ``out`` can also write the tap's copy."""
    return not _TEE_SPECIAL & set(str(out))


def tee_output(out: Path, tap_fd: int | None, mp4_opts: dict[str, Any]
               ) -> tuple[str, dict[str, Any]]:
    """The output name and options of an encode into ``out`` (``mp4_opts``: its muxer's),
    with the tap's copy to the inherited descriptor ``tap_fd`` when there is one.

    With a tap the encoder puts its parameter sets in the header (``global_header``, as it
    does for an MP4 alone), so the delivered file is byte for byte the one written without
    a tap (tested).

    Raises:
        ValueError: ``out`` cannot be named in a tee muxer's output list (:func:`tappable`).
    """
    if tap_fd is None:
        return str(out), mp4_opts
    if not tappable(out):
        raise ValueError(f"{out} cannot be named in a tee muxer's output list")
    opts = dict(mp4_opts)
    muxer = {k: opts.pop(k) for k in ("f", "movflags", "use_editlist")}
    main = f"[f={muxer['f']}:movflags={muxer['movflags']}:use_editlist={muxer['use_editlist']}]"
    tap = (f"[f=mp4:movflags={_TAP_MOVFLAGS}:use_editlist=0:flush_packets=1:onfail=ignore]"
           f"pipe:{tap_fd}")
    return f"{main}{out}|{tap}", {**opts, "f": "tee", "flags:v": "+global_header"}
