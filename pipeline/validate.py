"""Per-account validation: counts, required media, variants, durations and cover rules.

Each account is judged on its own; one failing account never stops the others. The result
says which variant every medium goes to and which cover the account takes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from .errors import PipelineError, ThumbnailInvalid
from .models import (
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
from .plan.images import animation_fits
from .presets import Mode, Preset, VideoSpec


def _err(code: str, message: str, ci: int | None = None, mi: int | None = None) -> ErrorInfo:
    return ErrorInfo(code=code, message=message, http_status=422, content_index=ci, media_index=mi)


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
    limits = preset.limits
    mode = preset.modes[account.mode]
    errors: list[ErrorInfo] = []
    warnings: list[str] = []
    items: list[Selected] = []
    indices = range(len(job.content)) if limits.thread else range(1)
    if not limits.thread and any(item.media for item in job.content[1:]):
        warnings.append(
            f"{preset.label} publishes content[0] only: media of later content items is not "
            "processed"
        )

    for ci in indices:
        content = job.content[ci]
        chosen, item_errors = _select_item(ci, content.media, probed, preset, mode, job, account)
        errors += item_errors
        items += chosen
        if not item_errors:
            errors += _check_counts(ci, chosen, preset)

    if limits.media_required and not job.content[0].media:
        errors.append(_err("media_required", f"{preset.label} requires at least one image or video",
                           0))
    cover, cover_warnings, cover_errors = _check_cover(job, account, preset, mode, items, probed)
    warnings += cover_warnings
    errors += cover_errors
    warnings += _classed_short(items, preset, cover)
    for sel in items:
        if sel.trim_to_s is not None:
            warnings.append(f"content[{sel.content_index}].media[{sel.media_index}]: trimmed to "
                            f"{sel.trim_to_s:g} s (duration policy 'trim')")
        if sel.loops > 1:
            spec = sel.variant.video
            assert spec is not None
            warnings.append(f"looped_to_minimum: content[{sel.content_index}].media["
                            f"{sel.media_index}]: the animation loops forever and lasts "
                            f"{sel.info.duration_s or 0.0:.2f} s; delivered as {sel.loops} whole "
                            f"loops ({sel.delivered_s:.2f} s) to reach {sel.variant.label}'s "
                            f"{spec.min_duration_s:g} s minimum")
        if sel.still_only:
            warnings.append(f"content[{sel.content_index}].media[{sel.media_index}]: animated "
                            f"image delivered as a still (first frame): {preset.label} cannot "
                            "take it as an animation or a video in this post")
    return AccountCheck(account=account, preset=preset, items=tuple(items), cover=cover,
                        warnings=tuple(warnings), errors=tuple(errors),
                        intended_variants=() if items else _intended_variants(
                            [ref for ci in indices for ref in job.content[ci].media], probed,
                            preset, mode))


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


def _select_item(ci: int, media: tuple[MediaRef, ...], probed: Mapping[MediaRef, Probed],
                 preset: Preset, mode: Mode, job: Job,
                 account: Account) -> tuple[list[Selected], list[ErrorInfo]]:
    errors: list[ErrorInfo] = []
    infos: list[tuple[int, MediaRef, MediaInfo]] = []
    for mi, ref in enumerate(media):
        found = probed.get(ref)
        if isinstance(found, PipelineError):
            errors.append(ErrorInfo.from_error(found, ci, mi))
        elif found is not None:
            infos.append((mi, ref, found))
    if errors:
        return [], errors

    def routes_to_video(info: MediaInfo) -> bool:
        """Where an animated image goes: kept as an animation, made a video, or a still.

        Kept when the image variant animates it within its caps (GIF on X, Facebook, LinkedIn,
        Telegram). Otherwise a GIF *on its own* becomes a video (Bluesky's own rule, and
        Instagram Reels), but only when it is at least as long as the platform's shortest
        video, or loops forever (then whole loops reach it: :func:`loops_needed`); in a post
        with other media, or when too short, it is delivered as its first frame, so a photo
        post stays a photo post (Instagram shows GIFs as stills anyway).
        """
        if info.kind == "video":
            return True
        # A JPEG's extra pictures (MPO stereo pairs, gain maps) are not an animation.
        if not info.animated or info.format_name == "jpeg" or mode.video is None:
            return False
        single = mode.image if len(infos) == 1 or not mode.carousel else mode.carousel
        img_variant = preset.variants.get(single or "")
        if img_variant is None or img_variant.image is None:
            return True  # only a video can carry it (Reels, YouTube)
        if animation_fits(info, img_variant.image) or len(infos) > 1:
            return False
        vspec = preset.variants[mode.video].video
        return vspec is not None and (loops_needed(info, vspec) is not None)

    image_count = sum(1 for _, _, info in infos if not routes_to_video(info))
    image_variant_name = mode.carousel if (mode.carousel and image_count >= 2) else mode.image
    chosen: list[Selected] = []
    for mi, ref, info in infos:
        as_video = routes_to_video(info)
        name = mode.video if as_video else image_variant_name
        if name is None:
            wanted = "videos" if as_video else "images"
            errors.append(_err("media_type_not_supported",
                               f"{preset.label} ({account.mode}) takes no {wanted}", ci, mi))
            continue
        variant = preset.variants[name]
        still_only = (info.animated and info.format_name != "jpeg" and not as_video
                      and variant.image is not None and not animation_fits(info, variant.image))
        trim_to = None
        loops = 1
        if variant.video is not None:
            duration = info.duration_s or 0.0
            spec = variant.video
            needed = loops_needed(info, spec)
            if needed is None:
                endless = info.image is not None and info.image.loops_forever
                errors.append(_err("duration_out_of_range",
                                   f"video is {duration:.2f} s; {variant.label} needs at least "
                                   f"{spec.min_duration_s:g} s" + (
                                       " (whole loops of this animation would pass the "
                                       f"{spec.max_duration_s:g} s maximum)" if endless
                                       and spec.max_duration_s is not None else ""), ci, mi))
                continue
            loops = needed
            duration *= loops
            if spec.max_duration_s is not None and duration > spec.max_duration_s + 1e-3:
                if job.duration_policy != "trim":
                    errors.append(_err("duration_out_of_range",
                                       f"video is {duration:.2f} s; {variant.label} takes at most "
                                       f"{spec.max_duration_s:g} s (length is never changed "
                                       "unless the 'trim' policy is chosen)", ci, mi))
                    continue
                trim_to = spec.max_duration_s
        chosen.append(Selected(content_index=ci, media_index=mi, ref=ref, info=info,
                               variant=variant, as_video=as_video and info.kind == "image",
                               still_only=still_only, carousel_size=0, trim_to_s=trim_to,
                               loops=loops))
    images = [s for s in chosen if s.variant.kind == "image"]
    chosen = [
        Selected(s.content_index, s.media_index, s.ref, s.info, s.variant, s.as_video,
                 s.still_only, len(images) if s.variant.kind == "image" else 0, s.trim_to_s,
                 s.loops)
        for s in chosen
    ]
    return chosen, errors


def loops_needed(info: MediaInfo, spec: VideoSpec) -> int | None:
    """How many whole plays of the medium a video variant takes: 1, more, or None (refused).

    Only an animation whose loop count says "forever" (GIF NETSCAPE 0, APNG num_plays 0, WebP
    loop 0) is played again to reach the minimum duration: to its author it is an endless
    clip. N = ceil(minimum / loop), never a cut loop; N loops over the maximum are refused. An
    animation that plays once, or a finite number of times, is taken at its own length:
    viewers disagree on what a finite GIF count means (k or k + 1 plays), so no length is
    made up for it.
    """
    duration = info.duration_s or 0.0
    if duration >= spec.min_duration_s:
        return 1
    if info.image is None or not info.image.loops_forever or duration <= 0:
        return None
    loops = math.ceil(spec.min_duration_s / duration - 1e-9)
    if spec.max_duration_s is not None and loops * duration > spec.max_duration_s + 1e-3:
        return None
    return loops


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
        errors.append(_err("too_many_images",
                           f"{preset.label} takes {what} per post; got {images}", ci))
    if videos > limits.max_videos:
        errors.append(_err("too_many_videos", f"{preset.label} takes at most "
                           f"{limits.max_videos} video(s) per post; got {videos}", ci))
    if not errors and limits.max_items is not None and images + videos > limits.max_items:
        # Checked after the per-kind counts, so 11 images are one error, not two.
        errors.append(_err("too_many_items",
                           f"{preset.label} takes at most {limits.max_items} items (images and "
                           f"videos together) per post; got {images + videos} ({images} "
                           f"image(s), {videos} video(s))", ci))
    if images and videos and not limits.allow_mixed:
        errors.append(_err("mixed_media_not_allowed",
                           f"{preset.label} does not mix images and videos in one post", ci))
    return errors


def _check_cover(job: Job, account: Account, preset: Preset, mode: Mode,
                 items: list[Selected], probed: Mapping[MediaRef, Probed]
                 ) -> tuple[CoverChoice | None, list[str], list[ErrorInfo]]:
    """The API's cover rules for one account: which cover it takes, or why none.

    Only ``content[0].cover_image`` applies, and only to the account's video of content[0].
    A ``frame`` variant (TikTok) takes ``video_cover_timestamp_ms`` only, an ``image`` variant
    (YouTube, Instagram Reels, Facebook) the ``thumbnail`` only; a field the account cannot use
    is an error when it is the only one given, a warning when the other one is there too.
    ``image_or_frame`` (Pinterest video pins, which need a cover) takes the thumbnail, else the
    requested frame, else the variant's default frame.
    """
    warnings: list[str] = []
    errors: list[ErrorInfo] = []
    for ci, item in enumerate(job.content[1:], start=1):
        if item.cover is not None:
            warnings.append(f"content[{ci}].cover_image is ignored: only content[0]'s cover "
                            "applies")
    request = job.content[0].cover
    video = next((s for s in items if s.content_index == 0 and s.variant.kind == "video"), None)
    spec = video.variant.cover if video is not None else None
    if video is None or spec is None:
        if request is not None:
            reason = ("the post has no video" if video is None
                      else mode.cover_ignored or f"{video.variant.label} takes no cover")
            warnings.append(f"cover_image ignored: {reason}")
        return None, warnings, errors
    if mode.cover_ignored:
        if request is not None:
            warnings.append(f"cover_image ignored: {mode.cover_ignored}")
        return None, warnings, errors
    ts = request.timestamp_ms if request else None
    thumb = request.thumbnail if request else None
    duration_ms = round(video.delivered_s * 1000)

    if spec.source == "frame":
        if ts is None:
            if thumb is not None:
                errors.append(_err("cover_not_supported",
                                   f"{preset.label} takes a cover frame by "
                                   "video_cover_timestamp_ms only, not a thumbnail image", 0))
            return None, warnings, errors
        if thumb is not None:
            warnings.append(f"cover_image.thumbnail ignored: {preset.label} uses the frame at "
                            "video_cover_timestamp_ms")
        if ts >= duration_ms:
            errors.append(_err("cover_timestamp_out_of_range",
                               f"video_cover_timestamp_ms {ts} is outside the video "
                               f"[0, {duration_ms}) ms", 0))
            return None, warnings, errors
        return CoverChoice("frame", spec, video, timestamp_ms=ts), warnings, errors

    if thumb is not None:
        if ts is not None:
            # image_or_frame (Pinterest) prefers the uploaded picture too: say the frame is unused.
            warnings.append(f"video_cover_timestamp_ms ignored: {preset.label} takes the "
                            "thumbnail image")
        found = probed.get(thumb)
        if isinstance(found, PipelineError) or (found is not None and found.kind != "image"):
            why = found.message if isinstance(found, PipelineError) else "it is not an image"
            code = found.code if isinstance(found, PipelineError) and found.code in (
                "media_not_found", "url_not_allowed", "download_failed", "too_large",
                "invalid_library_id") else ThumbnailInvalid.code
            errors.append(ErrorInfo(code=code, message=f"cover thumbnail unusable: {why}",
                                    http_status=404 if code == "media_not_found" else 400,
                                    content_index=0))
            return None, warnings, errors
        if spec.platform_ignores:
            warnings.append(spec.platform_ignores)
        return CoverChoice("image", spec, video, thumbnail=thumb), warnings, errors

    if spec.source == "image":
        if ts is not None:
            errors.append(_err("cover_not_supported",
                               f"{preset.label} takes a custom thumbnail image only, not "
                               "video_cover_timestamp_ms", 0))
        return None, warnings, errors

    # image_or_frame (Pinterest): the thumbnail, else the requested frame, else the default.
    at = ts if ts is not None else spec.default_at_ms or 0
    if ts is not None and ts >= duration_ms:
        errors.append(_err("cover_timestamp_out_of_range",
                           f"video_cover_timestamp_ms {ts} is outside the video "
                           f"[0, {duration_ms}) ms", 0))
        return None, warnings, errors
    at = min(at, max(0, duration_ms - 1))
    return (CoverChoice("frame", spec, video, timestamp_ms=at, default_frame=ts is None),
            warnings, errors)
