"""Image planning: format, shape, size and least work for one image and one variant."""

from __future__ import annotations

import math
from fractions import Fraction

from .. import rules
from ..geometry import FIT_ACTIONS, Geometry
from ..models import ImageFacts, MediaInfo
from ..presets import FitPolicy, ImageSpec
from ..rules import (
    animation_fits,
    image_geometry,
    is_srgb_profile,
    wanted_aspect,
)
from .targets import ImageTarget

# Formats the engine writes. HEIF, AVIF, TIFF and BMP inputs are always converted: no preset
# delivers HEIF/AVIF, and TIFF/BMP could only be kept by re-encoding them anyway.
_WRITABLE = ("jpeg", "png", "webp", "gif")
# Formats whose metadata `image.strip_metadata` removes without re-encoding: only these can
# pass through (the metadata is then no reason to re-encode).
_STRIPPABLE = ("jpeg", "png", "webp", "gif")
# A photo-like PNG (no alpha) that must be re-encoded is predicted to keep about its source's
# bytes per pixel; over this share of the byte cap it is delivered as JPEG instead, because a
# PNG has no quality knob and could only be shrunk to fit.
PNG_BUDGET_SHARE = 0.8


def needs_srgb(facts: ImageFacts) -> bool:
    """The pixels must be colour-converted to sRGB (a non-sRGB ICC profile, or CMYK/YCbCr/LAB)."""
    if facts.mode in ("CMYK", "YCbCr", "LAB"):
        return True
    return bool(facts.icc_profile) and not is_srgb_profile(facts.icc_profile or "")


def carousel_frame(infos: list[MediaInfo], spec: ImageSpec
                   ) -> tuple[Fraction, tuple[int, int] | None]:
    """The shape (and, for ``same_size`` carousels, the size) every item of a carousel takes.

    The first item decides the shape, as Instagram does. A ``same_size`` carousel (Pinterest)
    also needs one size: the largest that no item has to be upscaled to reach.

    Args:
        infos: the carousel's images, in order (at least one).
        spec: the carousel variant.

    Returns:
        ``(aspect, size)``; ``size`` is None unless the variant is ``same_size``.

    Raises:
        Nothing.
    """
    first = infos[0]
    aspect = wanted_aspect(first.aspect, spec) or first.aspect
    if spec.carousel != "same_size":
        return aspect, None
    sizes = [image_geometry(i, spec, aspect if i.aspect != aspect else None) for i in infos]
    smallest = _inside_aspect_range(min(sizes, key=lambda g: g.width), spec)
    return aspect, (smallest.width, smallest.height)


def plan_image(info: MediaInfo, spec: ImageSpec, *, max_bytes: int,
               forced_aspect: Fraction | None = None,
               forced_size: tuple[int, int] | None = None,
               keep_animation: bool = False, fit: FitPolicy | None = None
               ) -> tuple[ImageTarget, list[str], list[str]]:
    """Target, planned actions and warnings for one image and one image variant.

    Args:
        info: the probed image (displayed size, EXIF orientation already resolved).
        spec: the image variant.
        max_bytes: the byte cap (the stricter of the variant's and the post's).
        forced_aspect: a carousel's shape (see :func:`carousel_frame`).
        forced_size: a ``same_size`` carousel's exact size.
        keep_animation: validation kept this animated image as an image (not a still frame).
        fit: overrides the variant's fit (the job's ``conform.fit``).

    Returns:
        ``(target, actions, warnings)``; actions use the manifest's vocabulary: ``rotated``,
        ``converted_colour``, ``flattened_alpha``, ``cropped``/``padded``/``blurred``,
        ``resized``, ``converted_format``, ``first_frame``, ``recompressed``,
        ``stripped_metadata``, ``passed_through``.

    Raises:
        Nothing: ``info`` must be a probed image.
    """
    assert info.image is not None
    facts = info.image
    animated = keep_animation and info.animated and animation_fits(info, spec)
    if animated and spec.max_animated_bytes:
        # The preset's animation cap replaces the photo cap (X: GIF 15 MB, photo 5 MB).
        max_bytes = spec.max_animated_bytes
    geometry = _planned_geometry(info, spec, forced_aspect, forced_size, fit)
    passthrough = _keeps_source(info, spec, geometry, animated=animated, max_bytes=max_bytes)
    out_format = (info.format_name if passthrough or animated
                  else _encode_format(info, spec, geometry, max_bytes))
    to_srgb = needs_srgb(facts)
    actions = (["passed_through"] if passthrough
               else _conversion_actions(info, geometry, out_format, animated=animated,
                                        to_srgb=to_srgb))
    if facts.has_exif or facts.has_xmp or facts.has_gps:
        actions.append("stripped_metadata")
    target = ImageTarget(
        format=out_format, geometry=geometry, background=spec.background, max_bytes=max_bytes,
        quality=spec.quality, quality_floor=spec.quality_floor, animated=animated,
        passthrough=passthrough, orientation=facts.exif_orientation, to_srgb=to_srgb,
        min_width=spec.min_width, min_height=spec.min_height,
    )
    return target, actions, ["upscaled"] if geometry.upscaled else []


