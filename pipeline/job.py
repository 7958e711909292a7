"""Parse a Create-Post request (JSON) into a :class:`Job`, reporting every problem with its path."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from .errors import JobInvalid
from .models import Account, CaptionRequest, ContentItem, CoverRequest, Job, MediaRef
from .presets import FIT_POLICIES, AccountLimits, Preset, PresetRegistry, limit_problems

_HTTP_RE = re.compile(r"^https?://", re.IGNORECASE)
DURATION_POLICIES = ("refuse", "trim")


def parse_job_text(text: str | bytes, presets: PresetRegistry, *,
                   workspace: str | None = None) -> Job:
    """Parse JSON text into a job.

    This is the border for untrusted text: whatever the document holds, the only error that
    leaves is :class:`JobInvalid` (never a ``RecursionError`` from deep nesting or the
    ``ValueError`` of Python's 4300-digit limit on integers).

    Args:
        text: the job's JSON.
        presets: the platforms a job may name.
        workspace: the operator's pinned workspace (``--workspace``); a job naming another
            one is invalid.

    Raises:
        JobInvalid: malformed JSON or any schema problem (all listed, each with its JSON path).
    """
    try:
        data = json.loads(text)
    except RecursionError as err:
        raise JobInvalid([("", "malformed JSON: nested too deeply")]) from err
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError, an over-long integer
        raise JobInvalid([("", f"malformed JSON: {_one_line(str(err))}")]) from err
    return parse_job(data, presets, workspace=workspace)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]


def parse_job(data: Any, presets: PresetRegistry, *, workspace: str | None = None) -> Job:
    """Validate a decoded Create-Post request.

    Fields of the API that are not about media (labels, schedule, repeat, texts, settings
    that do not pick a media variant) are accepted and ignored.

    Args:
        data: the decoded JSON.
        presets: the platforms a job may name.
        workspace: the operator's pinned workspace; a job naming another one is invalid.

    Raises:
        JobInvalid: every problem found, each with its JSON path.
    """
    try:
        return _parse_job(data, presets, workspace)
    except RecursionError as err:  # a deep structure in a field we copy or hash
        raise JobInvalid([("", "nested too deeply")]) from err


def _parse_job(data: Any, presets: PresetRegistry, workspace: str | None) -> Job:
    problems: list[tuple[str, str]] = []
    if not isinstance(data, dict):
        raise JobInvalid([("", "the job must be a JSON object")])

    workspace_id = _id_field(data, "workspace_id", problems, required=True)
    if workspace_id is not None and workspace is not None and workspace_id != workspace:
        # The API in front sets workspace_id from the caller's credentials; a job that names
        # another workspace would read that tenant's library and write into its manifests.
        problems.append(("workspace_id", "not the workspace this conform serves"))
    job_id = _id_field(data, "id", problems, required=False)
    content = _content(data.get("content"), problems)
    accounts = _accounts(data.get("accounts"), presets, problems)
    policy = "refuse"
    fit = None
    conform = data.get("conform")
    if conform is not None:
        if not isinstance(conform, dict):
            problems.append(("conform", "must be an object"))
        else:
            raw = conform.get("duration_policy", "refuse")
            if raw not in DURATION_POLICIES:
                problems.append(("conform.duration_policy", f"must be one of {DURATION_POLICIES}"))
            else:
                policy = raw
            fit = conform.get("fit")
            if fit is not None and fit not in FIT_POLICIES:
                problems.append(("conform.fit", f"must be one of {FIT_POLICIES}"))
    if problems:
        raise JobInvalid(problems)
    return Job(
        id=job_id or derive_job_id(data),
        workspace_id=workspace_id or "",
        content=content,
        accounts=accounts,
        duration_policy=policy,  # type: ignore[arg-type]
        fit=fit,
    )


def derive_job_id(data: Mapping[str, Any]) -> str:
    """A stable id from the request's canonical JSON, so re-runs find the same manifest."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "job-" + hashlib.sha256(blob.encode()).hexdigest()[:16]


_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", re.ASCII)


def _id_field(data: Mapping[str, Any], key: str, problems: list[tuple[str, str]],
              *, required: bool) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            problems.append((key, "required"))
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        problems.append((key, "must be a string or an integer"))
        return None
    try:
        text = str(value)
    except ValueError:  # an integer over Python's 4300-digit conversion limit
        problems.append((key, "must be 1-128 letters, digits, '.', '_' or '-'"))
        return None
    if not _SAFE_ID.fullmatch(text):
        # The workspace and job ids name the manifest (manifests/<workspace_id>/<id>.json):
        # each must be a safe single path segment. fullmatch: "$" would let a final "\n" in.
        problems.append((key, "must be 1-128 letters, digits, '.', '_' or '-'"))
        return None
    if not text:
        problems.append((key, "must not be empty"))
        return None
    return text


def parse_media_ref(value: Any, path: str, problems: list[tuple[str, str]]) -> MediaRef | None:
    """A URL string, any other string or integer (a library ID), or ``{"id"}`` / ``{"url"}``."""
    if isinstance(value, dict):
        keys = set(value) & {"id", "url"}
        if len(keys) != 1:
            problems.append((path, 'an object reference needs exactly one of "id" or "url"'))
            return None
        key = keys.pop()
        inner = value[key]
        if key == "url":
            if not isinstance(inner, str) or not inner.strip():
                problems.append((f"{path}.url", "must be a non-empty string"))
                return None
            # Scheme and address checks belong to ingest (url_not_allowed, per account).
            return MediaRef("url", inner.strip())
        value = inner
        path = f"{path}.id"
    if isinstance(value, bool) or not isinstance(value, str | int):
        problems.append((path, "must be a URL, a media-library ID, or {\"id\"}/{\"url\"}"))
        return None
    text = str(value).strip()
    if not text:
        problems.append((path, "must not be empty"))
        return None
    if _HTTP_RE.match(text):
        return MediaRef("url", text)
    # Any other string (including other schemes) is a library ID; the ingest stage refuses IDs
    # that do not match the strict ID pattern with `invalid_library_id`, per account.
    return MediaRef("library", text)


def _content(raw: Any, problems: list[tuple[str, str]]) -> tuple[ContentItem, ...]:
    if not isinstance(raw, list) or not raw:
        problems.append(("content", "must be a non-empty array"))
        return ()
    items: list[ContentItem] = []
    for i, item in enumerate(raw):
        path = f"content[{i}]"
        if not isinstance(item, dict):
            problems.append((path, "must be an object"))
            continue
        text = item.get("text")
        if text is not None and not isinstance(text, str):
            problems.append((f"{path}.text", "must be a string"))
            text = None
        media_raw = item.get("media", [])
        media: list[MediaRef] = []
        alts: list[str | None] = []
        if media_raw is None:
            media_raw = []
        if not isinstance(media_raw, list):
            problems.append((f"{path}.media", "must be an array"))
            media_raw = []
        for j, ref in enumerate(media_raw):
            parsed, alt = _medium(ref, f"{path}.media[{j}]", problems)
            if parsed is not None:
                media.append(parsed)
                alts.append(alt)
        cover = _cover(item.get("cover_image"), f"{path}.cover_image", problems)
        captions = _captions(item.get("captions"), f"{path}.captions", problems)
        if not (text or media_raw):
            problems.append((path, "needs text or media"))
        items.append(ContentItem(text=text, media=tuple(media), cover=cover,
                                 alts=tuple(alts) if any(alts) else (), captions=captions))
    return tuple(items)


# Alt text longer than any platform takes (LinkedIn's 4,086 is the most) is cut per platform
# in the manifest; this bound only keeps a job from carrying megabytes of it.
MAX_ALT_CHARS = 10_000
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def _medium(value: Any, path: str,
            problems: list[tuple[str, str]]) -> tuple[MediaRef | None, str | None]:
    """A medium: a reference as :func:`parse_media_ref` takes it, or ``{"src", "alt"}``."""
    if not (isinstance(value, dict) and "src" in value):
        return parse_media_ref(value, path, problems), None
    unknown = sorted(set(value) - {"src", "alt"})
    if unknown:
        problems.append((path, f"unknown key {unknown[0]!r} (a medium object has src and alt)"))
    ref = parse_media_ref(value["src"], f"{path}.src", problems)
    return ref, _alt(value.get("alt"), f"{path}.alt", problems)


def _alt(raw: Any, path: str, problems: list[tuple[str, str]]) -> str | None:
    """Alt text, with control and direction-override characters taken out (a screen reader
    reads them aloud or they reorder what follows); newlines and tabs become spaces."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        problems.append((path, "must be a string"))
        return None
    if len(raw) > MAX_ALT_CHARS:
        problems.append((path, f"longer than {MAX_ALT_CHARS} characters"))
        return None
    text = " ".join(_CONTROL_RE.sub("", raw.replace("\t", " ").replace("\n", " ")).split())
    return text or None


# Bluesky takes the most caption tracks, 20; a job naming more is not a real post.
MAX_CAPTION_TRACKS = 20
_LANG_RE = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8}){0,3}$")


def _captions(raw: Any, path: str,
              problems: list[tuple[str, str]]) -> tuple[CaptionRequest, ...]:
    """``captions``: ``[{"src", "lang", "burn_in"}]``, one track per language, at most one
    burned in."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_CAPTION_TRACKS:
        problems.append((path, f"must be an array of at most {MAX_CAPTION_TRACKS} tracks"))
        return ()
    tracks: list[CaptionRequest] = []
    for i, entry in enumerate(raw):
        track = _caption(entry, f"{path}[{i}]", problems)
        if track is None:
            continue
        if any(t.lang.lower() == track.lang.lower() for t in tracks):
            problems.append((f"{path}[{i}].lang", f"a second track for {track.lang!r}"))
        elif track.burn_in and any(t.burn_in for t in tracks):
            problems.append((f"{path}[{i}].burn_in", "only one track can be burned in"))
        else:
            tracks.append(track)
    return tuple(tracks)


def _caption(raw: Any, path: str, problems: list[tuple[str, str]]) -> CaptionRequest | None:
    if not isinstance(raw, dict):
        problems.append((path, "must be an object with src and lang"))
        return None
    unknown = sorted(set(raw) - {"src", "lang", "burn_in"})
    if unknown:
        problems.append((f"{path}.{unknown[0]}", "unknown key (src, lang, burn_in)"))
    ref = parse_media_ref(raw.get("src"), f"{path}.src", problems)
    lang = raw.get("lang")
    if not isinstance(lang, str) or not _LANG_RE.match(lang):
        problems.append((f"{path}.lang", "required: a language tag such as en or pt-BR"))
        lang = None
    burn_in = raw.get("burn_in", False)
    if not isinstance(burn_in, bool):
        problems.append((f"{path}.burn_in", "must be true or false"))
        burn_in = False
    return CaptionRequest(ref, lang, burn_in) if ref is not None and lang else None


def _cover(raw: Any, path: str, problems: list[tuple[str, str]]) -> CoverRequest | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append((path, "must be an object"))
        return None
    thumb = None
    if raw.get("thumbnail") is not None:
        thumb = parse_media_ref(raw["thumbnail"], f"{path}.thumbnail", problems)
    ts = raw.get("video_cover_timestamp_ms")
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, int) or ts < 0):
        problems.append((f"{path}.video_cover_timestamp_ms", "must be a non-negative integer"))
        ts = None
    if thumb is None and ts is None:
        return None
    return CoverRequest(thumbnail=thumb, timestamp_ms=ts)


