"""Caption sidecars: the job's caption files fetched like media, read once, and for each
account's video written in the format its platform takes, timed to the video as delivered,
and stored content-addressed beside the outputs.

A caption file that is broken (or too big, or really a picture) fails only the accounts that
would carry it; a platform that takes no captions through its API gets the warning
``captions_not_supported`` instead (TikTok, Instagram: short-form video carries its captions
burned in).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from .. import ingest
from ..captions import Cue, fit_to_video, flatten, parse_captions, render
from ..deadline import Deadline
from ..errors import CorruptMedia, Interrupted, PipelineError, TooLarge, UnsupportedMedia
from ..manifest import CaptionFile, Carried, Sidecars
from ..models import AccountCheck, CaptionRequest, ErrorInfo, Job, MediaRef, Selected
from ..plan import AccountPlan, BurnSource
from ..presets import CaptionSpec
from ..probe.sniff import sniff
from ..settings import Settings
from ..storage import Storage
from ..storage.base import IMMUTABLE
from .stored import asset_key

log = logging.getLogger(__name__)

# The largest caption file read (a two-hour film's SRT is ~150 KB).
MAX_CAPTION_SOURCE_BYTES = 2_000_000
MIME = {"srt": "application/x-subrip", "vtt": "text/vtt"}

#: Each caption source as read: its cues (overlaps merged), or why it can't be used.
Parsed = Mapping[MediaRef, "list[Cue] | PipelineError"]


def caption_refs(job: Job, content_indices: range | list[int]) -> list[MediaRef]:
    """Every caption source the given content items name, each once."""
    refs: list[MediaRef] = []
    for ci in content_indices:
        for request in job.content[ci].captions:
            if request.ref not in refs:
                refs.append(request.ref)
    return refs


def read_captions(refs: list[MediaRef], dest: Path, *, settings: Settings, workspace_id: str,
                  deadline: Deadline) -> dict[MediaRef, list[Cue] | PipelineError]:
    """Fetch and read each caption source: the ingest's SSRF guard and deadline, a smaller
    byte cap, and a sniff that refuses pictures and videos.

    Raises:
        Interrupted: stopped by a signal. Every other problem is kept as that source's result.
    """
    capped = dataclasses.replace(settings, max_source_bytes=min(
        settings.max_source_bytes, MAX_CAPTION_SOURCE_BYTES))
    out: dict[MediaRef, list[Cue] | PipelineError] = {}
    for ref in refs:
        try:
            deadline.check("captions")
            local = ingest.fetch(ref, dest, settings=capped, workspace_id=workspace_id,
                                 deadline_s=deadline.remaining())
            out[ref] = _read(local.path, ref)
        except Interrupted:
            raise
        except TooLarge as err:
            out[ref] = TooLarge(f"captions {ref.value!r} are over the "
                                f"{capped.max_source_bytes}-byte cap for a caption file",
                                details=err.details)
        except PipelineError as err:
            log.info("captions %s: %s", ref, err.message)
            out[ref] = err
    return out


def _read(path: Path, ref: MediaRef) -> list[Cue]:
    try:
        fmt = sniff(path)
    except (UnsupportedMedia, CorruptMedia):
        fmt = None  # text is what a caption file should be
    if fmt is not None:
        raise UnsupportedMedia(f"captions {ref.value!r} are a {fmt} file, not SRT or WebVTT")
    return flatten(parse_captions(path.read_bytes())[1])


def sidecars_for(sel: Selected, requests: tuple[CaptionRequest, ...], spec: CaptionSpec | None,
                 parsed: Parsed, storage: Storage) -> Sidecars:
    """The caption files one account's video carries, stored; or the warning why none.

    Raises:
        PipelineError: a caption source the account would carry is broken, too big for the
            platform, or could not be stored (it fails the account).
    """
    sidecar = [r for r in requests if not r.burn_in]
    if not sidecar or sel.variant.kind != "video":
        return Sidecars()
    if spec is None:
        return Sidecars(warnings=(f"captions_not_supported: {sel.variant.label} takes no "
                                  f"caption files through its API; set burn_in to show them",))
    warnings: list[str] = []
    if spec.max_tracks is not None and len(sidecar) > spec.max_tracks:
        dropped = ", ".join(r.lang for r in sidecar[spec.max_tracks:])
        warnings.append(f"captions_dropped: {sel.variant.label} takes {spec.max_tracks} "
                        f"caption track(s); not carried: {dropped}")
        sidecar = sidecar[:spec.max_tracks]
    files = tuple(_store_track(sel, r, spec, parsed, storage) for r in sidecar)
    return Sidecars(files, tuple(warnings))


def _store_track(sel: Selected, request: CaptionRequest, spec: CaptionSpec, parsed: Parsed,
                 storage: Storage) -> CaptionFile:
    cues = parsed.get(request.ref)
    if cues is None:
        raise PipelineError(f"captions {request.ref.value!r} were not read")
    if isinstance(cues, PipelineError):
        raise cues
    fmt = spec.formats[0]
    timed = fit_to_video(cues, source_s=sel.info.duration_s or 0.0,
                         delivered_s=sel.delivered_s, loops=sel.loops)
    data = render(timed, fmt)
    if spec.max_bytes is not None and len(data) > spec.max_bytes:
        raise TooLarge(f"captions {request.ref.value!r} ({request.lang}) make a {len(data)}-byte "
                       f"{fmt.upper()} file; {sel.variant.label} takes {spec.max_bytes} bytes")
    sha = hashlib.sha256(data).hexdigest()
    key = asset_key(sha, f"captions-{request.lang}.{fmt}")
    # the same bytes are the same file: a re-run (or another account) finds it stored
    stored = storage.head(key) or storage.put_bytes(data, key, content_type=MIME[fmt],
                                                    cache_control=IMMUTABLE)
    return CaptionFile(uri=stored.uri, format=fmt, lang=request.lang, bytes=len(data), key=key)


def as_error(err: PipelineError, sel: Selected) -> ErrorInfo:
    """A caption problem as the account's manifest error, placed on its medium."""
    return ErrorInfo.from_error(err, sel.content_index, sel.media_index)


