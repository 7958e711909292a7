"""The job plan: every output of a job, deduplicated across accounts."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from fractions import Fraction

from ..errors import JobInvalid
from ..geometry import Geometry
from ..models import Account, AccountCheck, CoverChoice, MediaInfo, MediaRef, Selected
from ..presets import FitPolicy, Limits, Preset, PresetRegistry, with_account_limits
from .burnin import BurnSource, burn_in_for
from .covers import plan_cover
from .images import carousel_frame, plan_image
from .sharing import Owned, Share, Shared, share_outputs
from .targets import (
    CoverPlan,
    ImageTarget,
    ReframeShot,
    Rendition,
    Target,
    Use,
    VideoTarget,
    target_key,
)
from .videos import merge_video_targets, plan_video, shared_decodes

# A carousel's shape, and for a same-size carousel its size (see carousel_frame).
_Frame = tuple[Fraction, tuple[int, int] | None]


@dataclass(frozen=True, slots=True)
class AccountPlan:
    """Per account: which rendition each medium uses, and the cover."""

    check: AccountCheck
    media: tuple[tuple[Selected, str], ...]   # (selection, rendition key)
    cover_key: str | None
    warnings: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class JobPlan:
    """Everything to produce for a job, deduplicated."""

    renditions: tuple[Rendition, ...]
    covers: tuple[CoverPlan, ...]
    accounts: tuple[AccountPlan, ...]
    # Rendition keys encoded together from one decode of their source (see shared_decodes).
    decodes: tuple[tuple[str, ...], ...] = ()
    # Accounts that take an output planned for another account, or why they keep their own.
    shares: tuple[Share, ...] = ()


@dataclass(frozen=True, slots=True)
class _Options:
    """The job-wide planning choices every medium is planned with (see :func:`plan_job`)."""

    x264_preset: str
    fit: FitPolicy | None
    reframes: Mapping[tuple[str, int, int], tuple[ReframeShot, ...] | None] | None
    burn: Mapping[int, BurnSource]


def plan_job(checks: Iterable[AccountCheck], *, sha_of: Mapping[MediaRef, str],
             thumb_infos: Mapping[MediaRef, MediaInfo], x264_preset: str = "medium",
             fit: FitPolicy | None = None,
             reframes: Mapping[tuple[str, int, int], tuple[ReframeShot, ...] | None] | None
             = None, share: bool = True,
             burn: Mapping[int, BurnSource] | None = None) -> JobPlan:
    """Plan all outputs of a job; identical targets for the same source share one rendition.

    Args:
        checks: validated accounts (failed ones are carried through untouched).
        sha_of: source sha256 by media reference.
        thumb_infos: probed thumbnails by reference.
        x264_preset: speed/quality trade-off for encodes (part of the output key).
        fit: the job's ``conform.fit``: overrides every variant's fit for a shape change.
        reframes: smart framing's analysis by (source sha256, crop width, crop height), see
            :mod:`pipeline.vision.framing`; None: not analysed yet (smart crops stay centred). A
            smart target whose analysis is missing or found no subject takes the variant's
            normal fit, with a ``no_subject`` warning; an empty path (one that cannot be
            rendered) does too, with a ``framing_unavailable`` warning.
        share: let an account take an encode planned for another account when it serves
            it (:mod:`pipeline.plan.sharing`); off only to measure what sharing saves.
        burn: each content item's burned-in caption track (by content index), drawn into
            every video of that item.

    Raises:
        Nothing: every check has been validated.
    """
    options = _Options(x264_preset, fit, reframes, burn or {})
    renditions: dict[str, Rendition] = {}
    owned: list[Owned] = []
    planned: list[tuple[AccountCheck, list[tuple[Selected, str]]]] = []
    for check in checks:
        media: list[tuple[Selected, str]] = []
        planned.append((check, media))
        if not check.ok:
            continue
        frames = _carousel_frames(check)
        for sel in check.items:
            sha = sha_of[sel.ref]
            target, acts, warns = _plan_medium(
                sel, check.preset.limits, sha, frames.get((sel.content_index, sel.variant.id)),
                options)
            use = Use(check.account.id, check.preset.platform, sel.variant.id,
                      sel.content_index, sel.media_index, variant=sel.variant,
                      preset=check.preset)
            key = _add_use(renditions, sel, sha, target, acts, warns, use)
            media.append((sel, key))
            if isinstance(target, VideoTarget):
                owned.append(Owned(use, key, target, sel.delivered_s))
    shared = share_outputs(renditions, owned) if share else Shared(renditions, {}, ())
    return _with_covers(planned, shared, sha_of=sha_of, thumb_infos=thumb_infos)


def _with_covers(planned: list[tuple[AccountCheck, list[tuple[Selected, str]]]],
                 shared: Shared, *, sha_of: Mapping[MediaRef, str],
                 thumb_infos: Mapping[MediaRef, MediaInfo]) -> JobPlan:
    """The job plan: each account's media where sharing put them, and covers made from those."""
    renditions = shared.renditions
    covers: dict[str, CoverPlan] = {}
    accounts: list[AccountPlan] = []
    for check, own_media in planned:
        if not check.ok:
            accounts.append(AccountPlan(check, (), None, ()))
            continue
        media = [(sel, shared.moved.get((check.account.id, sel.content_index, sel.media_index),
                                        key)) for sel, key in own_media]
        video_geometry = {(sel.content_index, sel.media_index): t.geometry for sel, key in media
                          if isinstance(t := renditions[key].target, VideoTarget)}
        cover_key = None
        if check.cover is not None:
            cover_key = _add_cover(covers, check, check.cover, media, video_geometry,
                                   sha_of=sha_of, thumb_infos=thumb_infos)
        accounts.append(AccountPlan(check, tuple(media), cover_key, ()))
    # Renditions are replaced as accounts add their uses, so covers link to the final ones.
    linked = tuple(replace(c, rendition=renditions[c.rendition_key]) for c in covers.values())
    return JobPlan(tuple(renditions.values()), linked, tuple(accounts),
                   decodes=shared_decodes(renditions.values()), shares=shared.shares)


