"""Per-account validation: counts, required media, variants, durations and cover rules.

Each account is judged on its own; one failing account never stops the others. The result
says which variant every medium goes to (:mod:`.media`) and which cover the account takes
(:mod:`.cover`); this module puts them together with the post-level counts and warnings.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import PipelineError
from ..models import (
    Account,
    AccountCheck,
    CoverChoice,
    ErrorInfo,
    Job,
    MediaInfo,
    MediaRef,
    Probed,
    Selected,
)
from ..presets import Mode, Preset
from .cover import check_cover
from .media import loops_needed, select_item
from .problem import unprocessable

__all__ = ["check_account", "loops_needed"]


def check_account(job: Job, account: Account, preset: Preset,
                  probed: Mapping[MediaRef, Probed]) -> AccountCheck:
    """Validate the post for one account.

    Args:
        job: the parsed job.
        account: the account to judge.
        preset: its platform preset.
        probed: what probing found for every medium (and thumbnail), or the error it raised.

    Returns:
        The chosen variants and cover, warnings, and every error found (empty when ok).
    """
    mode = preset.modes[account.mode]
    indices = range(len(job.content)) if preset.limits.thread else range(1)
    errors: list[ErrorInfo] = []
    warnings = _unpublished_media(job, preset)
    items: list[Selected] = []
    for ci in indices:
        chosen, item_errors = select_item(ci, job.content[ci].media, probed, preset, mode, job,
                                          account)
        errors += item_errors
        items += chosen
        if not item_errors:
            errors += _check_counts(ci, chosen, preset)
    if preset.limits.media_required and not job.content[0].media:
        errors.append(unprocessable(
            "media_required", f"{preset.label} requires at least one image or video", 0))
    cover, cover_warnings, cover_errors = check_cover(job, preset, mode, items, probed)
    warnings += cover_warnings
    errors += cover_errors
    warnings += _classed_short(items, preset, cover)
    warnings += [w for sel in items for w in _delivery_warnings(sel, preset)]
    intended = () if items else _intended_variants(
        [ref for ci in indices for ref in job.content[ci].media], probed, preset, mode)
    return AccountCheck(account=account, preset=preset, items=tuple(items), cover=cover,
                        warnings=tuple(warnings), errors=tuple(errors),
                        intended_variants=intended)


def _unpublished_media(job: Job, preset: Preset) -> list[str]:
    """A platform without threads takes content[0] only: say when later items carry media."""
    if preset.limits.thread or not any(item.media for item in job.content[1:]):
        return []
    return [f"{preset.label} publishes content[0] only: media of later content items is not "
            "processed"]


def _delivery_warnings(sel: Selected, preset: Preset) -> list[str]:
    """What was changed on the way to delivery: trimmed, looped, or reduced to a still."""
    where = f"content[{sel.content_index}].media[{sel.media_index}]"
    warnings: list[str] = []
    if sel.trim_to_s is not None:
        warnings.append(f"{where}: trimmed to {sel.trim_to_s:g} s (duration policy 'trim')")
    if sel.loops > 1:
        spec = sel.variant.video
        assert spec is not None
        warnings.append(f"looped_to_minimum: {where}: the animation loops forever and lasts "
                        f"{sel.info.duration_s or 0.0:.2f} s; delivered as {sel.loops} whole "
                        f"loops ({sel.delivered_s:.2f} s) to reach {sel.variant.label}'s "
                        f"{spec.min_duration_s:g} s minimum")
    if sel.still_only:
        warnings.append(f"{where}: animated image delivered as a still (first frame): "
                        f"{preset.label} cannot take it as an animation or a video in this post")
    return warnings


def _intended_variants(refs: list[MediaRef], probed: Mapping[MediaRef, Probed], preset: Preset,
                       mode: Mode) -> tuple[str, ...]:
    """Variant ids by the kind of each medium, where probing (or its error) tells the kind."""
    kinds: list[str] = []
    for ref in refs:
        found = probed.get(ref)
        kind = (found.kind if isinstance(found, MediaInfo)
                else found.details.get("media_kind") if isinstance(found, PipelineError)
                else None)
        if isinstance(kind, str):
            kinds.append(kind)
    images = kinds.count("image")
    names = [mode.carousel if mode.carousel and images >= 2 else mode.image] if images else []
    if "video" in kinds:
        names.append(mode.video)
    return tuple(dict.fromkeys(preset.variants[n].id for n in names if n))


def _classed_short(items: list[Selected], preset: Preset,
                   cover: CoverChoice | None) -> list[str]:
    """Warn where the platform will class a video as short-form whatever mode was asked for.

    YouTube makes every square or vertical upload of 3 min or less a Short and then ignores
    its custom thumbnail. The thumbnail is still conformed and delivered: it costs little,
    and it is used if YouTube classes the video otherwise.
    """
    warnings: list[str] = []
    for sel in items:
        spec = sel.variant.video
        if (spec is None or spec.classed_short_max_s is None or sel.info.width > sel.info.height
                or sel.delivered_s > spec.classed_short_max_s + 1e-3):
            continue
        thumb = (" and ignores its custom thumbnail (still delivered)"
                 if cover is not None and cover.video is sel and cover.thumbnail is not None
                 else "")
        warnings.append(f"{preset.platform}_will_treat_as_short: content[{sel.content_index}]."
                        f"media[{sel.media_index}]: a square or vertical video of "
                        f"{spec.classed_short_max_s:g} s or less is classed by {preset.label} "
                        f"as a Short{thumb}, although {sel.variant.label} was asked for")
    return warnings


def _check_counts(ci: int, chosen: list[Selected], preset: Preset) -> list[ErrorInfo]:
    limits = preset.limits
    images = sum(1 for s in chosen if s.variant.kind == "image")
    videos = sum(1 for s in chosen if s.variant.kind == "video")
    errors: list[ErrorInfo] = []
    if images > limits.max_images:
        what = "no images" if limits.max_images == 0 else f"at most {limits.max_images} images"
        errors.append(unprocessable(
            "too_many_images", f"{preset.label} takes {what} per post; got {images}", ci))
    if videos > limits.max_videos:
        errors.append(unprocessable(
            "too_many_videos", f"{preset.label} takes at most {limits.max_videos} video(s) per "
            f"post; got {videos}", ci))
    if not errors and limits.max_items is not None and images + videos > limits.max_items:
        # Checked after the per-kind counts, so 11 images are one error, not two.
        errors.append(unprocessable(
            "too_many_items", f"{preset.label} takes at most {limits.max_items} items (images "
            f"and videos together) per post; got {images + videos} ({images} image(s), "
            f"{videos} video(s))", ci))
    if images and videos and not limits.allow_mixed:
        errors.append(unprocessable(
            "mixed_media_not_allowed",
            f"{preset.label} does not mix images and videos in one post", ci))
    return errors

