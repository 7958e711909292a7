"""The manifest: what a job produced, per account, as typed records with one ``to_dict`` each.

The runner hands over what it made (:class:`Output` per content key) and the plan; this
module turns them into :class:`Manifest`, the contract the publish flow reads. Errors become
manifest errors in one place, :meth:`pipeline.models.ErrorInfo.from_error`; here they are
only placed (which content item, which medium) and stripped of server paths.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .errors import public_message
from .models import AccountCheck, ErrorInfo, Job
from .outputs.stored import StoredCover, StoredRendition
from .plan import AccountPlan, JobPlan
from .presets import CaptionFormat, PresetRegistry
from .reframes import ReframeEntry, reframe_entries


@dataclass(frozen=True, slots=True)
class Output:
    """A stored rendition or cover as the runner made (or reused) it, or why it failed.

    ``stored`` is the output's record as its ``meta.json`` keeps it (its ``warnings`` with
    this job's own surface warnings added), ``uri`` where it is stored, ``url`` its http(s)
    address when the job asked for URLs.
    """

    stored: StoredRendition | StoredCover | None = None
    uri: str = ""
    url: str | None = None
    error: ErrorInfo | None = None


@dataclass(frozen=True, slots=True)
class CaptionFile:
    """One stored caption track of an account's video (the manifest's ``captions`` item)."""

    uri: str
    format: CaptionFormat
    lang: str
    bytes: int
    key: str
    url: str | None = None

    def to_dict(self) -> dict[str, object]:
        """The manifest's caption object (``url`` only when URLs were asked for)."""
        return {"uri": self.uri, **({"url": self.url} if self.url is not None else {}),
                "format": self.format, "lang": self.lang, "bytes": self.bytes}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CaptionFile:
        """The caption object read back (its storage ``key`` is not published: empty)."""
        return cls(uri=data["uri"], url=data.get("url"), format=data["format"],
                   lang=data["lang"], bytes=data["bytes"], key="")


@dataclass(frozen=True, slots=True)
class Sidecars:
    """What one account's medium carries: its caption files and the warnings about them."""

    files: tuple[CaptionFile, ...] = ()
    warnings: tuple[str, ...] = ()


#: Where each account's medium stands with its captions: (account id, content index, media
#: index) to the files it carries, or the error that fails the account.
Carried = dict[tuple[str, int, int], "Sidecars | ErrorInfo"]


