"""Planning (pure): for every (medium, account) the exact target and the least work to reach it.

No I/O happens here: the same inputs always give the same plan, which is what ``conform plan``
prints and what the content-addressed output keys are derived from. Identical targets made from
the same source share one output.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from typing import Literal

from .models import ImageFacts, MediaInfo
from .presets import CoverSpec, ImageSpec, VideoSpec
from .validate import AccountCheck, CoverChoice, Selected

# Bump when the same target would now produce different bytes (encoder settings, filters).
ENCODER_VERSION = "1"
# The same for images: part of every image output's content address (``ImageTarget.engine``),
# so a re-run never reuses an output an older image engine made.
IMAGE_ENGINE = "image-2"
# x264 quality: CRF 20 is visually transparent for social re-encodes at these sizes.
CRF = 20
# Ceiling on the video bitrate we ever ask for, by output pixels per second: about 0.1 bit per
# pixel, i.e. 1080p30 ~ 6.2 Mbps, 1080x1920p60 ~ 12.4 Mbps: more is spent on nothing a feed
# will show, and the platforms re-encode anyway.
BITS_PER_PIXEL_CEILING = 0.1
# Container overhead kept out of a byte budget (moov index, muxing): 2 % plus 64 KB.
CONTAINER_OVERHEAD = 0.02
STANDARD_RATES = (Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001),
                  Fraction(30), Fraction(48), Fraction(50), Fraction(60000, 1001), Fraction(60))

FitMode = Literal["none", "crop", "pad", "blur"]


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True, slots=True)
class Geometry:
    """How the displayed picture becomes the output frame.

    ``crop_*`` is a rectangle of the displayed (upright) source; the content is scaled to
    ``content_*`` and placed centred on a ``width`` x ``height`` canvas (pad or blur fill).
    """

    width: int
    height: int
    content_width: int
    content_height: int
    crop_x: int
    crop_y: int
    crop_width: int
    crop_height: int
    fit: FitMode
    source_width: int
    source_height: int
    upscaled: bool = False

    @property
    def resized(self) -> bool:
        """The content changed size."""
        return (self.content_width, self.content_height) != (self.crop_width, self.crop_height)


@dataclass(frozen=True, slots=True)
class ImageTarget:
    """What one image output must be."""

    format: str
    geometry: Geometry
    background: str
    max_bytes: int
    quality: int
    quality_floor: int
    animated: bool
    passthrough: bool
    orientation: int
    to_srgb: bool
    min_width: int = 1
    min_height: int = 1
    engine: str = IMAGE_ENGINE
    kind: Literal["image"] = "image"


@dataclass(frozen=True, slots=True)
class AudioTarget:
    """What the output's audio track must be."""

    action: Literal["copy", "encode", "none", "silent"]
    codec: str = "aac"
    sample_rate_hz: int = 48000
    channels: int = 2
    bitrate_kbps: int = 128
    loudnorm: bool = False


@dataclass(frozen=True, slots=True)
class VideoTarget:
    """What one video output must be, and whether we pass, remux or encode to get there."""

    action: Literal["passthrough", "remux", "audio_only", "transcode"]
    geometry: Geometry
    pad_color: str
    fps: Fraction | None
    gop_frames: int
    tonemap: bool
    deinterlace: bool
    full_to_limited: bool
    max_bytes: int
    maxrate_kbps: int
    trim_s: float | None
    audio: AudioTarget
    from_image: bool
    x264_preset: str
    spec_max_bitrate_kbps: int | None = None
    square_pixels: bool = False       # SAR != 1: scale to the displayed size first
    in_matrix: str = "bt709"          # the source's YUV matrix (swscale name)
    in_transfer: str | None = None    # tone-map from: smpte2084 (PQ) or arib-std-b67 (HLG)
    in_primaries: str = "bt709"
    level: str = ""                   # H.264 level, from size, rate and maxrate
    min_width: int = 2                # byte-budget retries never shrink below the preset's
    min_height: int = 2               # minimum size
    source_codec: str = ""            # what a stream copy keeps (remux, pass-through)
    kind: Literal["video"] = "video"


@dataclass(frozen=True, slots=True)
class CoverTarget:
    """A cover: a frame of the delivered video, or a conformed custom thumbnail."""

    source: Literal["frame", "image"]
    at_ms: int | None
    format: str
    width: int
    height: int
    fit: FitMode
    max_bytes: int
    min_width: int


Target = ImageTarget | VideoTarget


@dataclass(frozen=True, slots=True)
class Use:
    """One account's use of an output."""

    account_id: str
    platform: str
    variant_id: str
    content_index: int
    media_index: int


