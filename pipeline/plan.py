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

from .models import MediaInfo
from .presets import CoverSpec, ImageSpec, Preset, VideoSpec
from .validate import AccountCheck, CoverChoice, Selected

# Bump when the same target would now produce different bytes (encoder settings, filters).
ENCODER_VERSION = "1"
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
        if target.action != "transcode":
            for name in ("geometry", "pad_color", "gop_frames", "maxrate_kbps", "x264_preset",
                         "tonemap", "deinterlace", "full_to_limited"):
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
    return max(2, int(round(n / 2)) * 2)


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
        frame_w, frame_h = (height * want, float(height)) if src < want else (float(width), width / want)
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
    rnd = _even if even else (lambda v: max(1, int(round(v))))
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


def plan_image(info: MediaInfo, spec: ImageSpec, *, max_bytes: int,
               forced_aspect: Fraction | None = None,
               forced_size: tuple[int, int] | None = None,
               keep_animation: bool = False) -> tuple[ImageTarget, list[str], list[str]]:
    """Target, planned actions and warnings for one image and one image variant."""
    assert info.image is not None
    facts = info.image
    actions: list[str] = []
    warnings: list[str] = []
    aspect = forced_aspect
    if aspect is None and (
        (spec.aspect_min is not None and info.aspect < spec.aspect_min)
        or (spec.aspect_max is not None and info.aspect > spec.aspect_max)
    ):
        if spec.fit == "crop" and spec.crop_ratios:
            aspect = nearest_ratio(info.aspect, spec.crop_ratios)
        else:
            aspect = _clamp_aspect(info.aspect, spec.aspect_min, spec.aspect_max)
    min_w = spec.min_upscale_width or 1
    geometry = fit_geometry(
        info.width, info.height, aspect=aspect, fit=spec.fit if aspect else "none",
        max_width=spec.max_width, max_height=spec.max_height,
        min_width=max(spec.min_width, min_w), min_height=spec.min_height,
        max_pixels=spec.max_pixels, max_side_sum=spec.max_side_sum,
        max_short_side=spec.max_short_side,
    )
    if forced_size is not None and (geometry.width, geometry.height) != forced_size:
        geometry = _force_size(geometry, forced_size)
    animated = keep_animation and info.animated and info.format_name in spec.animated_formats
    out_format = _image_format(info, spec, animated)
    if animated and spec.max_animated_bytes:
        max_bytes = min(max_bytes, spec.max_animated_bytes)
    to_srgb = bool(facts.icc_profile and "srgb" not in facts.icc_profile.lower()) or facts.mode in (
        "CMYK", "YCbCr", "LAB")
    if facts.exif_orientation != 1:
        actions.append("rotated")
    if to_srgb:
        actions.append("converted_colour")
    if facts.has_alpha and out_format == "jpeg":
        actions.append("flattened_alpha")
    if geometry.fit != "none":
        actions.append({"crop": "cropped", "pad": "padded", "blur": "blurred"}[geometry.fit])
    if geometry.resized:
        actions.append("resized")
    if geometry.upscaled:
        warnings.append("upscaled")
    if out_format != info.format_name:
        actions.append("converted")
    passthrough = (not actions and info.size_bytes <= max_bytes and facts.bits == 8
                   and (not info.animated or animated) and facts.mode not in ("CMYK", "I;16"))
    if passthrough:
        actions = ["passed_through"]
    if facts.has_exif or facts.has_xmp or facts.has_gps:
        actions.append("stripped_metadata")
    target = ImageTarget(
        format=out_format, geometry=geometry, background=spec.background, max_bytes=max_bytes,
        quality=spec.quality, quality_floor=spec.quality_floor, animated=animated,
        passthrough=passthrough, orientation=facts.exif_orientation, to_srgb=to_srgb,
        min_width=spec.min_width, min_height=spec.min_height,
    )
    return target, actions, warnings


