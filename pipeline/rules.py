"""What a platform accepts in a video stream or an image: one rule list, planner and verifier.

The planner asks it whether a source's video stream (or a source image) can be kept as it is
(then the file is passed through or remuxed); the verifier asks it whether an output may ship.
Both read the same rules, so a pass-through can never fail verification because the two lists
drifted. They differ only in the slack they allow (:class:`Tolerance`, :class:`ImageTolerance`):
a source is kept only when it meets a rule exactly, an output may be off by what whole (even)
pixels and a frame rate's rounding cannot avoid.

The shape rules live here too: the shapes an image variant takes (:func:`aspect_range`,
:func:`wanted_aspect`) and whether an animated image can travel as an animation
(:func:`animation_fits`), which validation asks when it routes a GIF.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from .geometry import Geometry, clamp_aspect, fit_geometry, nearest_ratio
from .models import ImageFacts, MediaInfo, VideoStream
from .presets import FitPolicy, ImageSpec, VideoSpec

# All four profiles a platform's H.264 decoder takes; our own encodes are always High.
H264_PROFILES = ("baseline", "constrained baseline", "main", "high")
KEYFRAME_SLACK_S = 1e-3


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How far from a rule's edge a stream may be and still meet it.

    ``fps``: relative slack on the frame-rate range; ``aspect``: relative slack on the aspect
    range, at least ``aspect_pixels`` pixels' worth on the shorter side (rounding to even
    sizes moves a small picture's ratio by up to one 2-pixel step).
    """

    fps: Fraction = Fraction(0)
    aspect: float = 0.0
    aspect_pixels: int = 0


EXACT = Tolerance()
"""The planner's: a source is kept only when it meets every rule exactly."""

OUTPUT = Tolerance(fps=Fraction(1, 100), aspect=0.01, aspect_pixels=2)
"""The verifier's: what rounding to whole, even pixels and a measured frame rate cannot avoid."""


def video_stream_problems(info: MediaInfo, spec: VideoSpec, *, max_bytes: int,
                          tolerance: Tolerance, encoded: bool = False) -> list[str]:
    """Why this video stream breaks the variant's rules (empty: it meets them).

    Args:
        info: the probed file; it must have a video stream.
        spec: the variant's video rules.
        max_bytes: the byte cap.
        tolerance: :data:`EXACT` (planner) or :data:`OUTPUT` (verifier).
        encoded: the stream is our own encode, held to the profile we encode (High).

    Raises:
        Nothing.
    """
    v = info.video
    assert v is not None
    problems = stream_format_problems(v, spec, tolerance, encoded=encoded)
    problems += size_problems(info, spec, tolerance)
    rate = v.bitrate_kbps or info.bitrate_kbps
    if spec.max_bitrate_kbps and rate and rate > spec.max_bitrate_kbps:
        problems.append(f"{rate} kbps over the {spec.max_bitrate_kbps} kbps cap")
    if info.size_bytes > max_bytes:
        problems.append(f"{info.size_bytes} bytes over the {max_bytes}-byte cap")
    return problems


def stream_format_problems(v: VideoStream, spec: VideoSpec, tolerance: Tolerance, *,
                           encoded: bool = False) -> list[str]:
    """The stream's coding against the variant: codec, profile, pixels, timing, colour.

    Raises:
        Nothing.
    """
    profiles = ("high",) if encoded else H264_PROFILES
    fps_ok = spec.fps_min * (1 - tolerance.fps) <= v.fps <= spec.fps_max * (1 + tolerance.fps)
    gop_s = v.max_keyframe_interval_s
    broken = (
        (v.codec not in spec.codecs, f"codec {v.codec}"),
        (v.codec == "h264" and (v.profile or "").lower() not in profiles,
         f"H.264 profile {v.profile}"),
        (v.pix_fmt not in spec.pix_fmts, f"pixel format {v.pix_fmt}"),
        (v.interlaced, "interlaced"),
        (bool(v.rotation_deg or v.mirrored), "rotation metadata"),
        (v.sar != 1, f"sample aspect ratio {v.sar}"),
        (v.vfr, "variable frame rate"),
        (not fps_ok, f"{float(v.fps):.3f} fps out of range"),
        (gop_s is not None and gop_s > spec.gop_max_s + KEYFRAME_SLACK_S,
         f"keyframes {gop_s or 0:.2f} s apart (at most {spec.gop_max_s:g} s)"),
        (spec.sdr_only and v.hdr, "HDR"),
        (v.color_range == "pc" or v.pix_fmt.startswith("yuvj"), "full-range colour"),
    )
    return [problem for found, problem in broken if found]