def _planned_geometry(info: MediaInfo, spec: ImageSpec, forced_aspect: Fraction | None,
                      forced_size: tuple[int, int] | None, fit: FitPolicy | None) -> Geometry:
    """Shape and size: the carousel's when it imposes them, else the variant's for this image."""
    aspect = (forced_aspect if forced_aspect is not None
              else wanted_aspect(info.aspect, spec, fit))
    if aspect == info.aspect:
        aspect = None
    geometry = image_geometry(info, spec, aspect, fit)
    if forced_size is None:
        return _inside_aspect_range(geometry, spec)
    if (geometry.width, geometry.height) != forced_size:
        return force_size(geometry, forced_size)
    return geometry


def _keeps_source(info: MediaInfo, spec: ImageSpec, geometry: Geometry, *, animated: bool,
                  max_bytes: int) -> bool:
    """The source file can be delivered as it is.

    It meets every rule of the variant exactly (:func:`pipeline.rules.image_problems`, the
    verifier's list), the plan leaves the picture as it is, and its metadata is one the image
    engine strips without re-encoding.
    """
    return (info.format_name in _STRIPPABLE and geometry.fit == "none" and not geometry.resized
            and not rules.image_problems(info, spec, max_bytes=max_bytes, animation=animated,
                                         tolerance=rules.IMAGE_EXACT, metadata=False))


def _conversion_actions(info: MediaInfo, geometry: Geometry, out_format: str, *,
                        animated: bool, to_srgb: bool) -> list[str]:
    """What re-encoding an image does to it, in the manifest's vocabulary and order."""
    assert info.image is not None
    facts = info.image
    done = (("rotated", facts.exif_orientation != 1),
            ("converted_colour", to_srgb or facts.bits != 8),
            ("flattened_alpha", facts.has_alpha and out_format == "jpeg"),
            (FIT_ACTIONS.get(geometry.fit, ""), geometry.fit != "none"),
            ("resized", geometry.resized),
            ("converted_format", out_format != info.format_name),
            ("first_frame", info.animated and not animated),
            ("recompressed", True))
    return [name for name, happens in done if happens]


def _encode_format(info: MediaInfo, spec: ImageSpec, geometry: Geometry, max_bytes: int) -> str:
    """The format to re-encode to: the source's when the variant takes it, else JPEG or PNG."""
    assert info.image is not None
    src = info.format_name
    alpha = info.image.has_alpha
    allowed = [f for f in spec.formats if f in _WRITABLE]
    if src in ("jpeg", "webp") and src in allowed:
        return src
    lossless_source = src in ("png", "gif", "bmp", "tiff")
    if "png" in allowed and (alpha or (lossless_source and "jpeg" not in allowed)):
        return "png"
    if "png" in allowed and src in ("png", "gif") and "jpeg" in allowed:
        # Graphics stay lossless unless the PNG would not fit the budget (a photo saved as PNG).
        out_px = geometry.width * geometry.height
        src_px = max(1, info.width * info.height)
        if info.size_bytes * out_px / src_px <= max_bytes * PNG_BUDGET_SHARE:
            return "png"
    if "jpeg" in allowed:
        return "jpeg"
    return allowed[0] if allowed else "jpeg"


def _inside_aspect_range(g: Geometry, spec: ImageSpec) -> Geometry:
    """Take the pixel lost to rounding back, so a hard range (Instagram's 4:5) is never missed.

    Only a range with two different ends can be met exactly; a single ratio (a 9:16 story)
    is met to within rounding.
    """
    lo, hi = spec.aspect_min, spec.aspect_max
    if lo is None or hi is None or lo == hi:
        return g
    w, h = g.width, g.height
    # The side that is too long is cut, unless that takes it under the variant's minimum
    # (a crop of a few pixels upscaled to it): then the other side grows instead.
    if Fraction(w, h) < lo and h > 1:
        h = max(1, math.floor(w / lo))
        if h < spec.min_height:
            w, h = math.ceil(g.height * lo), g.height
    elif Fraction(w, h) > hi and w > 1:
        w = max(1, math.floor(h * hi))
        if w < spec.min_width:
            w, h = g.width, math.ceil(g.width / hi)
    if (w, h) == (g.width, g.height):
        return g
    return force_size(g, (w, h))


def force_size(g: Geometry, size: tuple[int, int]) -> Geometry:
    """The same picture at an exact canvas size (carousel items of one size; cover boxes).

    Padding and blurred fills scale their content with the canvas; a crop fills it.
    """
    w, h = size
    if g.fit in ("pad", "blur"):
        content_w = min(w, max(1, round(g.content_width * w / g.width)))
        content_h = min(h, max(1, round(g.content_height * h / g.height)))
    else:
        content_w, content_h = w, h
    grown = content_w > g.crop_width or content_h > g.crop_height
    return Geometry(width=w, height=h, content_width=content_w, content_height=content_h,
                    crop_x=g.crop_x, crop_y=g.crop_y, crop_width=g.crop_width,
                    crop_height=g.crop_height, fit=g.fit, source_width=g.source_width,
                    source_height=g.source_height, upscaled=g.upscaled or grown)