@dataclass(frozen=True, slots=True)
class MediaEntry:
    """One delivered medium of an account."""

    content_index: int
    media_index: int
    source: str
    kind: Literal["image", "video"]
    uri: str
    mime: str
    bytes: int
    sha256: str
    width: int
    height: int
    duration_ms: int | None
    actions: tuple[str, ...]
    warnings: tuple[str, ...]
    url: str | None = None
    reframe: tuple[ReframeEntry, ...] | None = None
    alt: str | None = None
    captions: tuple[CaptionFile, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The manifest's media object (``url``, ``alt`` and ``reframe`` only when there are
        some)."""
        out: dict[str, Any] = {
            "content_index": self.content_index, "media_index": self.media_index,
            "source": self.source, "kind": self.kind, "uri": self.uri,
            **({"url": self.url} if self.url is not None else {}),
            "mime": self.mime, "bytes": self.bytes, "sha256": self.sha256,
            "width": self.width, "height": self.height, "duration_ms": self.duration_ms,
            "actions": list(self.actions), "warnings": list(self.warnings),
        }
        if self.alt is not None:
            out["alt"] = self.alt
        if self.captions is not None:
            out["captions"] = [c.to_dict() for c in self.captions]
        if self.reframe is not None:
            out["reframe"] = [shot.to_dict() for shot in self.reframe]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MediaEntry:
        """The media object read back (see :meth:`Manifest.from_dict`)."""
        captions = data.get("captions")
        reframe = data.get("reframe")
        return cls(
            content_index=data["content_index"], media_index=data["media_index"],
            source=data["source"], kind=data["kind"], uri=data["uri"], url=data.get("url"),
            mime=data["mime"], bytes=data["bytes"], sha256=data["sha256"],
            width=data["width"], height=data["height"], duration_ms=data["duration_ms"],
            actions=tuple(data["actions"]), warnings=tuple(data["warnings"]),
            reframe=reframe_entries(reframe), alt=data.get("alt"),
            captions=tuple(CaptionFile.from_dict(c) for c in captions)
            if captions is not None else None)


@dataclass(frozen=True, slots=True)
class CoverEntry:
    """An account's cover.

    ``source`` says where it came from: the thumbnail's reference (library ID or URL),
    ``"video_cover_timestamp_ms"`` for the requested frame, or ``"default_frame"`` for a frame
    nobody asked for (Pinterest's 1 s); frames carry ``timestamp_ms``.
    """

    uri: str
    mime: str
    bytes: int
    width: int
    height: int
    url: str | None = None
    timestamp_ms: int | None = None
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The manifest's cover object."""
        out: dict[str, Any] = {"uri": self.uri,
                               **({"url": self.url} if self.url is not None else {}),
                               "mime": self.mime, "bytes": self.bytes, "width": self.width,
                               "height": self.height}
        if self.timestamp_ms is not None:
            out["timestamp_ms"] = self.timestamp_ms
        if self.source is not None:
            out["source"] = self.source
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CoverEntry:
        """The cover object read back (see :meth:`Manifest.from_dict`)."""
        return cls(uri=data["uri"], url=data.get("url"), mime=data["mime"],
                   bytes=data["bytes"], width=data["width"], height=data["height"],
                   timestamp_ms=data.get("timestamp_ms"), source=data.get("source"))


@dataclass(frozen=True, slots=True)
class AccountResult:
    """What one account gets: its media and cover when ok, else its errors."""

    account_id: str
    platform: str
    variant: str
    status: Literal["ok", "failed"]
    media: tuple[MediaEntry, ...]
    cover: CoverEntry | None
    warnings: tuple[str, ...]
    errors: tuple[ErrorInfo, ...]

    def to_dict(self) -> dict[str, Any]:
        """The manifest's account object."""
        return {"account_id": self.account_id, "platform": self.platform,
                "variant": self.variant, "status": self.status,
                "media": [m.to_dict() for m in self.media],
                "cover": self.cover.to_dict() if self.cover is not None else None,
                "warnings": list(self.warnings), "errors": [e.to_dict() for e in self.errors]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AccountResult:
        """The account object read back (see :meth:`Manifest.from_dict`)."""
        cover = data["cover"]
        return cls(account_id=data["account_id"], platform=data["platform"],
                   variant=data["variant"], status=data["status"],
                   media=tuple(MediaEntry.from_dict(m) for m in data["media"]),
                   cover=CoverEntry.from_dict(cover) if cover is not None else None,
                   warnings=tuple(data["warnings"]),
                   errors=tuple(_error(e) for e in data["errors"]))


def _error(data: Mapping[str, Any]) -> ErrorInfo:
    """A manifest's error object read back (``retryable`` is not published: False)."""
    return ErrorInfo(data["code"], data["message"], data["http_status"],
                     content_index=data.get("content_index"),
                     media_index=data.get("media_index"))


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a job produced, per account: the contract the publish flow reads."""

    job_id: str
    status: Literal["succeeded", "partial", "failed"]
    presets_version: str
    accounts: tuple[AccountResult, ...]
    uri: str | None = None
    workspace_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Every account succeeded."""
        return self.status == "succeeded"

    @property
    def retryable(self) -> bool:
        """Every failure in it may go away on a re-run (storage outage, timeout...)."""
        errors = [e for a in self.accounts for e in a.errors]
        return bool(errors) and all(e.retryable for e in errors)

    def to_dict(self) -> dict[str, Any]:
        """The manifest as JSON-ready data."""
        return {"job_id": self.job_id, "workspace_id": self.workspace_id, "status": self.status,
                "presets_version": self.presets_version,
                "accounts": [a.to_dict() for a in self.accounts], **self.extra}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, uri: str | None = None) -> Manifest:
        """The manifest a document describes: what :meth:`to_dict` wrote (a stored one, or
        one a caller holds), and one of a version that wrote no ``workspace_id`` (read as
        ``""``, the unscoped job). Other top-level fields (``pipeline_version``) are kept in
        ``extra``, so ``to_dict`` gives the document back.

        Check a document from outside first (:func:`pipeline.manifestfile.check_manifest`):
        this reads the published shape and does not judge it.

        Raises:
            KeyError, TypeError: ``data`` is not of the published shape.
        """
        known = ("job_id", "workspace_id", "status", "presets_version", "accounts")
        return cls(job_id=data["job_id"], workspace_id=data.get("workspace_id", ""),
                   status=data["status"], presets_version=data["presets_version"],
                   accounts=tuple(AccountResult.from_dict(a) for a in data["accounts"]),
                   uri=uri, extra={k: v for k, v in data.items() if k not in known})


def build_manifest(job: Job, jobplan: JobPlan, outputs: dict[str, Output],
                   presets: PresetRegistry, *, pipeline_version: str,
                   captions: Carried | None = None) -> Manifest:
    """The manifest of a job from its plan and what was made for each content key.

    Raises:
        Nothing: a missing output fails its account as ``internal``.
    """
    accounts = tuple(_account(ap, outputs, job, captions or {}) for ap in jobplan.accounts)
    statuses = {a.status for a in accounts}
    status: Literal["succeeded", "partial", "failed"] = (
        "succeeded" if statuses == {"ok"} else "failed" if "ok" not in statuses else "partial")
    return Manifest(job_id=job.id, workspace_id=job.workspace_id, status=status,
                    presets_version=presets.version(), accounts=accounts,
                    extra={"pipeline_version": pipeline_version})


def _account(ap: AccountPlan, outputs: dict[str, Output], job: Job,
             captions: Carried) -> AccountResult:
    check, cover_key = ap.check, ap.cover_key
    errors = list(check.errors)
    media: list[MediaEntry] = []
    if check.ok:
        for sel, key in ap.media:
            out = outputs.get(key, Output())
            if out.error is not None or not isinstance(out.stored, StoredRendition):
                err = out.error or ErrorInfo("internal", "output missing", 500)
                errors.append(replace(err, content_index=sel.content_index,
                                      media_index=sel.media_index))
                continue
            entry = _media_entry(out, out.stored, sel.content_index, sel.media_index,
                                 sel.ref.value, sel.variant.id)
            given = job.content[sel.content_index].alt(sel.media_index)
            entry = with_alt(entry, given, check.preset.limits.alt_text_max_chars)
            carried = captions.get((check.account.id, sel.content_index, sel.media_index))
            if isinstance(carried, ErrorInfo):
                errors.append(carried)
            elif carried is not None:
                entry = with_captions(entry, carried)
            media.append(entry)
    cover: CoverEntry | None = None
    cover_warnings: list[str] = []
    if check.ok and cover_key is not None:
        out = outputs.get(cover_key, Output())
        if out.error is not None or not isinstance(out.stored, StoredCover):
            err = out.error or ErrorInfo("internal", "cover missing", 500)
            errors.append(replace(err, message=f"cover: {err.message}", content_index=0,
                                  media_index=None))
        else:
            cover = _cover_entry(out, out.stored, check)
            cover_warnings = list(out.stored.warnings)
    # The manifest goes back to the API caller: no server paths.
    errors = [replace(e, message=public_message(e.message)) for e in errors]
    ok = not errors
    return AccountResult(
        account_id=check.account.id, platform=check.account.platform,
        variant=variant_label(check), status="ok" if ok else "failed",
        media=tuple(media) if ok else (), cover=cover if ok else None,
        warnings=(*check.warnings, *cover_warnings), errors=tuple(errors))


def _media_entry(out: Output, stored: StoredRendition, content_index: int, media_index: int,
                 source: str, variant_id: str) -> MediaEntry:
    return MediaEntry(
        content_index=content_index, media_index=media_index, source=source,
        kind=stored.kind, uri=out.uri, url=out.url, mime=stored.mime, bytes=stored.bytes,
        sha256=stored.sha256, width=stored.width, height=stored.height,
        duration_ms=stored.duration_ms, actions=stored.actions,
        warnings=tuple(own_surface_warnings(stored.warnings, variant_id)),
        reframe=reframe_entries(stored.reframe))


def with_alt(entry: MediaEntry, alt: str | None, max_chars: int | None) -> MediaEntry:
    """A media entry with its alt text as the account's platform takes it.

    Over the platform's limit the text is cut at the last word boundary that fits (a cut word
    reads worse than a shorter sentence), with the warning ``alt_text_truncated``; a platform
    that takes no alt text gets none, with ``alt_text_not_supported``.
    """
    if alt is None:
        return entry
    if max_chars is None:
        return replace(entry, warnings=(*entry.warnings, "alt_text_not_supported: the "
                                        "platform's API takes no alt text; it is not carried"))
    if len(alt) <= max_chars:
        return replace(entry, alt=alt)
    cut = alt[:max_chars + 1].rsplit(" ", 1)[0] if " " in alt[:max_chars + 1] else ""
    cut = (cut or alt[:max_chars]).rstrip()
    return replace(entry, alt=cut, warnings=(
        *entry.warnings, f"alt_text_truncated: {len(alt)} characters cut to {len(cut)} "
                         f"(the platform takes {max_chars})"))


def with_captions(entry: MediaEntry, carried: Sidecars) -> MediaEntry:
    """A media entry with the caption files it carries and the warnings about them."""
    return replace(entry, captions=carried.files or None,
                   warnings=(*entry.warnings, *carried.warnings))


def own_surface_warnings(warnings: Iterable[str], variant_id: str) -> list[str]:
    """An output's warnings as one account sees them.

    A shared output carries a ``subject_under_ui`` warning per surface that uses it, each
    naming its variant (``... (tiktok-video)``); an X account sharing the TikTok file is not
    told about TikTok's buttons. A ``low_resolution`` warning names its surface the same way
    (``... for instagram-reels``).
    """
    return [w for w in warnings
            if (not w.startswith("subject_under_ui:") or w.endswith(f"({variant_id})"))
            and (not w.startswith("low_resolution:") or w.endswith(f" for {variant_id}"))]


def _cover_entry(out: Output, stored: StoredCover, check: AccountCheck) -> CoverEntry:
    choice = check.cover
    timestamp_ms: int | None = None
    source: str | None = None
    if choice is not None and choice.source == "frame":
        timestamp_ms = choice.timestamp_ms
        source = "default_frame" if choice.default_frame else "video_cover_timestamp_ms"
    elif choice is not None and choice.thumbnail is not None:
        source = choice.thumbnail.value
    return CoverEntry(uri=out.uri, url=out.url, mime=stored.mime, bytes=stored.bytes,
                      width=stored.width, height=stored.height, timestamp_ms=timestamp_ms,
                      source=source)


def variant_label(check: AccountCheck) -> str:
    """The account's variant: the one its media use (e.g. ``instagram-reels``)."""
    names = list(dict.fromkeys(s.variant.id for s in check.items)) or list(
        check.intended_variants)
    if names:
        return "+".join(names)
    mode = check.preset.modes[check.account.mode]
    return f"{check.preset.platform}-{mode.video or mode.image or check.account.mode}"