def _accounts(raw: Any, presets: PresetRegistry,
              problems: list[tuple[str, str]]) -> tuple[Account, ...]:
    if not isinstance(raw, list) or not raw:
        problems.append(("accounts", "must be a non-empty array"))
        return ()
    accounts: list[Account] = []
    seen: set[str] = set()
    for i, acc in enumerate(raw):
        path = f"accounts[{i}]"
        if not isinstance(acc, dict):
            problems.append((path, "must be an object"))
            continue
        acc_id = acc.get("id")
        if acc_id is None or isinstance(acc_id, bool) or not isinstance(acc_id, str | int):
            problems.append((f"{path}.id", "required (a string or an integer)"))
            continue
        acc_id = str(acc_id)
        if acc_id in seen:
            problems.append((f"{path}.id", f"duplicate account id {acc_id!r}"))
        seen.add(acc_id)
        platform_raw = acc.get("platform")
        if not isinstance(platform_raw, str):
            problems.append((f"{path}.platform", "required (a string)"))
            continue
        preset = presets.get(platform_raw)
        if preset is None:
            problems.append((f"{path}.platform", f"unknown platform {platform_raw!r}"))
            continue
        settings = acc.get("settings")
        settings = {} if settings is None else settings
        if not isinstance(settings, dict):
            problems.append((f"{path}.settings", "must be an object"))
            continue
        mode = preset.default_mode
        if preset.mode_setting and settings.get(preset.mode_setting) is not None:
            mode = _enum(settings[preset.mode_setting], tuple(preset.modes),
                         f"{path}.settings.{preset.mode_setting}", problems) or mode
        for name, allowed in preset.enums.items():
            if settings.get(name) is not None:
                _enum(settings[name], allowed, f"{path}.settings.{name}", problems)
        limits = _account_limits(acc.get("conform"), preset, mode, f"{path}.conform", problems)
        accounts.append(Account(id=acc_id, platform=preset.platform, mode=mode,
                                settings=dict(settings), limits=limits))
    return tuple(accounts)