def account_preset(account: Account, presets: PresetRegistry) -> Preset:
    """The preset an account's platform names, with the account's own limits in place.

    Job parsing only accepts known platforms, so this fails only for a job built in code.

    Raises:
        JobInvalid: no preset has that platform name or alias.
    """
    preset = presets.get(account.platform)
    if preset is None:
        raise JobInvalid([(f"accounts[{account.id}].platform",
                           f"unknown platform {account.platform!r}")])
    return with_account_limits(preset, account.limits)


def _plan_medium(sel: Selected, limits: Limits, sha: str, frame: _Frame | None,
                 options: _Options) -> tuple[Target, list[str], list[str]]:
    """One medium for one account's variant, with smart framing's window when it has one."""
    if sel.variant.kind == "image":
        return _plan_image_medium(sel, limits, sha, frame, options)
    return _plan_video_medium(sel, limits, sha, options)


def _plan_image_medium(sel: Selected, limits: Limits, sha: str, frame: _Frame | None,
                       options: _Options) -> tuple[ImageTarget, list[str], list[str]]:
    spec = sel.variant.image
    assert spec is not None
    max_bytes = min(spec.max_bytes, limits.max_image_bytes or spec.max_bytes)
    image_plan = functools.partial(
        plan_image, sel.info, spec, max_bytes=max_bytes,
        forced_aspect=frame[0] if frame else None, forced_size=frame[1] if frame else None,
        keep_animation=not sel.still_only)
    target, acts, warns = image_plan(fit=options.fit)
    if target.geometry.fit != "smart" or options.reframes is None:
        return target, acts, warns
    found = options.reframes.get(_framing_key(sha, target.geometry))
    if found:
        return replace(target, geometry=_moved(target.geometry, found[0])), acts, warns
    target, acts, warns = image_plan(fit=_fallback(spec.fit))
    return target, acts, [*warns, _no_framing(found, target.geometry.fit)]


def _plan_video_medium(sel: Selected, limits: Limits, sha: str,
                       options: _Options) -> tuple[VideoTarget, list[str], list[str]]:
    spec = sel.variant.video
    assert spec is not None
    max_bytes = min(spec.max_bytes, limits.max_video_bytes or spec.max_bytes)
    video_plan = functools.partial(
        plan_video, sel.info, spec, max_bytes=max_bytes, trim_s=sel.trim_to_s,
        from_image=sel.as_video, x264_preset=options.x264_preset, loops=sel.loops,
        surface=sel.variant.id, burn_in=burn_in_for(sel, options.burn.get(sel.content_index)))
    target, acts, warns = video_plan(fit=options.fit)
    if (target.geometry.fit != "smart" or options.reframes is None
            or target.action != "transcode"):
        return target, acts, warns
    found = options.reframes.get(_framing_key(sha, target.geometry))
    if found:
        moved = _moved(target.geometry, found[0])
        return replace(target, reframe=found, geometry=moved), acts, warns
    target, acts, warns = video_plan(fit=_fallback(spec.fit))
    return target, acts, [*warns, _no_framing(found, target.geometry.fit)]