def carry_captions(job: Job, accounts: Iterable[AccountPlan], parsed: Parsed,
                   storage: Storage, url_of: Callable[[str], str | None]) -> Carried:
    """The caption files of every account's videos, stored, with their URLs when asked for.

    Raises:
        Interrupted: stopped by a signal. A caption problem fails only its account.
    """
    carried: Carried = {}
    for ap in accounts:
        if not ap.check.ok:
            continue
        spec = ap.check.preset.captions
        for sel, _key in ap.media:
            requests = job.content[sel.content_index].captions
            where = (ap.check.account.id, sel.content_index, sel.media_index)
            try:
                found = sidecars_for(sel, requests, spec, parsed, storage)
            except Interrupted:
                raise
            except PipelineError as err:
                carried[where] = as_error(err, sel)
                continue
            files = tuple(dataclasses.replace(f, url=url_of(f.key)) for f in found.files)
            carried[where] = Sidecars(files, found.warnings)
    return carried


def burn_sources(job: Job, parsed: Parsed) -> tuple[dict[int, BurnSource], dict[int, ErrorInfo]]:
    """Each content item's burned-in track as the planner takes it, or why it can't be drawn
    (by content index)."""
    sources: dict[int, BurnSource] = {}
    errors: dict[int, ErrorInfo] = {}
    for ci, item in enumerate(job.content):
        for request in item.captions:
            if not request.burn_in or request.ref not in parsed:
                continue
            cues = parsed[request.ref]
            if isinstance(cues, PipelineError):
                errors[ci] = ErrorInfo.from_error(cues, ci)
            else:
                sources[ci] = (request.lang, tuple(cues))
    return sources, errors


def fail_unburnable(checks: list[AccountCheck], errors: Mapping[int, ErrorInfo]
                    ) -> list[AccountCheck]:
    """Accounts whose videos would show a burned-in track that can't be read fail with its
    error (the others go on)."""
    if not errors:
        return checks
    out = []
    for check in checks:
        found = [errors[ci] for ci in dict.fromkeys(
            s.content_index for s in check.items if s.variant.kind == "video") if ci in errors]
        out.append(dataclasses.replace(check, errors=(*check.errors, *found)) if found
                   else check)
    return out
