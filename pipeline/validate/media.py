"""Which variant each medium of a content item goes to, and how its length is made to fit.

Animated images are routed here (kept, made a video, or a still) and durations are judged
against the video variant: whole loops of an endless animation, or a trim when asked for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace

from ..errors import PipelineError
from ..models import Account, ErrorInfo, Job, MediaInfo, MediaRef, Probed, Selected
from ..presets import Mode, Preset, Variant, VideoSpec
from ..rules import animation_fits
from .problem import unprocessable


def select_item(ci: int, media: tuple[MediaRef, ...], probed: Mapping[MediaRef, Probed],
                preset: Preset, mode: Mode, job: Job,
                account: Account) -> tuple[list[Selected], list[ErrorInfo]]:
    """The variant each medium of content item ``ci`` goes to, or why it cannot go anywhere.

    A probing error for any medium of the item stops the item: its errors are all reported.
    """
    infos, errors = _probed_infos(ci, media, probed)
    if errors:
        return [], errors
    routes = [_routes_to_video(info, len(infos), preset, mode) for _, _, info in infos]
    image_count = routes.count(False)
    image_variant_name = mode.carousel if (mode.carousel and image_count >= 2) else mode.image
    chosen: list[Selected] = []
    for (mi, ref, info), as_video in zip(infos, routes, strict=True):
        name = mode.video if as_video else image_variant_name
        if name is None:
            wanted = "videos" if as_video else "images"
            errors.append(unprocessable(
                "media_type_not_supported", f"{preset.label} ({account.mode}) takes no {wanted}",
                ci, mi))
            continue
        variant = preset.variants[name]
        fit = _fit_duration(info, variant, job, ci, mi)
        if isinstance(fit, ErrorInfo):
            errors.append(fit)
            continue
        loops, trim_to = fit
        chosen.append(Selected(content_index=ci, media_index=mi, ref=ref, info=info,
                               variant=variant, as_video=as_video and info.kind == "image",
                               still_only=_still_only(info, variant, as_video), carousel_size=0,
                               trim_to_s=trim_to, loops=loops))
    images = sum(1 for s in chosen if s.variant.kind == "image")
    return [replace(s, carousel_size=images if s.variant.kind == "image" else 0)
            for s in chosen], errors


def _probed_infos(ci: int, media: tuple[MediaRef, ...], probed: Mapping[MediaRef, Probed]
                  ) -> tuple[list[tuple[int, MediaRef, MediaInfo]], list[ErrorInfo]]:
    """The probed media of one item by index, and the probing errors of the others."""
    errors: list[ErrorInfo] = []
    infos: list[tuple[int, MediaRef, MediaInfo]] = []
    for mi, ref in enumerate(media):
        found = probed.get(ref)
        if isinstance(found, PipelineError):
            errors.append(ErrorInfo.from_error(found, ci, mi))
        elif found is not None:
            infos.append((mi, ref, found))
    return infos, errors


def _routes_to_video(info: MediaInfo, post_size: int, preset: Preset, mode: Mode) -> bool:
    """Where an animated image goes: kept as an animation, made a video, or a still.

    Kept when the image variant animates it within its caps (GIF on X, Facebook, LinkedIn,
    Telegram). Otherwise a GIF *on its own* (``post_size`` 1) becomes a video (Bluesky's own
    rule, and Instagram Reels), but only when it is at least as long as the platform's shortest
    video, or loops forever (then whole loops reach it: :func:`loops_needed`); in a post
    with other media, or when too short, it is delivered as its first frame, so a photo
    post stays a photo post (Instagram shows GIFs as stills anyway).
    """
    if info.kind == "video":
        return True
    # A JPEG's extra pictures (MPO stereo pairs, gain maps) are not an animation.
    if not info.animated or info.format_name == "jpeg" or mode.video is None:
        return False
    single = mode.image if post_size == 1 or not mode.carousel else mode.carousel
    img_variant = preset.variants.get(single or "")
    if img_variant is None or img_variant.image is None:
        return True  # only a video can carry it (Reels, YouTube)
    if animation_fits(info, img_variant.image) or post_size > 1:
        return False
    vspec = preset.variants[mode.video].video
    return vspec is not None and (loops_needed(info, vspec) is not None)


def _still_only(info: MediaInfo, variant: Variant, as_video: bool) -> bool:
    """An animated image that the image variant cannot animate: delivered as its first frame."""
    return (info.animated and info.format_name != "jpeg" and not as_video
            and variant.image is not None and not animation_fits(info, variant.image))


def _fit_duration(info: MediaInfo, variant: Variant, job: Job, ci: int,
                  mi: int) -> tuple[int, float | None] | ErrorInfo:
    """Whole loops and trim length that bring a medium within a video variant's durations.

    Returns ``(loops, trim_to_s)``, or the ``duration_out_of_range`` error. An image variant
    takes any medium as it is: ``(1, None)``.
    """
    spec = variant.video
    if spec is None:
        return 1, None
    duration = info.duration_s or 0.0
    loops = loops_needed(info, spec)
    if loops is None:
        endless = info.image is not None and info.image.loops_forever
        beyond = (f" (whole loops of this animation would pass the {spec.max_duration_s:g} s "
                  "maximum)" if endless and spec.max_duration_s is not None else "")
        return unprocessable("duration_out_of_range",
                             f"video is {duration:.2f} s; {variant.label} needs at least "
                             f"{spec.min_duration_s:g} s{beyond}", ci, mi)
    duration *= loops
    if spec.max_duration_s is None or duration <= spec.max_duration_s + 1e-3:
        return loops, None
    if job.duration_policy != "trim":
        return unprocessable("duration_out_of_range",
                             f"video is {duration:.2f} s; {variant.label} takes at most "
                             f"{spec.max_duration_s:g} s (length is never changed "
                             "unless the 'trim' policy is chosen)", ci, mi)
    return loops, spec.max_duration_s


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