def size_problems(info: MediaInfo, spec: VideoSpec, tolerance: Tolerance) -> list[str]:
    """The picture's size and shape against the variant: range, long side, even, aspect.

    Raises:
        Nothing.
    """
    w, h = info.width, info.height
    problems: list[str] = []
    if not (spec.min_width <= w <= spec.max_width and spec.min_height <= h <= spec.max_height):
        problems.append(f"size {w}x{h} out of range")
    if spec.max_long_side and max(w, h) > spec.max_long_side:
        problems.append(f"long side {max(w, h)} over {spec.max_long_side}")
    if w % 2 or h % 2:
        problems.append(f"odd size {w}x{h}")
    if not aspect_ok(w, h, spec.aspect_min, spec.aspect_max, tolerance):
        problems.append(f"aspect {w}:{h} out of range")
    return problems


def aspect_ok(w: int, h: int, lo: Fraction | None, hi: Fraction | None,
              tolerance: Tolerance) -> bool:
    """Whether ``w:h`` is inside ``[lo, hi]``, give or take the tolerance.

    Raises:
        Nothing.
    """
    slack = max(tolerance.aspect, tolerance.aspect_pixels / max(1, min(w, h)))
    if not slack:
        a = Fraction(w, max(1, h))
        return not ((lo and a < lo) or (hi and a > hi))
    ratio = w / h
    return (lo is None or ratio >= float(lo) * (1 - slack)) and (
        hi is None or ratio <= float(hi) * (1 + slack))


# --------------------------------------------------------------------------- images


@dataclass(frozen=True, slots=True)
class ImageTolerance:
    """How far from an image rule's edge a picture may be and still meet it.

    ``whole_pixels``: the shape may be off the aspect range by the rounding of half a pixel
    on each side. An image range is usually hard (Instagram refuses 0.79 for its 4:5
    minimum), so that is the only slack: a 9:16 story 128 pixels wide is 128x228.
    """

    whole_pixels: bool = False


IMAGE_EXACT = ImageTolerance()
"""The planner's: a source image is kept only when it meets every rule exactly."""

IMAGE_OUTPUT = ImageTolerance(whole_pixels=True)
"""The verifier's: what rounding to whole pixels cannot avoid."""

# Pillow modes that are sRGB as they are (or grey, or a palette of sRGB colours).
SRGB_MODES = ("RGB", "RGBA", "L", "LA", "P", "PA", "1")


def is_srgb_profile(description: str) -> bool:
    """Whether an ICC profile, by its description, is sRGB itself.

    Only a name that *starts* with sRGB counts ("sRGB IEC61966-2.1", "sRGB built-in",
    "sRGB2014"): Samsung's "DCI-P3 D65 Gamut with sRGB Transfer" mentions sRGB but has P3
    primaries. An unknown name is converted, which is never wrong, only not a pass-through.

    Raises:
        Nothing.
    """
    name = description.strip().lower()
    return name.startswith("srgb") and "p3" not in name


def image_problems(info: MediaInfo, spec: ImageSpec, *, max_bytes: int, animation: bool,
                   tolerance: ImageTolerance, metadata: bool = True) -> list[str]:
    """Why this image breaks the variant's rules (empty: it meets them).

    Format, frame count, byte cap, size limits, shape, and what a photo must not carry: an
    EXIF orientation (it is upright), a colour space other than sRGB (CMYK, 16 bits, a
    non-sRGB ICC profile) and, with ``metadata``, EXIF/GPS/XMP metadata.

    Args:
        info: the probed image.
        spec: the variant's image rules.
        max_bytes: the byte cap (the stricter of the variant's and the post's).
        animation: whether the image may be delivered animated (else one frame is wanted).
        tolerance: :data:`IMAGE_EXACT` (planner) or :data:`IMAGE_OUTPUT` (verifier).
        metadata: count EXIF/GPS/XMP as problems. The planner does not: the image engine
            strips them without re-encoding, so they are no reason to re-encode.

    Raises:
        Nothing.
    """
    facts = info.image
    if info.kind != "image" or facts is None:
        return [f"not an image ({info.kind})"]
    return [*_format_problems(info, facts, spec, animation),
            *_byte_problems(info, facts, spec, max_bytes),
            *image_size_problems(info.width, info.height, spec, tolerance),
            *photo_problems(facts, metadata=metadata)]


