"""The job plan: every output of a job, deduplicated across accounts."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from fractions import Fraction

from ..models import AccountCheck, MediaInfo, Selected
from ..presets import FitPolicy
from .covers import plan_cover
from .images import carousel_frame, plan_image
from .targets import (
    CoverPlan,
    Geometry,
    ReframeShot,
    Rendition,
    Target,
    Use,
    VideoTarget,
    target_key,
)
from .videos import merge_video_targets, plan_video, shared_decodes


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


def plan_job(checks: Iterable[AccountCheck], *, sha_of: dict[str, str],
             thumb_infos: dict[str, MediaInfo], x264_preset: str = "medium",
             fit: FitPolicy | None = None,
             reframes: Mapping[tuple[str, int, int], tuple[ReframeShot, ...] | None] | None
             = None) -> JobPlan:
    """Plan all outputs of a job; identical targets for the same source share one rendition.

    Args:
        checks: validated accounts (failed ones are carried through untouched).
        sha_of: source sha256 by media reference text.
        thumb_infos: probed thumbnails by reference text.
        x264_preset: speed/quality trade-off for encodes (part of the output key).
        fit: the job's ``conform.fit``: overrides every variant's fit for a shape change.
        reframes: smart framing's analysis by (source sha256, crop width, crop height), see
            :mod:`pipeline.framing`; None: not analysed yet (smart crops stay centred). A
            smart target whose analysis is missing or found no subject takes the variant's
            normal fit, with a ``no_subject`` warning.
    """
    renditions: dict[str, Rendition] = {}
    covers: dict[str, CoverPlan] = {}
    accounts: list[AccountPlan] = []
    for check in checks:
        if not check.ok:
            accounts.append(AccountPlan(check, (), None, ()))
            continue
        media: list[tuple[Selected, str]] = []
        warnings: list[str] = []
        frames = _carousel_frames(check)
        video_geometry: dict[tuple[int, int], Geometry] = {}
        for sel in check.items:
            ref_text = str(sel.ref)
            sha = sha_of[ref_text]
            limits = check.preset.limits
            target: Target
            if sel.variant.kind == "image":
                spec = sel.variant.image
                assert spec is not None
                max_bytes = min(spec.max_bytes, limits.max_image_bytes or spec.max_bytes)
                frame = frames.get((sel.content_index, sel.variant.id))
                image_plan = functools.partial(
                    plan_image, sel.info, spec, max_bytes=max_bytes,
                    forced_aspect=frame[0] if frame else None,
                    forced_size=frame[1] if frame else None,
                    keep_animation=not sel.still_only)
                target, acts, warns = image_plan(fit=fit)
                if target.geometry.fit == "smart" and reframes is not None:
                    found = reframes.get(_framing_key(sha, target.geometry))
                    if found:
                        target = replace(target, geometry=_moved(target.geometry, found[0]))
                    else:
                        target, acts, warns = image_plan(fit=_fallback(spec.fit))
                        warns = [*warns, _no_subject(target.geometry.fit)]
            else:
                vspec = sel.variant.video
                assert vspec is not None
                max_bytes = min(vspec.max_bytes, limits.max_video_bytes or vspec.max_bytes)
                video_plan = functools.partial(
                    plan_video, sel.info, vspec, max_bytes=max_bytes, trim_s=sel.trim_to_s,
                    from_image=sel.as_video, x264_preset=x264_preset, loops=sel.loops)
                vtarget, acts, warns = video_plan(fit=fit)
                if (vtarget.geometry.fit == "smart" and reframes is not None
                        and vtarget.action == "transcode"):
                    found = reframes.get(_framing_key(sha, vtarget.geometry))
                    if found:
                        vtarget = replace(vtarget, reframe=found,
                                          geometry=_moved(vtarget.geometry, found[0]))
                    else:
                        vtarget, acts, warns = video_plan(fit=_fallback(vspec.fit))
                        warns = [*warns, _no_subject(vtarget.geometry.fit)]
                target = vtarget
                video_geometry[(sel.content_index, sel.media_index)] = target.geometry
            key = target_key(sha, target)
            use = Use(check.account.id, check.preset.platform, sel.variant.id,
                      sel.content_index, sel.media_index)
            existing = renditions.get(key)
            if existing is None:
                ext = _ext(target, sel.info)
                renditions[key] = Rendition(key=key, source_sha256=sha, ref_text=ref_text,
                                            target=target, actions=tuple(acts),
                                            warnings=tuple(warns), name=f"{sel.variant.id}.{ext}",
                                            uses=(use,))
            else:
                shared_target = existing.target
                if isinstance(shared_target, VideoTarget) and isinstance(target, VideoTarget):
                    shared_target = merge_video_targets(shared_target, target)
                renditions[key] = replace(existing, target=shared_target,
                                          uses=(*existing.uses, use))
            media.append((sel, key))
        cover_key = None
        if check.cover is not None:
            choice = check.cover
            vkey = next(k for s, k in media if s is choice.video)
            thumb_info = thumb_infos.get(str(choice.thumbnail)) if choice.thumbnail else None
            geom = video_geometry.get((choice.video.content_index, choice.video.media_index))
            ctarget = plan_cover(choice, geom, thumb_info)
            thumb_sha = sha_of.get(str(choice.thumbnail)) if choice.thumbnail else None
            # A frame is addressed by the video it is taken from; a thumbnail by its own bytes
            # (so accounts with different videos but the same thumbnail target share it).
            base = thumb_sha if thumb_sha else vkey
            cover_key = target_key(base, ctarget, extra="cover")
            prev = covers.get(cover_key)
            accounts_using = (*(prev.accounts if prev else ()), check.account.id)
            covers[cover_key] = CoverPlan(
                cover_key, ctarget, prev.rendition_key if prev else vkey, thumb_sha,
                accounts_using, str(choice.thumbnail) if choice.thumbnail else None)
        accounts.append(AccountPlan(check, tuple(media), cover_key, tuple(warnings)))
    return JobPlan(tuple(renditions.values()), tuple(covers.values()), tuple(accounts),
                   decodes=shared_decodes(renditions.values()))


def _framing_key(sha: str, g: Geometry) -> tuple[str, int, int]:
    return (sha, g.crop_width, g.crop_height)


def _moved(g: Geometry, shot: ReframeShot) -> Geometry:
    """The crop window where smart framing puts it (a video's: where its first shot starts)."""
    offset = shot.keys[0][1]
    return replace(g, crop_x=offset) if shot.axis == "x" else replace(g, crop_y=offset)


def _fallback(fit: FitPolicy) -> FitPolicy:
    """The variant's normal fit; a variant that asks for smart itself falls back to a crop."""
    return "crop" if fit == "smart" else fit


def _no_subject(used: str) -> str:
    return f"no_subject: smart framing found no confident subject; used fit {used}"


def _carousel_frames(check: AccountCheck
                     ) -> dict[tuple[int, str], tuple[Fraction, tuple[int, int] | None]]:
    """Per (content item, image variant) carousel: the shape and size every item takes."""
    groups: dict[tuple[int, str], list[Selected]] = {}
    for sel in check.items:
        spec = sel.variant.image
        if spec is not None and sel.carousel_size >= 2 and spec.carousel != "none":
            groups.setdefault((sel.content_index, sel.variant.id), []).append(sel)
    frames: dict[tuple[int, str], tuple[Fraction, tuple[int, int] | None]] = {}
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
