"""The preview sheet: one self-contained HTML page (and optionally a PNG) per manifest.

``make_report`` reads a manifest (a local path or an ``s3://`` URI), fetches every output it
names through the storage layer, makes small pictures of them (a still for an image, a poster
and a filmstrip for a video, the cover) and writes ``DIR/index.html`` with the pictures next
to it. Vertical surfaces get their platform's UI zones (preset data) drawn over the picture.
``html`` renders the page, ``sheet`` the PNG contact sheet.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from PIL import Image

from .. import frames, probe
from ..errors import ConfigError, Interrupted, JobInvalid, PipelineError
from ..presets import PresetRegistry
from ..storage import open_storage
from . import html, sheet
from .pictures import Picture

log = logging.getLogger(__name__)

POSTER_SIDE_PX = 480  # longer side of a poster or still: crisp at the page's 320 px boxes
STRIP_SIDE_PX = 120  # longer side of a filmstrip frame
STRIP_FRAMES = 5
FRAME_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class Report:
    """What was written: the page, the PNG sheet when asked for, and the folder."""

    out_dir: Path
    index_html: Path
    sheet_png: Path | None


def read_manifest(source: str, *, endpoint_url: str | None = None) -> dict[str, Any]:
    """Read a manifest from a local path, ``file://`` or ``s3://`` URI.

    Raises:
        JobInvalid: the file is not a manifest (not JSON, no ``accounts`` list).
        StorageError: the object could not be fetched (``StorageNotFound`` when absent).
        ConfigError: an unusable URI.
    """
    with tempfile.TemporaryDirectory(prefix="conform-report-") as tmp:
        path = _fetch(source, Path(tmp) / "manifest.json", endpoint_url=endpoint_url)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise JobInvalid([("", f"not a manifest: {err}")]) from err
    if not isinstance(data, dict) or not isinstance(data.get("accounts"), list):
        raise JobInvalid([("accounts", "not a manifest: no accounts list")])
    return data


def _fetch(uri: str, dest: Path, *, endpoint_url: str | None) -> Path:
    """A local path for ``uri``: local files are used in place, S3 objects are downloaded.

    Raises:
        ConfigError: a scheme other than ``file`` or ``s3``, or a malformed URI.
        StorageError: the S3 object could not be fetched.
    """
    if "://" not in uri:
        path = Path(uri)
        if not path.is_file():
            raise ConfigError(f"no such file: {uri}")
        return path
    parts = urlsplit(uri)
    if parts.scheme == "file":
        path = Path(unquote(parts.path))
        if parts.netloc not in ("", "localhost") or not path.is_file():
            raise ConfigError(f"no such local file: {uri}")
        return path
    if parts.scheme == "s3":
        key = unquote(parts.path).lstrip("/")
        if not parts.netloc or not key:
            raise ConfigError(f"s3:// URI needs a bucket and a key: {uri}")
        storage = open_storage(f"s3://{parts.netloc}", endpoint_url=endpoint_url)
        return storage.get_file(key, dest)
    raise ConfigError(f"cannot read {parts.scheme}:// URIs; use a path, file:// or s3://")


def _picture(uri: str, kind: str, out_dir: Path, tmp: Path, *,
             endpoint_url: str | None) -> Picture:
    """Fetch one stored file and write its pictures into ``out_dir/pictures``."""
    name = hashlib.sha256(uri.encode()).hexdigest()[:20]
    pics = out_dir / "pictures"
    pics.mkdir(parents=True, exist_ok=True)
    try:
        local = _fetch(uri, tmp / name, endpoint_url=endpoint_url)
        if kind == "video":
            info = probe.probe(local, timeout_s=FRAME_TIMEOUT_S)
            shots = frames.sample_video(local, info, count=STRIP_FRAMES,
                                        max_side=POSTER_SIDE_PX, timeout_s=FRAME_TIMEOUT_S)
            poster = shots[len(shots) // 2]
            strip = []
            for i, shot in enumerate(shots):
                small = shot.copy()
                small.thumbnail((STRIP_SIDE_PX, STRIP_SIDE_PX), Image.Resampling.LANCZOS)
                small.save(pics / f"{name}-{i}.jpg", quality=80)
                strip.append(f"pictures/{name}-{i}.jpg")
        else:
            poster = frames.still(local, max_side=POSTER_SIDE_PX)
            strip = []
        poster.save(pics / f"{name}.jpg", quality=85)
        return Picture(still=f"pictures/{name}.jpg", strip=tuple(strip))
    except Interrupted:
        raise
    except PipelineError as err:
        # One unreadable output must not hide the others: the page says what went wrong.
        log.warning("no picture for %s: %s", uri, err.message)
        return Picture(still=None, error=f"{err.code}: {err.message}")


def make_report(manifest_source: str, out_dir: Path, *, presets: PresetRegistry,
                png: bool = False, endpoint_url: str | None = None,
                manifest: Mapping[str, Any] | None = None) -> Report:
    """Write ``out_dir/index.html`` (and ``sheet.png`` with ``png``) for a manifest.

    Args:
        manifest_source: a local path, ``file://`` or ``s3://`` URI of the manifest.
        out_dir: the report folder (created; pictures go to ``out_dir/pictures``).
        presets: where the surfaces' UI zones come from.
        png: also write a PNG contact sheet.
        endpoint_url: S3 endpoint for ``s3://`` manifests and outputs.
        manifest: the manifest itself when the caller already has it (``conform run
            --report``); ``manifest_source`` is then only shown on the page.

    Returns:
        Where the page (and sheet) were written.

    Raises:
        JobInvalid: the manifest is not one.
        StorageError: the manifest could not be fetched (an output that can't be fetched is
            shown as such on the page instead).
        ConfigError: an unusable URI or output folder.
    """
    data = dict(manifest) if manifest is not None else read_manifest(
        manifest_source, endpoint_url=endpoint_url)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create the report folder {out_dir}: {err}") from err
    shutil.rmtree(out_dir / "pictures", ignore_errors=True)
    pictures: dict[str, Picture] = {}
    with tempfile.TemporaryDirectory(prefix="conform-report-") as tmp:
        for account in data["accounts"]:
            if not isinstance(account, dict):
                continue
            entries = [(m, str(m.get("kind", "image"))) for m in account.get("media") or []
                       if isinstance(m, dict)]
            cover = account.get("cover")
            if isinstance(cover, dict):
                entries.append((cover, "image"))
            for entry, kind in entries:
                uri = entry.get("uri")
                if isinstance(uri, str) and uri not in pictures:
                    pictures[uri] = _picture(uri, kind, out_dir, Path(tmp),
                                             endpoint_url=endpoint_url)
    index = out_dir / "index.html"
    index.write_text(html.render(data, pictures, presets, source=manifest_source),
                     encoding="utf-8")
    sheet_png = None
    if png:
        sheet_png = out_dir / "sheet.png"
        sheet.render(data, pictures, presets, out_dir).save(sheet_png, optimize=True)
    return Report(out_dir=out_dir, index_html=index, sheet_png=sheet_png)
