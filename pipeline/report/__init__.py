"""The preview sheet: one self-contained HTML page (and optionally a PNG) per manifest.

``make_report`` reads a manifest (a local path or an ``s3://`` URI), fetches every output it
names through the storage layer, makes small pictures of them (a still for an image, a poster
and a filmstrip for a video, the cover) and writes ``DIR/index.html`` with the pictures next
to it. Vertical surfaces get their platform's UI zones (preset data) drawn over the picture.
``html`` renders the page, ``sheet`` the PNG contact sheet.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from .. import probe
from ..deadline import Deadline
from ..errors import ConfigError, Interrupted, PipelineError, StorageError
from ..manifest import Manifest
from ..manifestfile import check_manifest, read_manifest, shown
from ..models import MediaInfo
from ..presets import PresetRegistry
from ..vision import sampling
from . import html, path, sheet
from .folder import fresh_folder
from .load import load_manifest
from .pictures import NOT_AVAILABLE, Picture
from .scope import Root, open_root, root_of_manifest

__all__ = ["Report", "make_report", "read_manifest"]

log = logging.getLogger(__name__)

POSTER_SIDE_PX = 480  # longer side of a poster or still: crisp at the page's 320 px boxes
STRIP_SIDE_PX = 240  # longer side of a filmstrip frame: crisp at 1/5 of poster + player
STRIP_FRAMES = 5
FRAME_TIMEOUT_S = 60.0  # one probe or frame sampling
# A manifest names as many outputs as it likes: the report pictures at most this many, in
# at most this long; the rest are shown without a picture, saying why.
MAX_PICTURED = 200
REPORT_DEADLINE_S = 600.0


@dataclass(frozen=True, slots=True)
class Report:
    """What was written: the page, the PNG sheet when asked for, and the folder."""

    out_dir: Path
    index_html: Path
    sheet_png: Path | None


def _picture(uri: str, kind: str, root: Root, pics: Path, tmp: Path, timeout_s: float,
             reframe: Any = None) -> Picture:
    """Fetch one stored file (only under ``root``) and write its pictures into ``pics``
    (with a video's ``reframe``, the path of its window too)."""
    name = hashlib.sha256(uri.encode()).hexdigest()[:20]
    try:
        local = root.fetch(uri, tmp / name)
    except (StorageError, ConfigError) as err:
        # Outside the root, absent, or unreadable: the page says the same for each, so it
        # tells nothing about which files exist. The operator's log says why.
        log.warning("no picture for %s: %s", shown(uri), shown(err.message))
        return Picture(still=None, error=NOT_AVAILABLE)
    try:
        if kind == "video":
            info = probe.probe(local, timeout_s=timeout_s)
            shots = sampling.sample_video(local, info, count=STRIP_FRAMES,
                                        max_side=POSTER_SIDE_PX, timeout_s=timeout_s)
            poster = subject_frame(shots)
            strip = []
            for i, shot in enumerate(shots):
                small = shot.copy()
                small.thumbnail((STRIP_SIDE_PX, STRIP_SIDE_PX), Image.Resampling.LANCZOS)
                small.save(pics / f"{name}-{i}.jpg", quality=80)
                strip.append(f"pictures/{name}-{i}.jpg")
        else:
            info = None
            poster = sampling.still(local, max_side=POSTER_SIDE_PX)
            strip = []
        poster.save(pics / f"{name}.jpg", quality=85)
        note = unplayable(info) if kind == "video" else None
        drawn, said = (_path_picture(local, info, reframe, pics / f"{name}-path.png",
                                     timeout_s) if info is not None else (False, ()))
        return Picture(still=f"pictures/{name}.jpg", strip=tuple(strip), note=note,
                       video=root.player_url(uri) if kind == "video" and not note else None,
                       path=f"pictures/{name}-path.png" if drawn else None, path_text=said)
    except Interrupted:
        raise
    except PipelineError as err:
        # One unreadable output must not hide the others: the page says what went wrong.
        log.warning("no picture for %s: %s", shown(uri), shown(err.message))
        return Picture(still=None, error=err.code)  # the message may name server paths


def _path_picture(local: Path, info: MediaInfo, reframe: Any, out: Path, timeout_s: float
                  ) -> tuple[bool, tuple[str, ...]]:
    """Draw a smart-framed video's path into ``out`` (see :mod:`.path`): whether it was
    drawn and the shots in words; a path that is not of the published shape is said so."""
    if reframe is None:
        return False, ()
    found = path.read_path(reframe)
    if found is None:
        return False, ("the reframe path is not drawn: not a path of the published shape",)
    shots, total = found
    deadline = Deadline(timeout_s)

    def frame_at(t_s: float) -> Image.Image | None:
        if deadline.expired():
            return None
        try:
            got = sampling.sample_rate(local, info, fps=1.0, max_side=path.PANEL_PX,
                                     timeout_s=deadline.remaining(), start_s=t_s, length_s=1.0)
        except Interrupted:
            raise
        except PipelineError:
            return None  # a shot past the delivered end (a trimmed clip): its box stays empty
        return got[0]

    path.draw_path(shots, frame_at).save(out, optimize=True)
    said = [s.describe(i) for i, s in enumerate(shots)]
    if total > len(shots):
        said.append(f"{len(shots)} of {total} shots drawn, spread over the clip")
    return True, tuple(said)


# What Chromium, Firefox and Safari all decode in software: 8-bit H.264, VP8, VP9, AV1.
_PLAYABLE = {"h264": 8, "vp8": 8, "vp9": 10, "av1": 10}


def unplayable(info: MediaInfo | None) -> str | None:
    """Why a browser would show an empty player for this video, or ``None`` when it plays."""
    stream = info.video if info is not None else None
    if stream is None:
        return None
    if stream.bit_depth > _PLAYABLE.get(stream.codec, 0):
        depth = f" {stream.bit_depth}-bit" if stream.bit_depth > 8 else ""
        return (f"{stream.codec.upper()}{depth}: most browsers cannot play it here "
                "(the platform can); open the file in a player")
    return None


def subject_frame(shots: list[Image.Image]) -> Image.Image:
    """The frame that shows the subject best: the largest face, else the most salient detail;
    the middle frame when none shows anything (a flat clip)."""
    import numpy as np

    from ..vision.subject import find_subjects

    def score(shot: Image.Image) -> tuple[bool, float]:
        boxes = find_subjects(np.asarray(shot))
        faces = [b for b in boxes if b.kind == "face"]
        best = faces or list(boxes)
        return bool(faces), max(((b.right - b.left) * (b.bottom - b.top) * b.confidence
                                 for b in best), default=0.0)

    scores = [score(shot) for shot in shots]
    middle = len(shots) // 2
    # the best score wins; among equals, the frame nearest the middle
    best = max(range(len(shots)), key=lambda i: (scores[i], -abs(i - middle)))
    return shots[best] if scores[best] > (False, 0.0) else shots[middle]


def _pictures(data: Mapping[str, Any], root: Root, pics: Path) -> dict[str, Picture]:
    """The pictures of every distinct output the manifest names, by URI (bounded in number
    and time: :data:`MAX_PICTURED`, :data:`REPORT_DEADLINE_S`)."""
    pictures: dict[str, Picture] = {}
    deadline = Deadline(REPORT_DEADLINE_S)
    made = 0
    with tempfile.TemporaryDirectory(prefix="conform-report-") as tmp:
        for account in data["accounts"]:
            entries = [(m, m["kind"]) for m in account["media"]]
            if account["cover"] is not None:
                entries.append((account["cover"], "image"))
            for entry, kind in entries:
                uri = entry["uri"]
                if uri in pictures:
                    continue
                if made >= MAX_PICTURED or deadline.expired():
                    pictures[uri] = Picture(still=None, error=(
                        f"not pictured: a report pictures {MAX_PICTURED} outputs in "
                        f"{REPORT_DEADLINE_S:.0f} s at most"))
                    continue
                made += 1
                pictures[uri] = _picture(uri, kind, root, pics, Path(tmp),
                                         min(FRAME_TIMEOUT_S, deadline.remaining()),
                                         entry.get("reframe") if kind == "video" else None)
    return pictures


def make_report(manifest_source: str, out_dir: Path, *, presets: PresetRegistry,
                png: bool = False, endpoint_url: str | None = None,
                manifest: Manifest | None = None, dest: str | None = None) -> Report:
    """Write ``out_dir/index.html`` (and ``sheet.png`` with ``png``) for a manifest.

    Args:
        manifest_source: a local path, ``file://`` or ``s3://`` URI of the manifest.
        out_dir: the report folder: written fresh and swapped in whole (an earlier report
            there is replaced; any other non-empty folder is refused).
        presets: where the surfaces' UI zones come from.
        png: also write a PNG contact sheet.
        endpoint_url: S3 endpoint for ``s3://`` manifests and outputs.
        manifest: the manifest itself when the caller already has it (``conform run
            --report``); ``manifest_source`` is then where it is stored.
        dest: the destination root outputs are read from; default: the root the manifest
            was read from (see :mod:`pipeline.report.scope`).

    Returns:
        Where the page (and sheet) were written.

    Raises:
        ManifestInvalid: the manifest is not one of the published shape.
        StorageError: the manifest could not be fetched (an output that can't be fetched is
            shown as "not available" on the page instead).
        ConfigError: an unusable URI, ``--dest`` or output folder.
    """
    # A manifest the caller holds is checked like a stored one: the page trusts neither.
    data = (check_manifest(manifest.to_dict(), source=manifest_source) if manifest is not None
            else load_manifest(manifest_source, endpoint_url=endpoint_url).to_dict())
    root = (open_root(dest, endpoint_url=endpoint_url) if dest is not None
            else root_of_manifest(manifest_source, endpoint_url=endpoint_url))
    with fresh_folder(out_dir) as folder:
        pics = folder / "pictures"
        pics.mkdir()
        pictures = _pictures(data, root, pics)
        (folder / "index.html").write_text(
            html.render(data, pictures, presets, source=manifest_source), encoding="utf-8")
        if png:
            sheet.render(data, pictures, presets, folder).save(folder / "sheet.png",
                                                               optimize=True)
    return Report(out_dir=out_dir, index_html=out_dir / "index.html",
                  sheet_png=out_dir / "sheet.png" if png else None)