def _add_use(renditions: dict[str, Rendition], sel: Selected, sha: str, target: Target,
             acts: list[str], warns: list[str], use: Use) -> str:
    """Add one use of a target to the output that makes it (new, or shared); its key."""
    key = target_key(sha, target)
    existing = renditions.get(key)
    if existing is None:
        renditions[key] = Rendition(
            key=key, source_sha256=sha, ref_text=str(sel.ref), ref=sel.ref, target=target,
            actions=tuple(acts), warnings=tuple(warns),
            name=f"{sel.variant.id}.{_ext(target, sel.info)}", uses=(use,))
        return key
    shared = existing.target
    if isinstance(shared, VideoTarget) and isinstance(target, VideoTarget):
        shared = merge_video_targets(shared, target)
    # Each surface sharing the output is told about its own recommended size (the manifest
    # shows an account only its surface's low_resolution warning).
    small = [w for w in warns if w.startswith("low_resolution:")]
    renditions[key] = replace(existing, target=shared, uses=(*existing.uses, use),
                              warnings=tuple(dict.fromkeys([*existing.warnings, *small])))
    return key


def _add_cover(covers: dict[str, CoverPlan], check: AccountCheck, choice: CoverChoice,
               media: list[tuple[Selected, str]],
               video_geometry: Mapping[tuple[int, int], Geometry], *,
               sha_of: Mapping[MediaRef, str], thumb_infos: Mapping[MediaRef, MediaInfo]
               ) -> str:
    """Add the account's cover to the covers to make (new, or shared); its key.

    ``media`` pairs each of the account's selections with its rendition key.
    """
    vkey = next(k for s, k in media if s is choice.video)
    thumb = choice.thumbnail
    thumb_info = thumb_infos.get(thumb) if thumb else None
    geom = video_geometry.get((choice.video.content_index, choice.video.media_index))
    ctarget = plan_cover(choice, geom, thumb_info)
    thumb_sha = sha_of.get(thumb) if thumb else None
    # A frame is addressed by the video it is taken from; a thumbnail by its own bytes
    # (so accounts with different videos but the same thumbnail target share it).
    cover_key = target_key(thumb_sha or vkey, ctarget, extra="cover")
    prev = covers.get(cover_key)
    covers[cover_key] = CoverPlan(
        cover_key, ctarget, prev.rendition_key if prev else vkey, thumb_sha,
        (*(prev.accounts if prev else ()), check.account.id), thumbnail=thumb)
    return cover_key


def _framing_key(sha: str, g: Geometry) -> tuple[str, int, int]:
    return (sha, g.crop_width, g.crop_height)


def _moved(g: Geometry, shot: ReframeShot) -> Geometry:
    """The crop window where smart framing puts it (a video's: where its first shot starts)."""
    offset = shot.keys[0][1]
    return replace(g, crop_x=offset) if shot.axis == "x" else replace(g, crop_y=offset)


def _fallback(fit: FitPolicy) -> FitPolicy:
    """The variant's normal fit; a variant that asks for smart itself falls back to a crop."""
    return "crop" if fit == "smart" else fit


def _no_framing(found: tuple[ReframeShot, ...] | None, used: str) -> str:
    """The warning for a smart target that takes its variant's fit: no subject (None), or a
    path that cannot be rendered (an empty one)."""
    if found is None:
        return f"no_subject: smart framing found no confident subject; used fit {used}"
    return f"framing_unavailable: the framing path cannot be rendered; used fit {used}"


def _carousel_frames(check: AccountCheck) -> dict[tuple[int, str], _Frame]:
    """Per (content item, image variant) carousel: the shape and size every item takes."""
    groups: dict[tuple[int, str], list[Selected]] = {}
    for sel in check.items:
        spec = sel.variant.image
        if spec is not None and sel.carousel_size >= 2 and spec.carousel != "none":
            groups.setdefault((sel.content_index, sel.variant.id), []).append(sel)
    frames: dict[tuple[int, str], _Frame] = {}
    for key, sels in groups.items():
        spec = sels[0].variant.image
        assert spec is not None
        frames[key] = carousel_frame([s.info for s in sels], spec)
    return frames


def _ext(target: Target, info: MediaInfo) -> str:
    if isinstance(target, VideoTarget):
        if target.action == "passthrough" and info.format_name == "mov":
            return "mov"
        return "mp4"
    return {"jpeg": "jpg", "heif": "heic"}.get(target.format, target.format)
