"""Reading a preset file: TOML into a :class:`~.records.Preset`, one small reader per section.

The file is read top to bottom once; problems are listed in that order, so the order of the
reads below is the order of the messages a broken file gets.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from ..errors import PresetError
from .reader import Reader, pick
from .records import (
    AUDIO_CODECS,
    CAPTION_FORMATS,
    CAROUSEL_POLICIES,
    CONTAINERS,
    COVER_FIT_POLICIES,
    COVER_SOURCES,
    FIT_POLICIES,
    IMAGE_FORMATS,
    LOW_RESOLUTION_POLICIES,
    SCHEMA_VERSION,
    UI_EDGES,
    VARIANT_KINDS,
    VIDEO_CODECS,
    VIDEO_QUALITIES,
    AccountCeiling,
    AudioSpec,
    CaptionSpec,
    CoverSpec,
    ImageSpec,
    Limits,
    Mode,
    Preset,
    UiEdge,
    UiZone,
    Variant,
    VariantKind,
    VideoSpec,
)


def load_preset_file(path: Path) -> Preset:
    """Read and validate one preset file.

    Raises:
        PresetError: unreadable TOML or an invalid preset.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise PresetError(f"{path}: {err}") from err
    return parse_preset(data, origin=str(path), stem=path.stem)


def parse_preset(data: Mapping[str, Any], *, origin: str, stem: str | None = None) -> Preset:
    """Validate a parsed TOML document into a :class:`Preset`.

    Raises:
        PresetError: every problem found, listed with the file and key.
    """
    problems: list[str] = []
    r = Reader(data, "", problems)
    head = _header(r, stem)
    limits = _limits(r.table("limits", required=True))
    mode_setting = r.str_("mode_setting")
    default_mode = r.str_("default_mode", "default") or "default"
    variants = _variants(head.platform, r.table("variants", required=True))
    modes = _modes(r.table("modes", required=True), variants, default_mode)
    enums = _enums(r.table("enums"))
    c = r.table("captions")
    captions = _captions(c) if c else None
    r.finish()
    if problems:
        raise PresetError(f"{origin}: " + "; ".join(problems), details={"problems": problems})
    return Preset(platform=head.platform, version=head.version, label=head.label,
                  aliases=head.aliases, sources=head.sources, checked=head.checked,
                  limits=limits, mode_setting=mode_setting, default_mode=default_mode,
                  modes=modes, enums=enums, variants=variants, origin=origin,
                  captions=captions)


@dataclass(frozen=True, slots=True)
class _Header:
    """The top-level scalars of a preset file: who it is for and where its numbers come from."""

    platform: str
    version: str
    label: str
    aliases: tuple[str, ...]
    sources: tuple[str, ...]
    checked: str


def _header(r: Reader, stem: str | None) -> _Header:
    schema = r.int_("schema", None, required=True)
    if schema is not None and schema != SCHEMA_VERSION:
        r.problem("schema", f"unsupported schema {schema} (this build reads {SCHEMA_VERSION})")
    platform = r.str_("platform", "", required=True) or ""
    if stem is not None and platform and platform != stem:
        r.problem("platform", f"{platform!r} must equal the file name {stem!r}")
    version = r.str_("version", "", required=True) or ""
    label = r.str_("label", platform) or platform
    aliases = r.strs("aliases")
    sources = r.strs("sources")
    checked_raw = r.raw("checked")
    checked = (checked_raw.isoformat() if isinstance(checked_raw, dt.date)
               else str(checked_raw or ""))
    return _Header(platform=platform, version=version, label=label, aliases=aliases,
                   sources=sources, checked=checked)


def _limits(r: Reader | None) -> Limits:
    if r is None:
        return Limits(0, 0, False, None, None, True, False)
    limits = Limits(
        max_images=r.int_("max_images", 0, required=True) or 0,
        max_videos=r.int_("max_videos", 0, required=True) or 0,
        media_required=r.bool_("media_required"),
        max_image_bytes=r.int_("max_image_bytes", None, lo=1),
        max_video_bytes=r.int_("max_video_bytes", None, lo=1),
        allow_mixed=r.bool_("allow_mixed", True),
        thread=r.bool_("thread"),
        min_carousel=r.int_("min_carousel", 2, lo=1) or 2,
        max_items=r.int_("max_items", None, lo=1),
        alt_text_max_chars=r.int_("alt_text_max_chars", None, lo=1),
    )
    r.finish()
    return limits