@dataclass(frozen=True, slots=True)
class Rendition:
    """One output to produce (shared by every account whose target is identical)."""

    key: str
    source_sha256: str
    ref_text: str
    target: Target
    actions: tuple[str, ...]
    warnings: tuple[str, ...]
    name: str
    uses: tuple[Use, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class CoverPlan:
    """One cover output; for frames it is made from the rendition it names."""

    key: str
    target: CoverTarget
    rendition_key: str
    thumbnail_sha256: str | None
    accounts: tuple[str, ...]
    thumbnail_ref: str | None = None   # the job's reference text of the thumbnail (image covers)


def target_key(source_sha256: str, target: Target | CoverTarget, extra: str = "") -> str:
    """Content address of an output: source bytes + every parameter that changes the bytes +
    encoder version. Caps that do not change the bytes (a byte cap far above what the encode
    makes) are left out, so platforms with different caps share one output."""
    blob = json.dumps({"src": source_sha256, "target": _key_view(target), "enc": ENCODER_VERSION,
                       "extra": extra}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _key_view(target: Target | CoverTarget) -> dict[str, object]:
    view = asdict(target)
    if isinstance(target, VideoTarget):
        # The byte cap reaches the bytes only through maxrate_kbps (derived from it); the
        # rendition is verified against the smallest cap of everyone sharing it.
        view.pop("max_bytes")
        view.pop("spec_max_bitrate_kbps")
        view.pop("min_width")   # the floor of budget retries: the cap decides if it is reached
        view.pop("min_height")
        view["video_encoder"] = VIDEO_ENCODER_VERSION
        if target.action != "transcode":
            # Stream copy: only the container and the audio track are made by us.
            for name in ("geometry", "pad_color", "gop_frames", "maxrate_kbps", "x264_preset",
                         "tonemap", "deinterlace", "full_to_limited", "square_pixels",
                         "in_matrix", "in_transfer", "in_primaries", "level"):
                view.pop(name)
    return view


# --------------------------------------------------------------------------- geometry


def _clamp_aspect(aspect: Fraction, lo: Fraction | None, hi: Fraction | None) -> Fraction:
    if lo is not None and aspect < lo:
        return lo
    if hi is not None and aspect > hi:
        return hi
    return aspect


def nearest_ratio(aspect: Fraction, choices: Iterable[Fraction]) -> Fraction:
    """The choice closest to ``aspect`` on a log scale (4:5 vs 1.91:1 are symmetric errors)."""
    return min(choices, key=lambda r: abs(math.log(aspect / r)))


def _even(n: float) -> int:
    return max(2, round(n / 2) * 2)


def fit_geometry(width: int, height: int, *, aspect: Fraction | None, fit: FitMode,
                 max_width: int, max_height: int, min_width: int = 1, min_height: int = 1,
                 max_pixels: int | None = None, max_side_sum: int | None = None,
                 max_short_side: int | None = None, max_long_side: int | None = None,
                 even: bool = False, allow_upscale_to_min: bool = True) -> Geometry:
    """Compute crop, scale and canvas for a displayed ``width`` x ``height`` picture.

    ``aspect`` is the output shape wanted (None: keep the source's). Downscale only, except to
    reach a platform minimum.
    """
    src = Fraction(width, height)
    want = aspect or src
    cx, cy, cw, ch = 0, 0, width, height
    if fit == "crop" and want != src:
        if src > want:  # too wide: cut the sides
            cw = max(1, round(height * want))
        else:
            ch = max(1, round(width / want))
        cx, cy = (width - cw) // 2, (height - ch) // 2
        frame_w, frame_h = float(cw), float(ch)
    elif fit in ("pad", "blur") and want != src:
        frame_w, frame_h = ((float(height * want), float(height)) if src < want
                            else (float(width), float(width / want)))
    else:
        fit = "none" if want == src else fit
        frame_w, frame_h = float(width), float(height)

    scale = min(1.0, max_width / frame_w, max_height / frame_h)
    if max_pixels:
        scale = min(scale, math.sqrt(max_pixels / (frame_w * frame_h)))
    if max_side_sum:
        scale = min(scale, max_side_sum / (frame_w + frame_h))
    if max_short_side:
        scale = min(scale, max_short_side / min(frame_w, frame_h))
    if max_long_side:
        scale = min(scale, max_long_side / max(frame_w, frame_h))
    upscaled = False
    need = max(min_width / frame_w, min_height / frame_h)
    if allow_upscale_to_min and need > scale:
        scale = need
        upscaled = need > 1.0
    rnd = _even if even else (lambda v: max(1, round(v)))
    out_w, out_h = rnd(frame_w * scale), rnd(frame_h * scale)

    def over_caps(w: int, h: int) -> bool:
        return (w > max_width or h > max_height
                or (max_pixels is not None and w * h > max_pixels)
                or (max_side_sum is not None and w + h > max_side_sum)
                or (max_short_side is not None and min(w, h) > max_short_side)
                or (max_long_side is not None and max(w, h) > max_long_side))

    # Rounding to whole (or even) pixels can step a pixel over a cap: step back under it.
    for _ in range(64):
        if upscaled or not over_caps(out_w, out_h):
            break
        scale *= 1 - 1 / max(out_w, out_h)
        out_w, out_h = rnd(frame_w * scale), rnd(frame_h * scale)
    if fit in ("pad", "blur"):
        content_w = min(out_w, rnd(cw * scale))
        content_h = min(out_h, rnd(ch * scale))
    else:
        content_w, content_h = out_w, out_h
    return Geometry(width=out_w, height=out_h, content_width=content_w, content_height=content_h,
                    crop_x=cx, crop_y=cy, crop_width=cw, crop_height=ch,
                    fit=fit if (fit != "none" or want != src) else "none",
                    source_width=width, source_height=height, upscaled=upscaled)


# --------------------------------------------------------------------------- images

# Formats the engine writes. HEIF, AVIF, TIFF and BMP inputs are always converted: no preset
# delivers HEIF/AVIF, and TIFF/BMP could only be kept by re-encoding them anyway.
_WRITABLE = ("jpeg", "png", "webp", "gif")
# Formats whose metadata `image.strip_metadata` removes without re-encoding: only these can
# pass through.
_STRIPPABLE = ("jpeg", "png", "webp", "gif")
# A photo-like PNG (no alpha) that must be re-encoded is predicted to keep about its source's
# bytes per pixel; over this share of the byte cap it is delivered as JPEG instead, because a
# PNG has no quality knob and could only be shrunk to fit.
PNG_BUDGET_SHARE = 0.8
_FIT_ACTION = {"crop": "cropped", "pad": "padded", "blur": "blurred"}


def is_srgb_profile(description: str) -> bool:
    """Whether an ICC profile, by its description, is sRGB itself.

    Only a name that *starts* with sRGB counts ("sRGB IEC61966-2.1", "sRGB built-in",
    "sRGB2014"): Samsung's "DCI-P3 D65 Gamut with sRGB Transfer" mentions sRGB but has P3
    primaries. An unknown name is converted, which is never wrong, only not a pass-through.
    """
    name = description.strip().lower()
    return name.startswith("srgb") and "p3" not in name


def needs_srgb(facts: ImageFacts) -> bool:
    """The pixels must be colour-converted to sRGB (a non-sRGB ICC profile, or CMYK/YCbCr/LAB)."""
    if facts.mode in ("CMYK", "YCbCr", "LAB"):
        return True
    return bool(facts.icc_profile) and not is_srgb_profile(facts.icc_profile or "")


def wanted_aspect(aspect: Fraction, spec: ImageSpec) -> Fraction | None:
    """The output shape a variant asks for, or None to keep the source's.

    Outside the variant's range the shape becomes the nearest listed crop ratio (Instagram's own
    auto-crop: 4:5, 1:1 or 1.91:1) or else the nearest end of the range. A ``same_size``
    carousel with crop ratios (Pinterest: 2:3 or 1:1) always takes the nearest of them.
    """
    in_range = ((spec.aspect_min is None or aspect >= spec.aspect_min)
                and (spec.aspect_max is None or aspect <= spec.aspect_max))
    if spec.carousel == "same_size" and spec.crop_ratios:
        return nearest_ratio(aspect, spec.crop_ratios)
    if in_range:
        return None
    if spec.fit == "crop" and spec.crop_ratios:
        return nearest_ratio(aspect, spec.crop_ratios)
    return _clamp_aspect(aspect, spec.aspect_min, spec.aspect_max)


def _image_geometry(info: MediaInfo, spec: ImageSpec, aspect: Fraction | None) -> Geometry:
    return fit_geometry(
        info.width, info.height, aspect=aspect, fit=spec.fit if aspect else "none",
        max_width=spec.max_width, max_height=spec.max_height,
        min_width=max(spec.min_width, spec.min_upscale_width or 1), min_height=spec.min_height,
        max_pixels=spec.max_pixels, max_side_sum=spec.max_side_sum,
        max_short_side=spec.max_short_side,
    )


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
    sizes = [_image_geometry(i, spec, aspect if i.aspect != aspect else None) for i in infos]
    smallest = _inside_aspect_range(min(sizes, key=lambda g: g.width), spec)
    return aspect, (smallest.width, smallest.height)


def plan_image(info: MediaInfo, spec: ImageSpec, *, max_bytes: int,
               forced_aspect: Fraction | None = None,
               forced_size: tuple[int, int] | None = None,
               keep_animation: bool = False) -> tuple[ImageTarget, list[str], list[str]]:
    """Target, planned actions and warnings for one image and one image variant.

    Args:
        info: the probed image (displayed size, EXIF orientation already resolved).
        spec: the image variant.
        max_bytes: the byte cap (the stricter of the variant's and the post's).
        forced_aspect: a carousel's shape (see :func:`carousel_frame`).
        forced_size: a ``same_size`` carousel's exact size.
        keep_animation: validation kept this animated image as an image (not a still frame).

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
    aspect = forced_aspect if forced_aspect is not None else wanted_aspect(info.aspect, spec)
    if aspect == info.aspect:
        aspect = None
    geometry = _image_geometry(info, spec, aspect)
    if forced_size is not None and (geometry.width, geometry.height) != forced_size:
        geometry = _force_size(geometry, forced_size)
    elif forced_size is None:
        geometry = _inside_aspect_range(geometry, spec)
    to_srgb = needs_srgb(facts)
    changed = (facts.exif_orientation != 1 or to_srgb or geometry.fit != "none"
               or geometry.resized or facts.bits != 8)
    takes_format = info.format_name in (spec.animated_formats if animated else spec.formats)
    keep_format = takes_format and info.format_name in _STRIPPABLE
    passthrough = (keep_format and not changed and info.size_bytes <= max_bytes
                   and (animated or not info.animated))
    out_format = (info.format_name if passthrough or animated
                  else _encode_format(info, spec, geometry, max_bytes))
    actions: list[str] = []
    warnings: list[str] = []
    if passthrough:
        actions.append("passed_through")
    else:
        if facts.exif_orientation != 1:
            actions.append("rotated")
        if to_srgb or facts.bits != 8:
            actions.append("converted_colour")
        if facts.has_alpha and out_format == "jpeg":
            actions.append("flattened_alpha")
        if geometry.fit != "none":
            actions.append(_FIT_ACTION[geometry.fit])
        if geometry.resized:
            actions.append("resized")
        if out_format != info.format_name:
            actions.append("converted_format")
        if info.animated and not animated:
            actions.append("first_frame")
        actions.append("recompressed")
    if facts.has_exif or facts.has_xmp or facts.has_gps:
        actions.append("stripped_metadata")
    if geometry.upscaled:
        warnings.append("upscaled")
    target = ImageTarget(
        format=out_format, geometry=geometry, background=spec.background, max_bytes=max_bytes,
        quality=spec.quality, quality_floor=spec.quality_floor, animated=animated,
        passthrough=passthrough, orientation=facts.exif_orientation, to_srgb=to_srgb,
        min_width=spec.min_width, min_height=spec.min_height,
    )
    return target, actions, warnings


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
    g = _image_geometry(info, spec, wanted_aspect(info.aspect, spec))
    if g.width * g.height * facts.frames > ANIMATION_PIXEL_BUDGET:
        return False
    shrink = min(1.0, (g.content_width * g.content_height) / max(1, info.width * info.height))
    cap = spec.max_animated_bytes or spec.max_bytes
    return info.size_bytes * shrink <= cap


# X's published GIF limit (platform-specs.md section 1): width x height x frames <= 300 million.
ANIMATION_PIXEL_BUDGET = 300_000_000


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
    if Fraction(w, h) < lo and h > 1:
        h = max(1, math.floor(w / lo))
    elif Fraction(w, h) > hi and w > 1:
        w = max(1, math.floor(h * hi))
    if (w, h) == (g.width, g.height):
        return g
    return _force_size(g, (w, h))


def _force_size(g: Geometry, size: tuple[int, int]) -> Geometry:
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


# --------------------------------------------------------------------------- video

# Bump when a video target would now produce different bytes (filters, encoder settings).
VIDEO_ENCODER_VERSION = "2"
# A first frame this close to 0 s needs no remux: without an edit list (Instagram and Threads
# refuse them) B-frame reordering delays the first frame by up to two frame times (x264's
# B-pyramid), so every conformant encode starts there. Three frames, at least 0.1 s.
START_TOLERANCE_S = 0.1
START_TOLERANCE_FRAMES = 3


def start_tolerance_s(fps: Fraction | None) -> float:
    """How far from 0 s a file's first frame may be and still count as starting at 0.

    Raises:
        Nothing.
    """
    if not fps or fps <= 0:
        return START_TOLERANCE_S
    return max(START_TOLERANCE_S, START_TOLERANCE_FRAMES / float(fps))
# A source rate within 1 % of a standard rate is that rate with timing jitter (a phone's
# "29.87 fps" average is 30 fps that dropped a frame).
SNAP_TOLERANCE = 0.01
# Clamping rates: above the maximum we keep every 2nd/3rd frame of a standard rate when one
# divides the source (120 -> 60, 90 -> 30), below the minimum we show every frame 2, 3... times
# (15 -> 30, 12 -> 24), so motion stays even instead of juddering.
_DOWN_RATES = (Fraction(60), Fraction(60000, 1001), Fraction(50), Fraction(30),
               Fraction(30000, 1001), Fraction(25), Fraction(24), Fraction(24000, 1001))
_UP_RATES = (Fraction(24), Fraction(25), Fraction(30))
# AAC-LC at 128 kbps or more: Facebook's "stereo AAC at 128 kbps or more", X's recommended
# minimum and the IG/Threads number (platform-specs sections 1, 2, 3, 8).
MIN_AUDIO_KBPS = 128
# EBU R128 measurement, streaming-normal target: no platform states a loudness target
# (platform-specs 3d: "-14 LUFS is a streaming norm"), so a preset that asks for loudnorm gets
# -14 LUFS integrated, -1 dBTP true peak, LRA 11 LU.
LOUDNORM_I, LOUDNORM_TP, LOUDNORM_LRA = -14.0, -1.0, 11.0
# HDR reference white (ITU-R BT.2408: 203 cd/m2 for PQ and HLG) is mapped to SDR white.
HDR_REFERENCE_WHITE_NITS = 203
# The bitrate ceiling never goes below this: a tiny picture (an 8x8 WebM) still needs a few
# hundred kbps of VBV room for its keyframes.
MIN_CEILING_KBPS = 300
# At most this many different encodes share one decode (one ffmpeg process): memory grows
# with every encoder, and one failing branch re-runs the others.
MAX_SHARED_OUTPUTS = 4
# H.264 Annex A table A-1 for the High profile (bitrate and CPB are 1.25 x the Main values):
# (level, max macroblocks/s, max frame size in macroblocks, max kbps, max CPB kbit).
H264_LEVELS = (
    ("3.0", 40_500, 1_620, 12_500, 12_500), ("3.1", 108_000, 3_600, 17_500, 17_500),
    ("3.2", 216_000, 5_120, 25_000, 25_000), ("4.0", 245_760, 8_192, 25_000, 31_250),
    ("4.1", 245_760, 8_192, 62_500, 78_125), ("4.2", 522_240, 8_704, 62_500, 78_125),
    ("5.0", 589_824, 22_080, 168_750, 168_750), ("5.1", 983_040, 36_864, 300_000, 300_000),
    ("5.2", 2_073_600, 36_864, 300_000, 300_000), ("6.0", 4_177_920, 139_264, 300_000, 300_000),
    ("6.1", 8_355_840, 139_264, 600_000, 600_000),
    ("6.2", 16_711_680, 139_264, 1_000_000, 1_000_000),
)
H264_PROFILES = ("baseline", "constrained baseline", "main", "high")
# ffprobe colour-matrix names -> the names swscale's in_color_matrix takes.
_SWS_MATRIX = {"bt709": "bt709", "smpte170m": "bt601", "bt470bg": "bt601", "fcc": "fcc",
               "smpte240m": "smpte240m", "bt2020nc": "bt2020", "bt2020c": "bt2020"}


def choose_fps(info: MediaInfo, spec: VideoSpec) -> tuple[Fraction, bool]:
    """The constant output rate, and whether it differs from the source's.

    Variable-rate sources take their base rate (``r_frame_rate``: the finest spacing, so no
    frame is dropped), snapped to a standard rate; rates outside the preset's range are
    clamped to an even multiple or divisor where one exists.

    Raises:
        Nothing: ``info`` must have a video stream.
    """
    v = info.video
    assert v is not None
    rate = v.fps if v.fps > 0 else v.fps_real
    if v.vfr or not 0 < rate <= 240:
        candidates = (v.fps_real, v.fps, Fraction(30))
        rate = next(r for r in candidates if 0 < r <= 240)
    rate = _snap_rate(rate)
    if rate > spec.fps_max:
        rate = _rate_down(rate, spec.fps_max)
    elif rate < spec.fps_min:
        rate = _rate_up(rate, spec.fps_min, spec.fps_max)
    changed = v.vfr or v.fps <= 0 or abs(float(rate - v.fps)) > float(v.fps) * SNAP_TOLERANCE
    return rate, changed


def _snap_rate(rate: Fraction) -> Fraction:
    near = min(STANDARD_RATES, key=lambda r: abs(float(r - rate)))
    if abs(float(near - rate)) <= float(near) * SNAP_TOLERANCE:
        return near
    return rate.limit_denominator(1001)


def _is_multiple(big: Fraction, small: Fraction) -> bool:
    ratio = float(big / small)
    return round(ratio) >= 1 and abs(ratio - round(ratio)) < 0.001


def _rate_down(rate: Fraction, fps_max: Fraction) -> Fraction:
    allowed = [r for r in _DOWN_RATES if r <= fps_max]
    if not allowed:
        return fps_max
    even = [r for r in allowed if r >= 30 and _is_multiple(rate, r)]
    return even[0] if even else allowed[0]


def _rate_up(rate: Fraction, fps_min: Fraction, fps_max: Fraction) -> Fraction:
    allowed = [r for r in _UP_RATES if fps_min <= r <= fps_max]
    if not allowed:
        return fps_min
    even = [r for r in allowed if _is_multiple(r, rate)]
    return even[0] if even else allowed[0]


def h264_level(width: int, height: int, fps: Fraction, maxrate_kbps: int) -> str:
    """The lowest H.264 level (High profile) that holds this size, rate and VBV.

    Raises:
        Nothing: beyond level 6.2 the highest level is returned (x264 then warns).
    """
    mbs = math.ceil(width / 16) * math.ceil(height / 16)
    mbps = mbs * float(fps)
    for name, max_mbps, max_fs, max_kbps, max_cpb in H264_LEVELS:
        side = math.sqrt(8 * max_fs)  # no side may exceed sqrt(8 * MaxFS) macroblocks
        if (mbps <= max_mbps and mbs <= max_fs and max(width, height) / 16 <= side
                and maxrate_kbps <= max_kbps and 2 * maxrate_kbps <= max_cpb):
            return name
    return H264_LEVELS[-1][0]


# The MP4 index (moov) grows with the number of samples; 16 KB covers a short clip's, the
# 2 % of CONTAINER_OVERHEAD a long one's.
CONTAINER_FIXED_BYTES = 16_000


def budget_kbps(max_bytes: int, duration_s: float, audio_kbps: int) -> int:
    """Video kbps that keeps a file of ``duration_s`` under ``max_bytes`` with its audio.

    May be zero or negative: the audio alone does not fit, and no video bitrate will.

    Raises:
        Nothing.
    """
    usable_bits = (max_bytes * (1 - CONTAINER_OVERHEAD) - CONTAINER_FIXED_BYTES) * 8
    return int(usable_bits / max(duration_s, 0.1) / 1000) - audio_kbps


def video_streams_conform(info: MediaInfo, spec: VideoSpec, max_bytes: int) -> list[str]:
    """Why the video stream cannot be kept as it is (empty: it can).

    Raises:
        Nothing: ``info`` must have a video stream.
    """
    v = info.video
    assert v is not None
    why: list[str] = []
    if v.codec not in spec.codecs:
        why.append(f"codec {v.codec}")
    if v.pix_fmt not in spec.pix_fmts:
        why.append(f"pixel format {v.pix_fmt}")
    if v.codec == "h264" and (v.profile or "").lower() not in H264_PROFILES:
        why.append(f"H.264 profile {v.profile}")
    if v.rotation_deg or v.mirrored:
        why.append("rotation metadata")
    if v.sar != 1:
        why.append("non-square pixels")
    if v.interlaced:
        why.append("interlaced")
    if v.vfr:
        why.append("variable frame rate")
    if not (spec.fps_min <= v.fps <= spec.fps_max):
        why.append(f"{float(v.fps):.3g} fps")
    if v.max_keyframe_interval_s is not None and v.max_keyframe_interval_s > spec.gop_max_s + 1e-3:
        why.append(f"keyframes {v.max_keyframe_interval_s:.1f} s apart")
    if v.hdr and spec.sdr_only:
        why.append("HDR")
    if v.color_range == "pc" or v.pix_fmt.startswith("yuvj"):
        why.append("full-range colour")
    if not (spec.min_width <= info.width <= spec.max_width
            and spec.min_height <= info.height <= spec.max_height):
        why.append(f"size {info.width}x{info.height}")
    if spec.max_long_side and max(info.width, info.height) > spec.max_long_side:
        why.append("long side")
    if info.width % 2 or info.height % 2:
        why.append("odd size")
    a = info.aspect
    if (spec.aspect_min and a < spec.aspect_min) or (spec.aspect_max and a > spec.aspect_max):
        why.append("aspect ratio")
    if spec.max_bitrate_kbps and (v.bitrate_kbps or info.bitrate_kbps or 0) > spec.max_bitrate_kbps:
        why.append("bitrate")
    if info.size_bytes > max_bytes:
        why.append("file size")
    return why


def audio_target(info: MediaInfo, spec: VideoSpec, *, reencode_all: bool) -> AudioTarget:
    """Keep conforming audio, encode the rest, add silence only when the preset requires it.

    Encoded audio is AAC-LC at the source's rate when the preset allows it (44.1 kHz stays
    44.1 kHz), else 48 kHz; more channels than allowed are downmixed to stereo.

    Raises:
        Nothing.
    """
    a = info.audio
    aspec = spec.audio
    default_rate = 48000 if 48000 in aspec.sample_rates_hz else aspec.sample_rates_hz[0]
    kbps = max(aspec.bitrate_kbps, MIN_AUDIO_KBPS)
    if a is None:
        if aspec.required:
            return AudioTarget("silent", sample_rate_hz=default_rate,
                               channels=min(2, aspec.max_channels), bitrate_kbps=kbps)
        return AudioTarget("none")
    rate = a.sample_rate_hz if a.sample_rate_hz in aspec.sample_rates_hz else default_rate
    channels = min(max(1, a.channels), aspec.max_channels)
    if a.channels > aspec.max_channels:
        channels = min(2, aspec.max_channels)  # 5.1 -> stereo, never 5.1 -> 4.0
    conforms = (a.codec in aspec.codecs and (a.codec != "aac" or (a.profile or "LC") == "LC")
                and 1 <= a.channels <= aspec.max_channels
                and a.sample_rate_hz in aspec.sample_rates_hz
                and (a.bitrate_kbps or kbps) >= aspec.min_bitrate_kbps and not aspec.loudnorm)
    if conforms and not reencode_all:
        return AudioTarget("copy", codec=a.codec, sample_rate_hz=a.sample_rate_hz,
                           channels=a.channels, bitrate_kbps=a.bitrate_kbps or kbps)
    return AudioTarget("encode", sample_rate_hz=rate, channels=channels, bitrate_kbps=kbps,
                       loudnorm=aspec.loudnorm)


def _container_ok(info: MediaInfo, spec: VideoSpec) -> bool:
    """The file itself can be delivered: an allowed MP4/MOV, moov first, nothing extra."""
    return (info.format_name in spec.containers and info.format_name in ("mp4", "mov")
            and (bool(info.moov_first) or not spec.faststart) and not info.edit_list
            and not info.has_location
            and abs(info.start_time_s) <= start_tolerance_s(info.video.fps if info.video
                                                            else None)
            and info.extra_streams == 0)


def _colour_in(info: MediaInfo) -> tuple[str, str | None, str]:
    """(swscale input matrix, HDR transfer or None, primaries) of the source."""
    v = info.video
    if v is None:
        return "bt709", None, "bt709"
    matrix = _SWS_MATRIX.get(v.color_space or "")
    if matrix is None:
        # Untagged: HD and larger is BT.709, SD is BT.601 (what players assume too).
        matrix = "bt709" if v.width >= 1280 or v.height >= 720 else "bt601"
    transfer = v.color_transfer if v.color_transfer in ("smpte2084", "arib-std-b67") else None
    if v.hdr and transfer is None:
        transfer = "smpte2084"  # HDR10 metadata without a transfer tag is PQ
    return matrix, transfer, v.color_primaries or ("bt2020" if v.hdr else "bt709")


def plan_video(info: MediaInfo, spec: VideoSpec, *, max_bytes: int, trim_s: float | None,
               from_image: bool, x264_preset: str) -> tuple[VideoTarget, list[str], list[str]]:
    """Target, planned actions and warnings for one video (or animation) and one video variant.

    The least work wins: untouched (``passthrough``) when stream and container conform,
    stream copy into a new MP4 (``remux``) when only the container does not, a new audio
    track only (``audio_only``), else a full encode (``transcode``).

    Raises:
        Nothing: validation has already checked durations and counts.
    """
    v = info.video
    actions: list[str] = []
    warnings: list[str] = []
    from_image = from_image or v is None
    duration = min(info.duration_s or 1.0, trim_s or math.inf)
    stream_problems = (["animated image"] if from_image
                       else video_streams_conform(info, spec, max_bytes))
    if trim_s is not None:
        stream_problems.append("trim")
    audio = audio_target(info, spec, reencode_all=False)
    if v is not None:
        fps, fps_changed = choose_fps(info, spec)
    else:  # an animation: its frame delays are resampled onto a constant 30 fps
        fps = min(max(Fraction(30), spec.fps_min), spec.fps_max)
        fps_changed = True
    aspect = None
    a = info.aspect
    if (spec.aspect_min and a < spec.aspect_min) or (spec.aspect_max and a > spec.aspect_max):
        aspect = spec.target_aspect or _clamp_aspect(a, spec.aspect_min, spec.aspect_max)
    geometry = fit_geometry(
        info.width, info.height, aspect=aspect, fit=spec.fit if aspect else "none",
        max_width=min(spec.max_width, spec.target_width or spec.max_width),
        max_height=min(spec.max_height, spec.target_height or spec.max_height),
        min_width=spec.min_width, min_height=spec.min_height,
        max_long_side=spec.max_long_side, even=True,
    )
    pixels_per_s = geometry.width * geometry.height * float(fps)
    ceiling = max(MIN_CEILING_KBPS, int(pixels_per_s * BITS_PER_PIXEL_CEILING / 1000))
    # The planned cap never goes below 100 kbps: a budget under that is the byte-budget
    # retries' to judge (smaller pictures, or too_large).
    budget = max(100, budget_kbps(max_bytes, duration,
                                  audio.bitrate_kbps if audio.action != "none" else 0))
    maxrate = max(1, min(budget, ceiling, spec.max_bitrate_kbps or budget))

    action: Literal["passthrough", "remux", "audio_only", "transcode"]
    if stream_problems:
        action = "transcode"
    elif audio.action in ("copy", "none"):
        action = "passthrough" if _container_ok(info, spec) else "remux"
    else:
        action = "audio_only"
    transcode = action == "transcode"
    # Every encode is 8-bit SDR H.264, so HDR is tone-mapped whenever we encode, not only for
    # SDR-only presets (an HDR source YouTube would keep still needs it once re-encoded).
    tonemap = bool(v and v.hdr and transcode)
    matrix, transfer, primaries = _colour_in(info)

    if action == "passthrough":
        actions.append("passed_through")
    elif action in ("remux", "audio_only"):
        actions.append("remuxed")
    else:
        actions.append("transcoded")
        if v is not None and (v.rotation_deg or v.mirrored):
            actions.append("rotated")
        if v is not None and v.sar != 1:
            actions.append("square_pixels")
        if geometry.fit != "none":
            actions.append({"crop": "cropped", "pad": "padded", "blur": "blurred"}[geometry.fit])
        if geometry.resized:
            actions.append("resized")
        if fps_changed:
            actions.append("fps_changed")
        if tonemap:
            actions.append("tone_mapped")
        if v is not None and v.interlaced:
            actions.append("deinterlaced")
        if trim_s is not None:
            actions.append("trimmed")
    if action in ("audio_only", "transcode"):
        if audio.action == "encode":
            actions.append("audio_encoded")
            if audio.loudnorm:
                actions.append("loudness_normalised")
        elif audio.action == "silent":
            actions.append("audio_added")
    if action != "passthrough" and (info.has_location or info.extra_streams):
        actions.append("stripped_metadata")
    if geometry.upscaled:
        warnings.append("upscaled")
    gop = max(1, math.floor(float(fps) * spec.gop_max_s))
    target = VideoTarget(
        action=action, geometry=geometry, pad_color=spec.pad_color,
        fps=fps if transcode else None, gop_frames=gop, tonemap=tonemap,
        deinterlace=bool(v and v.interlaced),
        full_to_limited=bool(v and (v.color_range == "pc" or v.pix_fmt.startswith("yuvj"))),
        max_bytes=max_bytes, maxrate_kbps=maxrate if transcode else 0,
        trim_s=trim_s, audio=audio, from_image=from_image,
        x264_preset=x264_preset if transcode else "",
        spec_max_bitrate_kbps=spec.max_bitrate_kbps,
        square_pixels=bool(v and v.sar != 1), in_matrix=matrix,
        in_transfer=transfer if tonemap else None, in_primaries=primaries,
        level=h264_level(geometry.width, geometry.height, fps, maxrate) if transcode else "",
        min_width=spec.min_width, min_height=spec.min_height,
        source_codec=v.codec if v is not None and not transcode else "",
    )
    return target, actions, warnings


def merge_video_targets(a: VideoTarget, b: VideoTarget) -> VideoTarget:
    """One output for two uses with the same key: it must meet the stricter of each cap.

    The byte cap and the preset's bitrate cap are not part of the key (they change the
    bytes only when they bind), so the shared target takes the smallest of each, and the
    retries and the verification hold the output to them.

    Raises:
        Nothing.
    """
    caps = [c for c in (a.spec_max_bitrate_kbps, b.spec_max_bitrate_kbps) if c]
    return replace(a, max_bytes=min(a.max_bytes, b.max_bytes),
                   spec_max_bitrate_kbps=min(caps) if caps else None)


def shared_decodes(renditions: Iterable[Rendition]) -> tuple[tuple[str, ...], ...]:
    """Encodes of one source that one ffmpeg process makes from a single decode.

    They share everything before the per-output ``split``: the decode, the deinterlacer and
    the square-pixel scale; each branch then has its own fps, geometry, tone-map and encoder.

    Raises:
        Nothing.
    """
    groups: dict[tuple[object, ...], list[str]] = {}
    for r in renditions:
        t = r.target
        if isinstance(t, VideoTarget) and t.action == "transcode" and not t.audio.loudnorm:
            key = (r.source_sha256, t.deinterlace, t.from_image, t.square_pixels,
                   t.full_to_limited)
            groups.setdefault(key, []).append(r.key)
    out: list[tuple[str, ...]] = []
    for keys in groups.values():
        for i in range(0, len(keys), MAX_SHARED_OUTPUTS):
            chunk = tuple(keys[i:i + MAX_SHARED_OUTPUTS])
            if len(chunk) > 1:
                out.append(chunk)
    return tuple(out)


# --------------------------------------------------------------------------- covers


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


# --------------------------------------------------------------------------- the job plan


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
             thumb_infos: dict[str, MediaInfo], x264_preset: str = "medium") -> JobPlan:
    """Plan all outputs of a job; identical targets for the same source share one rendition.

    Args:
        checks: validated accounts (failed ones are carried through untouched).
        sha_of: source sha256 by media reference text.
        thumb_infos: probed thumbnails by reference text.
        x264_preset: speed/quality trade-off for encodes (part of the output key).
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
                target, acts, warns = plan_image(
                    sel.info, spec, max_bytes=max_bytes,
                    forced_aspect=frame[0] if frame else None,
                    forced_size=frame[1] if frame else None,
                    keep_animation=not sel.still_only,
                )
            else:
                vspec = sel.variant.video
                assert vspec is not None
                max_bytes = min(vspec.max_bytes, limits.max_video_bytes or vspec.max_bytes)
                target, acts, warns = plan_video(sel.info, vspec, max_bytes=max_bytes,
                                                 trim_s=sel.trim_to_s, from_image=sel.as_video,
                                                 x264_preset=x264_preset)
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
        geometry = _force_size(geometry, (cover.width, cover.height))
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
