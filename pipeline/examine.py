"""Looking at media outside a job: what probing finds in one source, the frame at a time of one
video, and a job's plan as plain data.

What ``conform probe``, ``conform cover`` and ``conform plan`` compute, as library calls: the
same stages a job runs (ingest, probe, cover), each in a temporary folder of the workdir that
is removed afterwards. The command line only formats the results.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from . import cover, ingest, probe
from .errors import JobInvalid, SourceNotFound
from .job import parse_media_ref
from .models import LocalMedia, MediaInfo
from .plan import AccountPlan, JobPlan, Rendition
from .presets import applied_limits
from .settings import Settings


def jsonable(value: Any) -> Any:
    """``value`` (from :func:`dataclasses.asdict`) as JSON data: rates as ``"num/den"``."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Fraction):
        return f"{value.numerator}/{value.denominator}"
    return value


@dataclass(frozen=True, slots=True)
class SourceProbe:
    """What probing found in one source, and the sha256 of its bytes."""

    source: str
    sha256: str
    info: MediaInfo

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``conform probe --json``: the source, its sha256 and every probed fact."""
        return {"source": self.source, "sha256": self.sha256, **jsonable(asdict(self.info))}


@dataclass(frozen=True, slots=True)
class CoverFile:
    """A frame of a video written as a JPEG (``conform cover``)."""

    video: str
    out: Path
    at_ms: int
    mime: str
    size_bytes: int
    width: int
    height: int
    warnings: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The JSON object ``conform cover`` prints."""
        return {"video": self.video, "out": str(self.out), "timestamp_ms": self.at_ms,
                "mime": self.mime, "bytes": self.size_bytes, "width": self.width,
                "height": self.height, "warnings": list(self.warnings)}


class CoverNotWritten(OSError):
    """The frame was made but could not be copied to its destination file."""

    def __init__(self, dest: Path, err: OSError) -> None:
        super().__init__(str(err))
        self.dest = dest
        self.cause = err


@contextmanager
def _scratch(settings: Settings, prefix: str) -> Iterator[Path]:
    """A temporary folder in the workdir, removed whatever happens."""
    settings.workdir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=settings.workdir))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def probe_source(source: str, *, settings: Settings,
                 workspace_id: str = "default") -> SourceProbe:
    """Fetch ``source`` into a temporary folder and probe it.

    Args:
        source: a local path, an http(s) URL or a media-library ID. URLs go through the same
            SSRF guard as jobs; the file is identified by its bytes, never by its name.
        settings: limits, the library template and the allowed networks.
        workspace_id: for ``{workspace_id}`` in the library template.

    Returns:
        The probed facts.

    Raises:
        JobInvalid: ``source`` is not a usable media reference.
        SourceNotFound: neither a file nor, without a library, a library ID.
        SourceError: the source could not be fetched (or is too big, or refused).
        UnsupportedMedia: the bytes are not a known image or video.
    """
    with _scratch(settings, "conform-probe-") as tmp:
        local = _fetch(source, tmp, settings=settings, workspace_id=workspace_id)
        info = probe.probe_with_limits(local.path, settings)
    return SourceProbe(source, local.sha256, info)


def _fetch(source: str, tmp: Path, *, settings: Settings, workspace_id: str) -> LocalMedia:
    if Path(source).is_file():
        return ingest.fetch_local_path(Path(source), tmp, settings=settings)
    problems: list[tuple[str, str]] = []
    ref = parse_media_ref(source, "source", problems)
    if ref is None:
        raise JobInvalid(problems)
    if ref.kind == "library" and not settings.library and "://" not in source:
        raise SourceNotFound(f"{source!r}: no such file (and no --library or "
                             "CONFORM_LIBRARY to look it up as a media-library ID)")
    return ingest.fetch(ref, tmp, settings=settings, workspace_id=workspace_id)