def _variants(platform: str, r: Reader | None) -> dict[str, Variant]:
    variants: dict[str, Variant] = {}
    if r is None:
        return variants
    for name in list(r.data):
        sub = r.table(name)
        if sub is not None:
            variants[name] = _variant(platform, name, sub)
    r.finish()
    return variants


def _modes(r: Reader | None, variants: Mapping[str, Variant],
           default_mode: str) -> dict[str, Mode]:
    """``[modes.NAME]``: each mode's variants must exist and be of the kind the slot takes."""
    modes: dict[str, Mode] = {}
    if r is None:
        return modes
    for name in list(r.data):
        sub = r.table(name)
        if sub is None:
            continue
        mode = Mode(image=sub.str_("image"), video=sub.str_("video"),
                    carousel=sub.str_("carousel"), cover_ignored=sub.str_("cover_ignored"))
        sub.finish()
        _check_mode_refs(r, name, mode, variants)
        modes[name] = mode
    r.finish()
    if modes and default_mode not in modes:
        r.problems.append(f"default_mode: {default_mode!r} is not one of the modes")
    return modes


def _check_mode_refs(r: Reader, name: str, mode: Mode, variants: Mapping[str, Variant]) -> None:
    refs = ((mode.image, "image"), (mode.video, "video"), (mode.carousel, "image"))
    for ref, want in refs:
        if ref is not None and ref not in variants:
            r.problems.append(f"modes.{name}.{want}: no variant {ref!r}")
        elif ref is not None and variants[ref].kind != want:
            r.problems.append(f"modes.{name}.{want}: variant {ref!r} is not an {want} variant")


def _captions(r: Reader) -> CaptionSpec:
    """``[captions]``: the caption files the platform takes with a video."""
    picked = (pick(name, CAPTION_FORMATS) for name in r.strs("formats", choices=CAPTION_FORMATS))
    formats = tuple(f for f in picked if f is not None)
    if not formats:
        r.problem("formats", "required: the caption formats the platform takes, best first")
    spec = CaptionSpec(formats=formats,
                       source=r.str_("source", "", required=True) or "",
                       max_bytes=r.int_("max_bytes", None, lo=1),
                       max_tracks=r.int_("max_tracks", None, lo=1))
    r.finish()
    return spec


def _enums(r: Reader | None) -> dict[str, tuple[str, ...]]:
    enums: dict[str, tuple[str, ...]] = {}
    if r is None:
        return enums
    for name in list(r.data):
        enums[name] = r.strs(name)
    r.finish()
    return enums


# --------------------------------------------------------------------------- one variant


def _variant(platform: str, name: str, r: Reader) -> Variant:
    kind = r.choice("kind", "image", VARIANT_KINDS, required=True)
    label = r.str_("label", name) or name
    image = video = cover = None
    if kind == "image":
        t = r.table("image", required=True)
        image = _image(t) if t else None
    else:
        t = r.table("video", required=True)
        video = _video(t) if t else None
    c = r.table("cover")
    cover = _cover(c) if c else None
    z = r.table("ui_zones")
    ui_zones = _ui_zones(z) if z else ()
    a = r.table("account_ceiling")
    ceiling = _account_ceiling(a, kind) if a else None
    r.finish()
    return Variant(id=f"{platform}-{name}", name=name, kind=kind, label=label, image=image,
                   video=video, cover=cover, ui_zones=ui_zones, account_ceiling=ceiling)


def _account_ceiling(r: Reader, kind: VariantKind) -> AccountCeiling:
    """``[variants.X.account_ceiling]``: the most an account's own limits may ask for."""
    source = r.str_("source", "", required=True) or ""
    ceiling = AccountCeiling(
        source=source,
        max_duration_s=r.float_("max_duration_s", None, lo=0.001) if kind == "video" else None,
        max_bytes=r.int_("max_bytes", None, lo=1))
    r.finish()
    return ceiling