def _format_problems(info: MediaInfo, facts: ImageFacts, spec: ImageSpec,
                     animation: bool) -> list[str]:
    """The format (animated or still) and the frame count."""
    if facts.frames <= 1:
        if info.format_name not in spec.formats:
            return [f"format {info.format_name} not in {spec.formats}"]
        return []
    problems: list[str] = []
    if not animation:
        problems.append(f"{facts.frames} frames where a still was planned")
    if info.format_name not in spec.animated_formats:
        problems.append(f"animated {info.format_name} not in {spec.animated_formats}")
    if spec.max_animated_frames is not None and facts.frames > spec.max_animated_frames:
        problems.append(f"{facts.frames} frames, over {spec.max_animated_frames}")
    return problems


def _byte_problems(info: MediaInfo, facts: ImageFacts, spec: ImageSpec,
                   max_bytes: int) -> list[str]:
    """The byte cap: the animation cap replaces the photo cap (X: GIF 15 MB, photo 5 MB)."""
    own = (spec.max_animated_bytes or spec.max_bytes) if facts.frames > 1 else spec.max_bytes
    cap = min(max_bytes, own)
    return [f"{info.size_bytes} bytes over the {cap}-byte cap"] if info.size_bytes > cap else []


def image_size_problems(w: int, h: int, spec: ImageSpec, tolerance: ImageTolerance
                        ) -> list[str]:
    """The picture's size and shape: width/height range, pixels, side sum, short side, aspect.

    Raises:
        Nothing.
    """
    problems: list[str] = []
    if w > spec.max_width or h > spec.max_height:
        problems.append(f"{w}x{h} over {spec.max_width}x{spec.max_height}")
    if w < spec.min_width or h < spec.min_height:
        problems.append(f"{w}x{h} under {spec.min_width}x{spec.min_height}")
    if spec.max_pixels and w * h > spec.max_pixels:
        problems.append(f"{w * h} pixels, over {spec.max_pixels}")
    if spec.max_side_sum and w + h > spec.max_side_sum:
        problems.append(f"width + height {w + h}, over {spec.max_side_sum}")
    if spec.max_short_side and min(w, h) > spec.max_short_side:
        problems.append(f"short side {min(w, h)}, over {spec.max_short_side}")
    if not image_aspect_ok(w, h, spec.aspect_min, spec.aspect_max, tolerance):
        problems.append(f"aspect {w}:{h} out of range")
    return problems


def image_aspect_ok(w: int, h: int, lo: Fraction | None, hi: Fraction | None,
                    tolerance: ImageTolerance) -> bool:
    """Whether ``w:h`` is inside ``[lo, hi]``, or off it by the tolerance's pixel rounding.

    Raises:
        Nothing.
    """
    d = 1 if tolerance.whole_pixels else 0
    return ((lo is None or Fraction(2 * w + d, 2 * h - d) >= lo)
            and (hi is None or Fraction(2 * w - d, 2 * h + d) <= hi))


def photo_problems(facts: ImageFacts, *, metadata: bool = True) -> list[str]:
    """What a delivered photo must not carry: an orientation, metadata, a non-sRGB colour.

    Raises:
        Nothing.
    """
    carried = (
        (facts.exif_orientation != 1,
         f"EXIF orientation {facts.exif_orientation} left in the output"),
        (metadata and facts.has_gps, "GPS metadata left in the output"),
        (metadata and facts.has_exif, "EXIF metadata left in the output"),
        (metadata and facts.has_xmp, "XMP metadata left in the output"),
        (facts.bits != 8, f"{facts.bits} bits per channel"),
        (facts.mode not in SRGB_MODES, f"pixel mode {facts.mode} (not sRGB)"),
        (bool(facts.icc_profile) and not is_srgb_profile(facts.icc_profile or ""),
         f"ICC profile {facts.icc_profile!r} is not sRGB"),
    )
    return [problem for found, problem in carried if found]


