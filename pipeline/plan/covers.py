"""Cover planning: the frame or thumbnail each account's cover must be."""

from __future__ import annotations

from fractions import Fraction

from ..geometry import Geometry, fit_geometry
from ..models import CoverChoice, MediaInfo
from ..presets import CoverSpec
from .images import force_size, needs_srgb
from .targets import CoverTarget, ImageTarget


def plan_cover(choice: CoverChoice, video_geometry: Geometry | None,
               thumb: MediaInfo | None) -> CoverTarget:
    """The cover's exact format, size and shape.

    A frame is the delivered video's picture, so it has the delivered video's size. A custom
    thumbnail takes the preset's box (``width`` x ``height``) in the preset's shape (a fixed
    ratio, or ``"video"``: the delivered video's), without being blown up past its own size
    except to the platform's minimum width.

    Args:
        choice: what validation chose for the account.
        video_geometry: the planned geometry of the video the cover goes with (None: the
            video is kept at its displayed size).
        thumb: the probed thumbnail, for image covers.

    Returns:
        The cover target; its fields are part of the cover's content address.

    Raises:
        Nothing: validation has already checked the inputs.
    """
    spec: CoverSpec = choice.spec
    # The first listed format: JPEG for every platform. A thumbnail with transparency is
    # flattened rather than kept as PNG, since covers are shown as opaque tiles and a PNG has
    # no quality knob to meet the byte cap (YouTube's is 2 MB).
    fmt = spec.formats[0]
    if choice.source == "frame":
        w, h = ((video_geometry.width, video_geometry.height) if video_geometry
                else (choice.video.info.width, choice.video.info.height))
        return CoverTarget("frame", choice.timestamp_ms, fmt, w, h, "none", spec.max_bytes, 1)
    aspect: Fraction
    if spec.aspect == "video":
        vg = video_geometry
        vw, vh = ((vg.width, vg.height) if vg
                  else (choice.video.info.width, choice.video.info.height))
        aspect = Fraction(vw, vh)
    elif spec.aspect is not None:
        aspect = spec.aspect
    else:
        aspect = Fraction(spec.width, spec.height)
    # The largest box of that shape inside width x height.
    box_w, box_h = spec.width, spec.height
    h = round(min(float(box_h), box_w / float(aspect)))
    w = round(h * float(aspect))
    if w > box_w:
        w, h = box_w, round(box_w / float(aspect))
    if thumb is not None:
        # Never blow a small thumbnail up past its own size, except to the platform minimum:
        # fitted inside (pad, blur) it must reach one side of the box, cropped both.
        reach = min if spec.fit == "crop" else max
        shrink = min(1.0, reach(thumb.width / w, thumb.height / h))
        if shrink < 1.0:
            w, h = round(w * shrink), round(h * shrink)
        if w < spec.min_width:
            w, h = spec.min_width, round(spec.min_width / float(aspect))
    return CoverTarget("image", None, fmt, max(1, w), max(1, h), spec.fit, spec.max_bytes,
                       spec.min_width)


def thumbnail_target(thumb: MediaInfo, cover: CoverTarget) -> ImageTarget:
    """The image target that conforms a custom thumbnail to a cover's exact shape and size.

    The shape comes from the cover's fit policy (blurred fill by default, crop or plain pad
    as options); the image engine then searches the quality for the byte cap.

    Raises:
        Nothing: ``thumb`` must be a probed image (validation guarantees it).
    """
    assert thumb.image is not None
    aspect = Fraction(cover.width, cover.height)
    geometry = fit_geometry(thumb.width, thumb.height, aspect=aspect, fit=cover.fit,
                            max_width=cover.width, max_height=cover.height,
                            min_width=cover.min_width, min_height=1)
    if (geometry.width, geometry.height) != (cover.width, cover.height):
        geometry = force_size(geometry, (cover.width, cover.height))
    facts = thumb.image
    return ImageTarget(
        # White under transparency: thumbnails with alpha are mostly dark logos and text.
        format=cover.format, geometry=geometry, background="#ffffff", max_bytes=cover.max_bytes,
        quality=90, quality_floor=50, animated=False, passthrough=False,
        orientation=facts.exif_orientation,
        to_srgb=needs_srgb(facts),  # Instagram's cover_url must be sRGB; so are all screens
        min_width=cover.min_width,
    )


def frame_target(cover: CoverTarget) -> ImageTarget:
    """The image target for a video frame (already at the delivered video's size).

    Raises:
        Nothing.
    """
    geometry = Geometry(width=cover.width, height=cover.height, content_width=cover.width,
                        content_height=cover.height, crop_x=0, crop_y=0, crop_width=cover.width,
                        crop_height=cover.height, fit="none", source_width=cover.width,
                        source_height=cover.height)
    return ImageTarget(format=cover.format, geometry=geometry, background="#000000",
                       max_bytes=cover.max_bytes, quality=92, quality_floor=50, animated=False,
                       passthrough=False, orientation=1, to_srgb=False)
