"""Limits that follow the posting account: an account's own numbers applied to its preset.

A preset holds what every account of a platform may post. Some accounts may post more (X
Premium: 125 min and 16 GB) and some less (a TikTok creator whose ``creator_info`` says 60 s).
The publish API learns these per account and passes them as ``conform.limits``; here they
become that account's copy of the preset, so validation, planning, the encode's byte budget and
verification all read one set of numbers, and nothing downstream needs to know they moved.
"""

from __future__ import annotations

from dataclasses import replace

from .records import AccountLimits, ImageSpec, Preset, Variant, VideoSpec

LIMIT_KINDS = {"max_duration_s": "video", "max_video_bytes": "video", "max_image_bytes": "image"}


def _current(variant: Variant, name: str) -> float | None:
    """The variant's own value for a limit (None: the variant sets none, or is another kind)."""
    if LIMIT_KINDS[name] != variant.kind:
        return None
    if variant.video is not None:
        return (variant.video.max_duration_s if name == "max_duration_s"
                else float(variant.video.max_bytes))
    return float(variant.image.max_bytes) if variant.image is not None else None


def _ceiling(variant: Variant, name: str) -> float | None:
    """The most an account may ask of this variant (its own value when it has no ceiling)."""
    ceiling = variant.account_ceiling
    most = None
    if ceiling is not None:
        most = ceiling.max_duration_s if name == "max_duration_s" else ceiling.max_bytes
    own = _current(variant, name)
    if most is None:
        return own
    return max(float(most), own) if own is not None else float(most)


def limit_problems(preset: Preset, variants: tuple[Variant, ...],
                   limits: AccountLimits) -> list[tuple[str, str]]:
    """What is wrong with an account's limits for the variants its mode can use.

    Tightening is always allowed; loosening only up to each variant's documented ceiling
    (preset data with its source). A maximum length below the variant's minimum cannot be met
    by any video. Each problem is ``(limit name, message)``.
    """
    problems: list[tuple[str, str]] = []
    for name, value in limits.items():
        for variant in variants:
            most = _ceiling(variant, name)
            if most is None:
                continue
            if value > most:
                source = (f" ({variant.account_ceiling.source})"
                          if variant.account_ceiling is not None else
                          "; the preset allows no account more")
                problems.append((name, f"{_show(value, name)} is above the most "
                                       f"{variant.id} allows any account, "
                                       f"{_show(most, name)}{source}"))
            elif (name == "max_duration_s" and variant.video is not None
                  and value < variant.video.min_duration_s):
                problems.append((name, f"{_show(value, name)} is below {variant.id}'s minimum "
                                       f"length, {_show(variant.video.min_duration_s, name)}"))
    return problems


def _show(value: float, name: str) -> str:
    if name == "max_duration_s":
        return f"{value:g} s"
    return f"{int(value):,} bytes"


def with_account_limits(preset: Preset, limits: AccountLimits | None) -> Preset:
    """The account's copy of its platform's preset, with its own limits in place.

    Raises:
        Nothing: the limits were checked against the ceilings when the job was parsed.
    """
    if limits is None or not limits.items():
        return preset
    variants = {name: _limited_variant(v, limits) for name, v in preset.variants.items()}
    post = replace(
        preset.limits,
        max_video_bytes=limits.max_video_bytes or preset.limits.max_video_bytes,
        max_image_bytes=limits.max_image_bytes or preset.limits.max_image_bytes)
    return replace(preset, limits=post, variants=variants)


def _limited_variant(variant: Variant, limits: AccountLimits) -> Variant:
    if variant.video is not None:
        video: VideoSpec = replace(
            variant.video,
            max_duration_s=(limits.max_duration_s if limits.max_duration_s is not None
                            else variant.video.max_duration_s),
            max_bytes=limits.max_video_bytes or variant.video.max_bytes)
        return replace(variant, video=video)
    if variant.image is not None and limits.max_image_bytes is not None:
        image: ImageSpec = replace(variant.image, max_bytes=limits.max_image_bytes)
        return replace(variant, image=image)
    return variant


def applied_limits(limits: AccountLimits | None) -> list[str]:
    """The account's own limits as ``conform plan`` shows them: ``max_duration_s 300 s``.

    An account's limit replaces its preset's wherever it applies (see the module's doc), so
    these are the numbers its media were held to; every other limit is the preset's.
    """
    return [] if limits is None else [f"{name} {_show(value, name)}"
                                      for name, value in limits.items()]