def _force_size(g: Geometry, size: tuple[int, int]) -> Geometry:
    """Same shape, exact size (Pinterest carousels: every image the same size)."""
    w, h = size
    return Geometry(width=w, height=h, content_width=w if g.fit != "pad" else min(w, g.content_width),
                    content_height=h if g.fit != "pad" else min(h, g.content_height),
                    crop_x=g.crop_x, crop_y=g.crop_y, crop_width=g.crop_width,
                    crop_height=g.crop_height, fit=g.fit, source_width=g.source_width,
                    source_height=g.source_height, upscaled=g.upscaled or w > g.width)


def _image_format(info: MediaInfo, spec: ImageSpec, animated: bool) -> str:
    if animated:
        return info.format_name
    assert info.image is not None
    if info.format_name in spec.formats and info.format_name not in ("gif",):
        return info.format_name
    if info.image.has_alpha and "png" in spec.formats:
        return "png"
    return "jpeg" if "jpeg" in spec.formats else spec.formats[0]


# --------------------------------------------------------------------------- video


def choose_fps(info: MediaInfo, spec: VideoSpec) -> tuple[Fraction, bool]:
    """The constant output rate, and whether it differs from the source's."""
    assert info.video is not None
    src = info.video.fps if info.video.fps > 0 else Fraction(30)
    if info.video.vfr or src > 240:
        # Variable rate: the nearest standard rate to the average.
        src = min(STANDARD_RATES, key=lambda r: abs(float(r) - float(info.video.fps or 30)))  # type: ignore[union-attr]
    if src > spec.fps_max:
        # 120/240 -> 60 (or 30 where 60 is over the cap): whole-frame decimation, no judder.
        for cand in (Fraction(60), Fraction(30), Fraction(25), Fraction(24)):
            if cand <= spec.fps_max:
                return cand, True
        return spec.fps_max, True
    if src < spec.fps_min:
        for cand in (Fraction(24), Fraction(25), Fraction(30)):
            if cand >= spec.fps_min:
                return cand, True
        return spec.fps_min, True
    return src, src != info.video.fps or info.video.vfr


def _budget_kbps(max_bytes: int, duration_s: float, audio_kbps: int) -> int:
    usable_bits = max_bytes * (1 - CONTAINER_OVERHEAD) * 8 - 64_000 * 8
    return max(100, int(usable_bits / max(duration_s, 0.1) / 1000) - audio_kbps)


def video_streams_conform(info: MediaInfo, spec: VideoSpec, max_bytes: int) -> list[str]:
    """Why the video stream cannot be kept as it is (empty: it can)."""
    v = info.video
    assert v is not None
    why: list[str] = []
    if v.codec not in spec.codecs:
        why.append(f"codec {v.codec}")
    if v.pix_fmt not in spec.pix_fmts:
        why.append(f"pixel format {v.pix_fmt}")
    if v.codec == "h264" and (v.profile or "").lower() not in ("baseline", "constrained baseline",
                                                              "main", "high"):
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
    if v.hdr and spec.sdr_only:
        why.append("HDR")
    if v.color_range == "pc":
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
    """Keep conforming audio, encode the rest, add silence only when the preset requires it."""
    a = info.audio
    aspec = spec.audio
    if a is None:
        if aspec.required:
            return AudioTarget("silent", sample_rate_hz=48000, channels=2,
                               bitrate_kbps=aspec.bitrate_kbps)
        return AudioTarget("none")
    rate = a.sample_rate_hz if a.sample_rate_hz in aspec.sample_rates_hz else (
        48000 if 48000 in aspec.sample_rates_hz else aspec.sample_rates_hz[0])
    channels = min(max(1, a.channels), aspec.max_channels)
    conforms = (a.codec in aspec.codecs and (a.codec != "aac" or (a.profile or "LC") == "LC")
                and a.channels <= aspec.max_channels and a.sample_rate_hz in aspec.sample_rates_hz
                and not aspec.loudnorm)
    if conforms and not reencode_all:
        return AudioTarget("copy", codec=a.codec, sample_rate_hz=a.sample_rate_hz,
                           channels=a.channels, bitrate_kbps=a.bitrate_kbps or aspec.bitrate_kbps)
    return AudioTarget("encode", sample_rate_hz=rate, channels=channels,
                       bitrate_kbps=max(aspec.bitrate_kbps, 128 if channels > 1 else 96),
                       loudnorm=aspec.loudnorm)