# --------------------------------------------------------------------- shapes and animations


def wanted_aspect(aspect: Fraction, spec: ImageSpec, fit: FitPolicy | None = None
                  ) -> Fraction | None:
    """The output shape a variant asks for, or None to keep the source's.

    Outside the variant's range the shape becomes the nearest listed crop ratio (Instagram's own
    auto-crop: 4:5, 1:1 or 1.91:1) or else the nearest end of the range. A ``same_size``
    carousel with crop ratios (Pinterest: 2:3 or 1:1) always takes the nearest of them.
    """
    lo, hi = aspect_range(spec)
    in_range = (lo is None or aspect >= lo) and (hi is None or aspect <= hi)
    if spec.carousel == "same_size" and spec.crop_ratios:
        return nearest_ratio(aspect, spec.crop_ratios)
    if in_range:
        return None
    if (fit or spec.fit) in ("crop", "smart") and spec.crop_ratios:
        return nearest_ratio(aspect, spec.crop_ratios)
    return clamp_aspect(aspect, lo, hi)


def aspect_range(spec: ImageSpec) -> tuple[Fraction | None, Fraction | None]:
    """The shapes a variant can take: its aspect range, narrowed by its size limits.

    A variant without a shape rule still has one in its sizes: X takes 4x4 to 8192x8192, so
    nothing wider than 2048:1 can be scaled into it. A strip beyond that is padded (or
    cropped) to the widest shape that fits, instead of being scaled past a limit and
    refused after it was made.

    Raises:
        Nothing.
    """
    min_width = max(spec.min_width, spec.min_upscale_width or 1, 1)
    by_size_lo = Fraction(min_width, spec.max_height)
    by_size_hi = Fraction(spec.max_width, max(1, spec.min_height))
    lo = by_size_lo if spec.aspect_min is None else max(spec.aspect_min, by_size_lo)
    hi = by_size_hi if spec.aspect_max is None else min(spec.aspect_max, by_size_hi)
    return lo, hi


def image_geometry(info: MediaInfo, spec: ImageSpec, aspect: Fraction | None,
                   fit: FitPolicy | None = None) -> Geometry:
    """The picture a variant would get of this source at ``aspect`` (None: the source's own).

    Raises:
        Nothing.
    """
    return fit_geometry(
        info.width, info.height, aspect=aspect, fit=(fit or spec.fit) if aspect else "none",
        max_width=spec.max_width, max_height=spec.max_height,
        min_width=max(spec.min_width, spec.min_upscale_width or 1), min_height=spec.min_height,
        max_pixels=spec.max_pixels, max_side_sum=spec.max_side_sum,
        max_short_side=spec.max_short_side,
    )


def animation_fits(info: MediaInfo, spec: ImageSpec) -> bool:
    """Whether a variant can take this animated image as an animation, within its caps.

    The format must be one the variant animates (GIF), the frame count within its cap, and the
    bytes within its animation cap, predicted from the source's bytes per pixel when the frames
    must be scaled down. ``width x height x frames`` is held to X's 300 million (the most
    generous published GIF limit), which also bounds the engine's memory.

    Raises:
        Nothing.
    """
    facts = info.image
    if facts is None or info.format_name not in spec.animated_formats:
        return False
    if spec.max_animated_frames is not None and facts.frames > spec.max_animated_frames:
        return False
    g = image_geometry(info, spec, wanted_aspect(info.aspect, spec))
    if g.width * g.height * facts.frames > ANIMATION_PIXEL_BUDGET:
        return False
    shrink = min(1.0, (g.content_width * g.content_height) / max(1, info.width * info.height))
    cap = spec.max_animated_bytes or spec.max_bytes
    return info.size_bytes * shrink <= cap


# X's published GIF limit (platform-specs.md section 1): width x height x frames <= 300 million.
ANIMATION_PIXEL_BUDGET = 300_000_000