_LIMIT_TYPES: dict[str, tuple[type, ...]] = {
    "max_duration_s": (int, float), "max_video_bytes": (int,), "max_image_bytes": (int,)}


def _account_limits(raw: Any, preset: Preset, mode: str, path: str,
                    problems: list[tuple[str, str]]) -> AccountLimits | None:
    """``accounts[].conform.limits``: typed, positive, and within each variant's ceiling."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append((path, "must be an object"))
        return None
    limits_raw = raw.get("limits")
    if limits_raw is None:
        return None
    path = f"{path}.limits"
    if not isinstance(limits_raw, dict):
        problems.append((path, "must be an object"))
        return None
    values: dict[str, Any] = {}
    for name, value in limits_raw.items():
        types = _LIMIT_TYPES.get(name)
        if types is None:
            problems.append((f"{path}.{name}", "unknown limit (one of "
                             f"{', '.join(_LIMIT_TYPES)})"))
        elif (isinstance(value, bool) or not isinstance(value, types)
              or not isinstance(value, int | float) or not 0 < value < float("inf")):
            kind = "a positive number" if float in types else "a positive integer"
            problems.append((f"{path}.{name}", f"must be {kind}, got {value!r}"))
        else:
            values[name] = value
    limits = AccountLimits(**values)
    chosen = preset.modes.get(mode)
    names = () if chosen is None else (chosen.image, chosen.video, chosen.carousel)
    variants = tuple(preset.variants[n] for n in dict.fromkeys(names)
                     if n is not None and n in preset.variants)
    found = limit_problems(preset, variants, limits)
    problems.extend((f"{path}.{name}", message) for name, message in found)
    return limits if values and not found else None


def _enum(value: Any, allowed: tuple[str, ...], path: str,
          problems: list[tuple[str, str]]) -> str | None:
    """Match case-insensitively and return the canonical spelling."""
    if isinstance(value, str):
        for candidate in allowed:
            if candidate.lower() == value.lower():
                return candidate
    problems.append((path, f"must be one of {', '.join(allowed)}, got {value!r}"))
    return None