def plan_video(info: MediaInfo, spec: VideoSpec, *, max_bytes: int, trim_s: float | None,
               from_image: bool, x264_preset: str) -> tuple[VideoTarget, list[str], list[str]]:
    """Target, planned actions and warnings for one video and one video variant."""
    v = info.video
    actions: list[str] = []
    warnings: list[str] = []
    duration = min(info.duration_s or 1.0, trim_s or math.inf)
    if v is None:  # an animated image becomes a video
        from_image = True
    stream_problems = (["animated image"] if from_image or v is None
                       else video_streams_conform(info, spec, max_bytes))
    if trim_s is not None:
        stream_problems.append("trim")
    audio = audio_target(info, spec, reencode_all=False)
    container_ok = (info.format_name in spec.containers and info.format_name in ("mp4", "mov")
                    and (info.moov_first or not spec.faststart) and not info.edit_list
                    and not info.has_location and info.start_time_s == 0)
    fps = v.fps if v is not None else Fraction(30)
    fps_changed = False
    if v is not None:
        fps, fps_changed = choose_fps(info, spec)
    elif info.duration_s and info.image is not None and info.image.frames > 1:
        fps = Fraction(30)
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
    ceiling = int(pixels_per_s * BITS_PER_PIXEL_CEILING / 1000)
    budget = _budget_kbps(max_bytes, duration, audio.bitrate_kbps if audio.action != "none" else 0)
    maxrate = min(budget, ceiling, spec.max_bitrate_kbps or budget)
    tonemap = bool(v and v.hdr and spec.sdr_only)

    if not stream_problems and audio.action in ("copy", "none"):
        action: Literal["passthrough", "remux", "audio_only", "transcode"] = (
            "passthrough" if container_ok else "remux")
    elif not stream_problems:
        action = "audio_only"
    else:
        action = "transcode"
        audio = audio_target(info, spec, reencode_all=False)

    if action == "passthrough":
        actions.append("passed_through")
    elif action == "remux":
        actions.append("remuxed")
        if info.has_location:
            actions.append("stripped_metadata")
    else:
        if action == "audio_only":
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
        if audio.action == "encode":
            actions.append("audio_encoded")
        elif audio.action == "silent":
            actions.append("audio_added")
        if trim_s is not None:
            actions.append("trimmed")
        if info.has_location:
            actions.append("stripped_metadata")
    if geometry.upscaled:
        warnings.append("upscaled")
    gop = max(1, int(math.floor(float(fps) * spec.gop_max_s)))
    target = VideoTarget(
        action=action, geometry=geometry, pad_color=spec.pad_color,
        fps=fps if action == "transcode" else None, gop_frames=gop, tonemap=tonemap,
        deinterlace=bool(v and v.interlaced), full_to_limited=bool(v and v.color_range == "pc"),
        max_bytes=max_bytes, maxrate_kbps=maxrate if action == "transcode" else 0,
        trim_s=trim_s, audio=audio, from_image=from_image,
        x264_preset=x264_preset if action == "transcode" else "",
        spec_max_bitrate_kbps=spec.max_bitrate_kbps,
    )
    return target, actions, warnings


# --------------------------------------------------------------------------- covers