def cover_frame(video: str, at_ms: int, dest: Path, *, settings: Settings) -> CoverFile:
    """Write the frame shown at ``at_ms`` of the local file ``video`` to ``dest`` as a JPEG.

    The same extraction as a TikTok cover (:func:`pipeline.cover.cover_at`), without a
    platform.

    Returns:
        The written file, its size and the frame's warnings (a black frame).

    Raises:
        UnsupportedMedia: not a video.
        ValidationFailed: ``cover_timestamp_out_of_range``: outside ``[0, duration)``.
        FFmpegError: ffmpeg failed.
        CoverNotWritten: ``dest`` could not be written.
    """
    probe.setup_pillow(settings.max_image_pixels, settings.max_decode_bytes)
    with _scratch(settings, "conform-cover-") as tmp:
        local = ingest.fetch_local_path(Path(video), tmp / "src", settings=settings)
        info = probe.probe_with_limits(local.path, settings)
        result = cover.cover_at(local.path, info, at_ms, tmp,
                                timeout_s=settings.ffmpeg_timeout_s)
        try:
            shutil.copyfile(result.path, dest)
        except OSError as err:
            raise CoverNotWritten(dest, err) from err
    return CoverFile(video, dest, at_ms, result.mime, dest.stat().st_size, result.width,
                     result.height, tuple(result.warnings))


def plan_summary(jobplan: JobPlan) -> dict[str, Any]:
    """A job's plan as JSON data (``conform plan --json``): outputs, covers and accounts.

    ``encodes`` counts the outputs that are encoded, ``decodes`` the decodes they need:
    encodes that share a decode of their source (``shared_decode``: the same number) count
    once.
    """
    shared = {key: n for n, keys in enumerate(jobplan.decodes, start=1) for key in keys}
    outputs = [_output_summary(r, shared.get(r.key)) for r in jobplan.renditions]
    covers = [{"key": c.key, "source": c.target.source, "at_ms": c.target.at_ms,
               "width": c.target.width, "height": c.target.height, "format": c.target.format,
               "accounts": list(c.accounts)} for c in jobplan.covers]
    accounts = [_account_summary(ap) for ap in jobplan.accounts]
    encodes = sum(1 for o in outputs if o["action"] == "transcode")
    return {"outputs": outputs, "covers": covers, "accounts": accounts, "encodes": encodes,
            "decodes": encodes - sum(len(keys) - 1 for keys in jobplan.decodes),
            # which account takes an output planned for another, and why (or why not)
            "shares": [share.to_dict() for share in jobplan.shares]}


def _output_summary(r: Rendition, shared_decode: int | None) -> dict[str, Any]:
    t = r.target
    return {
        "shared_decode": shared_decode,  # encodes with the same number: one decode
        "key": r.key, "name": r.name, "source": r.ref_text, "kind": t.kind,
        "action": getattr(t, "action", "passthrough" if getattr(t, "passthrough", False)
                          else "convert"),
        "width": t.geometry.width, "height": t.geometry.height, "actions": list(r.actions),
        "warnings": list(r.warnings),
        # smart framing's path, one summary per shot (see docs/media.md, "Smart framing")
        "reframe": [shot.to_dict() for shot in getattr(t, "reframe", ())],
        "accounts": [u.account_id for u in r.uses],
        "variants": sorted({u.variant_id for u in r.uses}),
        "target": asdict(t),
    }


def _account_summary(ap: AccountPlan) -> dict[str, Any]:
    ch = ap.check
    return {"account_id": ch.account.id, "platform": ch.account.platform,
            "mode": ch.account.mode, "ok": ch.ok,
            "media": [{"content_index": s.content_index, "media_index": s.media_index,
                       "variant": s.variant.id, "output": key}
                      for s, key in ap.media],
            "cover": ap.cover_key, "warnings": list(ch.warnings),
            # the account's own limits, which replaced its preset's (empty: the preset's)
            "limits": applied_limits(ch.account.limits),
            "errors": [e.to_dict() for e in ch.errors]}