def _audio(r: Reader | None) -> AudioSpec:
    if r is None:
        return AudioSpec()
    spec = AudioSpec(
        codecs=r.strs("codecs", ("aac",), choices=AUDIO_CODECS),
        max_channels=r.int_("max_channels", 2, lo=1, hi=8) or 2,
        sample_rates_hz=r.ints("sample_rates_hz", (48000, 44100)),
        bitrate_kbps=r.int_("bitrate_kbps", 128, lo=32, hi=512) or 128,
        min_bitrate_kbps=r.int_("min_bitrate_kbps", 0) or 0,
        required=r.bool_("required"),
        loudnorm=r.bool_("loudnorm"),
    )
    r.finish()
    return spec


def _image(r: Reader) -> ImageSpec:
    spec = ImageSpec(
        formats=r.strs("formats", choices=IMAGE_FORMATS) or ("jpeg",),
        max_bytes=r.int_("max_bytes", 1, lo=1, required=True) or 1,
        min_width=r.int_("min_width", 1, lo=1) or 1,
        max_width=r.int_("max_width", 8192, lo=1) or 8192,
        min_height=r.int_("min_height", 1, lo=1) or 1,
        max_height=r.int_("max_height", 8192, lo=1) or 8192,
        max_pixels=r.int_("max_pixels", None, lo=1),
        max_side_sum=r.int_("max_side_sum", None, lo=2),
        max_short_side=r.int_("max_short_side", None, lo=1),
        aspect_min=r.ratio("aspect_min"),
        aspect_max=r.ratio("aspect_max"),
        fit=r.choice("fit", "pad", FIT_POLICIES),
        crop_ratios=r.ratios("crop_ratios"),
        background=r.str_("background", "#ffffff") or "#ffffff",
        carousel=r.choice("carousel", "none", CAROUSEL_POLICIES),
        animated_formats=r.strs("animated_formats", choices=IMAGE_FORMATS),
        max_animated_bytes=r.int_("max_animated_bytes", None, lo=1),
        max_animated_frames=r.int_("max_animated_frames", None, lo=1),
        quality=r.int_("quality", 90, lo=1, hi=100) or 90,
        quality_floor=r.int_("quality_floor", 60, lo=1, hi=100) or 60,
        min_upscale_width=r.int_("min_upscale_width", None, lo=1),
    )
    r.finish()
    r.check_order("min_width", spec.min_width, "max_width", spec.max_width)
    r.check_order("min_height", spec.min_height, "max_height", spec.max_height)
    r.check_order("aspect_min", spec.aspect_min, "aspect_max", spec.aspect_max)
    r.check_order("quality_floor", spec.quality_floor, "quality", spec.quality)
    return spec