def plan_cover(choice: CoverChoice, video_geometry: Geometry | None,
               thumb: MediaInfo | None) -> CoverTarget:
    """The cover's exact size and format: a frame matches the delivered video."""
    spec: CoverSpec = choice.spec
    fmt = spec.formats[0]
    if choice.source == "frame":
        w, h = ((video_geometry.width, video_geometry.height) if video_geometry
                else (choice.video.info.width, choice.video.info.height))
        return CoverTarget("frame", choice.timestamp_ms, fmt, w, h, "none", spec.max_bytes, 1)
    if thumb is not None and thumb.image is not None and thumb.image.has_alpha and "png" in spec.formats:
        fmt = "png"
    if spec.aspect == "video":
        vg = video_geometry
        vw, vh = (vg.width, vg.height) if vg else (choice.video.info.width, choice.video.info.height)
        aspect = Fraction(vw, vh)
    elif spec.aspect is not None:
        aspect = spec.aspect
    else:
        aspect = Fraction(spec.width, spec.height)
    box_w, box_h = spec.width, spec.height
    scale = min(box_w / aspect, float(box_h)) if aspect >= 1 else min(float(box_h), box_w / aspect)
    h = int(round(scale))
    w = int(round(h * aspect))
    if w > box_w:
        w, h = box_w, int(round(box_w / aspect))
    if thumb is not None:
        # Never blow a small thumbnail up past its own size, except to the platform minimum.
        shrink = min(1.0, max(thumb.width / w, thumb.height / h))
        if shrink < 1.0:
            w, h = int(round(w * shrink)), int(round(h * shrink))
        if w < spec.min_width:
            w, h = spec.min_width, int(round(spec.min_width / aspect))
    return CoverTarget("image", None, fmt, w, h, spec.fit, spec.max_bytes, spec.min_width)


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
        first_aspect: Fraction | None = None
        forced_size: tuple[int, int] | None = None
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
                carousel = sel.carousel_size >= 2 and spec.carousel != "none"
                target, acts, warns = plan_image(
                    sel.info, spec, max_bytes=max_bytes,
                    forced_aspect=first_aspect if carousel else None,
                    forced_size=forced_size if carousel and spec.carousel == "same_size" else None,
                    keep_animation=not sel.still_only,
                )
                if carousel and first_aspect is None:
                    g = target.geometry
                    first_aspect = Fraction(g.width, g.height)
                    forced_size = (g.width, g.height)
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
                    shared_target = replace(shared_target,
                                            max_bytes=min(shared_target.max_bytes,
                                                          target.max_bytes))
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
            base = thumb_sha if thumb_sha else vkey
            cover_key = target_key(base, ctarget, extra="cover")
            prev = covers.get(cover_key)
            accounts_using = (*(prev.accounts if prev else ()), check.account.id)
            covers[cover_key] = CoverPlan(cover_key, ctarget, vkey, thumb_sha, accounts_using)
        accounts.append(AccountPlan(check, tuple(media), cover_key, tuple(warnings)))
    return JobPlan(tuple(renditions.values()), tuple(covers.values()), tuple(accounts))


def _ext(target: Target, info: MediaInfo) -> str:
    if isinstance(target, VideoTarget):
        if target.action == "passthrough" and info.format_name == "mov":
            return "mov"
        return "mp4"
    return {"jpeg": "jpg", "heif": "heic"}.get(target.format, target.format)


def thumbnail_target(thumb: MediaInfo, cover: CoverTarget) -> ImageTarget:
    """The image target that conforms a custom thumbnail to a cover's exact shape and size."""
    assert thumb.image is not None
    aspect = Fraction(cover.width, cover.height)
    geometry = fit_geometry(thumb.width, thumb.height, aspect=aspect, fit=cover.fit,
                            max_width=cover.width, max_height=cover.height,
                            min_width=cover.min_width, min_height=1)
    if (geometry.width, geometry.height) != (cover.width, cover.height):
        geometry = _force_size(geometry, (cover.width, cover.height))
    facts = thumb.image
    return ImageTarget(
        format=cover.format, geometry=geometry, background="#000000", max_bytes=cover.max_bytes,
        quality=90, quality_floor=50, animated=False, passthrough=False,
        orientation=facts.exif_orientation,
        to_srgb=bool(facts.icc_profile and "srgb" not in facts.icc_profile.lower())
        or facts.mode in ("CMYK", "YCbCr", "LAB"),
        min_width=cover.min_width,
    )


def frame_target(cover: CoverTarget) -> ImageTarget:
    """The image target for a video frame (already at the delivered video's size)."""
    geometry = Geometry(width=cover.width, height=cover.height, content_width=cover.width,
                        content_height=cover.height, crop_x=0, crop_y=0, crop_width=cover.width,
                        crop_height=cover.height, fit="none", source_width=cover.width,
                        source_height=cover.height)
    return ImageTarget(format=cover.format, geometry=geometry, background="#000000",
                       max_bytes=cover.max_bytes, quality=92, quality_floor=50, animated=False,
                       passthrough=False, orientation=1, to_srgb=False)