def _video(r: Reader) -> VideoSpec:
    spec = VideoSpec(
        containers=r.strs("containers", ("mp4",), choices=CONTAINERS),
        codecs=r.strs("codecs", ("h264",), choices=VIDEO_CODECS),
        max_bytes=r.int_("max_bytes", 1, lo=1, required=True) or 1,
        pix_fmts=r.strs("pix_fmts", ("yuv420p",)),
        min_width=r.int_("min_width", 2, lo=2) or 2,
        max_width=r.int_("max_width", 4096, lo=2) or 4096,
        min_height=r.int_("min_height", 2, lo=2) or 2,
        max_height=r.int_("max_height", 4096, lo=2) or 4096,
        max_long_side=r.int_("max_long_side", None, lo=2),
        aspect_min=r.ratio("aspect_min"),
        aspect_max=r.ratio("aspect_max"),
        target_aspect=r.ratio("target_aspect"),
        fit=r.choice("fit", "pad", FIT_POLICIES),
        pad_color=r.str_("pad_color", "black") or "black",
        fps_min=Fraction(r.float_("fps_min", 1.0) or 1.0).limit_denominator(1001),
        fps_max=Fraction(r.float_("fps_max", 60.0) or 60.0).limit_denominator(1001),
        min_duration_s=r.float_("min_duration_s", 0.0) or 0.0,
        max_duration_s=r.float_("max_duration_s", None),
        max_bitrate_kbps=r.int_("max_bitrate_kbps", None, lo=1),
        gop_max_s=r.float_("gop_max_s", 2.0) or 2.0,
        faststart=r.bool_("faststart", True),
        sdr_only=r.bool_("sdr_only", True),
        target_width=r.int_("target_width", None, lo=2),
        target_height=r.int_("target_height", None, lo=2),
        audio=_audio(r.table("audio")),
        classed_short_max_s=r.float_("classed_short_max_s", None),
        quality=r.str_("quality", "standard", choices=VIDEO_QUALITIES) or "standard",
        display_long_side=r.int_("display_long_side", None, lo=2),
        display_short_side=r.int_("display_short_side", None, lo=2),
        recommended_min_width=r.int_("recommended_min_width", None, lo=2),
        recommended_min_height=r.int_("recommended_min_height", None, lo=2),
        low_resolution=r.choice("low_resolution", "warn", LOW_RESOLUTION_POLICIES),
    )
    r.finish()
    r.check_order("min_width", spec.min_width, "max_width", spec.max_width)
    r.check_order("min_height", spec.min_height, "max_height", spec.max_height)
    if (spec.recommended_min_width is None) != (spec.recommended_min_height is None):
        r.problem("recommended_min_width", "needs recommended_min_height (both or neither)")
    r.check_order("aspect_min", spec.aspect_min, "aspect_max", spec.aspect_max)
    r.check_order("display_short_side", spec.display_short_side,
                  "display_long_side", spec.display_long_side)
    if (spec.display_long_side is None) != (spec.display_short_side is None):
        r.problem("display_short_side", "display_long_side and display_short_side go together")
    r.check_order("fps_min", spec.fps_min, "fps_max", spec.fps_max)
    if spec.max_duration_s is not None:
        r.check_order("min_duration_s", spec.min_duration_s,
                      "max_duration_s", spec.max_duration_s)
    return spec


def _cover(r: Reader) -> CoverSpec:
    aspect: Fraction | Literal["video"] | None
    if r.data.get("aspect") == "video":  # the cover takes the video's own shape
        r.seen.add("aspect")
        aspect = "video"
    else:
        aspect = r.ratio("aspect")
    spec = CoverSpec(
        source=r.choice("source", "image", COVER_SOURCES, required=True),
        formats=r.strs("formats", ("jpeg",), choices=IMAGE_FORMATS),
        width=r.int_("width", 1280, lo=16) or 1280,
        height=r.int_("height", 720, lo=16) or 720,
        min_width=r.int_("min_width", 1, lo=1) or 1,
        aspect=aspect,
        max_bytes=r.int_("max_bytes", 2_000_000, lo=1) or 2_000_000,
        fit=r.choice("fit", "blur", COVER_FIT_POLICIES),
        default_at_ms=r.int_("default_at_ms", None),
        platform_ignores=r.str_("platform_ignores"),
    )
    r.finish()
    return spec


def _ui_zones(r: Reader) -> tuple[UiZone, ...]:
    """``[variants.X.ui_zones.EDGE]`` tables: ``fraction`` in (0, 0.5], ``what``, ``source``."""
    zones = []
    for key in list(r.data):
        sub = r.table(key)
        edge = pick(key, UI_EDGES)
        if edge is None:
            r.problem(key, f"unknown edge (one of {', '.join(UI_EDGES)})")
            continue
        if sub is not None and (zone := _ui_zone(edge, sub)) is not None:
            zones.append(zone)
    r.finish()
    return tuple(zones)


def _ui_zone(edge: UiEdge, r: Reader) -> UiZone | None:
    """One edge's band, or None (its problems recorded) when any field is missing or bad."""
    fraction = r.float_("fraction", None)
    if fraction is None and "fraction" not in r.data:
        r.problem("fraction", "missing")
    elif fraction is not None and not 0.0 < fraction <= 0.5:
        # a band deeper than half the frame would meet the opposite band: a typo
        r.problem("fraction", f"must be in (0, 0.5], got {fraction}")
        fraction = None
    what = r.str_("what", "", required=True) or ""
    source = r.str_("source", "", required=True) or ""
    if "source" in r.data and not source.strip():
        r.problem("source", "must not be empty")
    r.finish()
    if fraction is not None and what and source.strip():
        return UiZone(edge=edge, fraction=fraction, what=what, source=source)
    return None
