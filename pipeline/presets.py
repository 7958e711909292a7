"""Platform presets: TOML files in ``presets/`` validated into typed, frozen objects.

One file per platform. A file holds the platform's post limits (from the Create-Post API's
table, made stricter where the platform itself is stricter), the account setting that picks
the media variant (``mode``), and one ``[variants.NAME]`` table per media variant.
Every number in the files cites its source there; this module only checks shape and ranges.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.resources
import json
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from .errors import PresetError

SCHEMA_VERSION = 1
FitPolicy = Literal["crop", "pad", "blur", "smart"]
IMAGE_FORMATS = ("jpeg", "png", "webp", "gif", "bmp", "tiff", "heif", "avif")
CONTAINERS = ("mp4", "mov", "webm", "matroska", "avi", "mpegts")
VIDEO_CODECS = ("h264", "hevc", "vp8", "vp9", "av1", "mpeg4")
VIDEO_QUALITIES = ("high", "standard", "compact")  # a video variant's `quality` (its x264 CRF)
AUDIO_CODECS = ("aac", "opus", "mp3", "vorbis", "ac3")
FIT_POLICIES = ("crop", "pad", "blur", "smart")  # smart: crop around the subject (framing.py)
COVER_FIT_POLICIES = ("crop", "pad", "blur")  # a custom thumbnail is the user's own framing
UI_EDGES = ("top", "bottom", "left", "right")
UiEdge = Literal["top", "bottom", "left", "right"]


# --------------------------------------------------------------------------- schema


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-post limits (the API's table, stricter of API and platform)."""

    max_images: int
    max_videos: int
    media_required: bool
    max_image_bytes: int | None
    max_video_bytes: int | None
    allow_mixed: bool
    thread: bool
    min_carousel: int = 2
    # Images and videos together in one post (a mixed carousel or media group); None: the
    # per-kind counts are the only limit (platforms that never mix kinds).
    max_items: int | None = None


@dataclass(frozen=True, slots=True)
class AudioSpec:
    """What an output's audio must be."""

    codecs: tuple[str, ...] = ("aac",)
    max_channels: int = 2
    sample_rates_hz: tuple[int, ...] = (48000, 44100)
    bitrate_kbps: int = 128
    min_bitrate_kbps: int = 0
    required: bool = False
    loudnorm: bool = False


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """Rules and policy for an image variant."""

    formats: tuple[str, ...]
    max_bytes: int
    min_width: int = 1
    max_width: int = 8192
    min_height: int = 1
    max_height: int = 8192
    max_pixels: int | None = None
    max_side_sum: int | None = None
    max_short_side: int | None = None
    aspect_min: Fraction | None = None
    aspect_max: Fraction | None = None
    fit: FitPolicy = "pad"
    crop_ratios: tuple[Fraction, ...] = ()
    background: str = "#ffffff"
    carousel: Literal["none", "first_aspect", "same_size"] = "none"
    animated_formats: tuple[str, ...] = ()
    max_animated_bytes: int | None = None
    max_animated_frames: int | None = None
    quality: int = 90
    quality_floor: int = 60
    min_upscale_width: int | None = None


@dataclass(frozen=True, slots=True)
class VideoSpec:
    """Rules and policy for a video variant (the accepted set, and the target to encode to)."""

    containers: tuple[str, ...]
    codecs: tuple[str, ...]
    max_bytes: int
    pix_fmts: tuple[str, ...] = ("yuv420p",)
    min_width: int = 2
    max_width: int = 4096
    min_height: int = 2
    max_height: int = 4096
    max_long_side: int | None = None
    aspect_min: Fraction | None = None
    aspect_max: Fraction | None = None
    target_aspect: Fraction | None = None
    fit: FitPolicy = "pad"
    pad_color: str = "black"
    fps_min: Fraction = Fraction(1)
    fps_max: Fraction = Fraction(60)
    min_duration_s: float = 0.0
    max_duration_s: float | None = None
    max_bitrate_kbps: int | None = None
    gop_max_s: float = 2.0
    faststart: bool = True
    sdr_only: bool = True
    target_width: int | None = None
    target_height: int | None = None
    audio: AudioSpec = field(default_factory=AudioSpec)
    # The platform classes a square or vertical video this long or shorter as a short-form
    # video (YouTube: a Short, whose custom thumbnail it ignores) whatever was asked for.
    classed_short_max_s: float | None = None
    # Encode quality of a re-encode: "standard" (the default), "high" (bigger files) or
    # "compact" (smaller files, for who pays for storage or egress); see BENCHMARKS.md.
    quality: str = "standard"


@dataclass(frozen=True, slots=True)
class CoverSpec:
    """How a video variant takes its cover: a frame by timestamp, or an uploaded image."""

    source: Literal["frame", "image", "image_or_frame"]
    formats: tuple[str, ...] = ("jpeg",)
    width: int = 1280
    height: int = 720
    min_width: int = 1
    aspect: Fraction | Literal["video"] | None = None
    max_bytes: int = 2_000_000
    fit: FitPolicy = "blur"
    default_at_ms: int | None = None
    platform_ignores: str | None = None


@dataclass(frozen=True, slots=True)
class UiZone:
    """A band along one edge of a full-screen vertical frame where the app draws its UI.

    ``fraction`` is the band's depth as a share of the frame's height (top/bottom) or width
    (left/right), so the zone holds at any output size.
    """

    edge: UiEdge
    fraction: float
    what: str
    source: str

    @property
    def name(self) -> str:
        """``"bottom: caption, name, music"``: the edge and what the app draws there."""
        return f"{self.edge}: {self.what}"


@dataclass(frozen=True, slots=True)
class Variant:
    """One media variant of a platform, e.g. ``instagram-reels``."""

    id: str
    name: str
    kind: Literal["image", "video"]
    label: str
    image: ImageSpec | None = None
    video: VideoSpec | None = None
    cover: CoverSpec | None = None
    ui_zones: tuple[UiZone, ...] = ()


@dataclass(frozen=True, slots=True)
class Mode:
    """What a value of the mode setting maps to."""

    image: str | None
    video: str | None
    carousel: str | None = None
    cover_ignored: str | None = None


@dataclass(frozen=True, slots=True)
class Preset:
    """A platform: its limits, mode setting, variants, and provenance."""

    platform: str
    version: str
    label: str
    aliases: tuple[str, ...]
    sources: tuple[str, ...]
    checked: str
    limits: Limits
    mode_setting: str | None
    default_mode: str
    modes: Mapping[str, Mode]
    enums: Mapping[str, tuple[str, ...]]
    variants: Mapping[str, Variant]
    origin: str = ""

    def variant(self, name: str) -> Variant:
        """The variant called ``name``.

        Raises:
            PresetError: no such variant.
        """
        try:
            return self.variants[name]
        except KeyError as err:
            raise PresetError(f"{self.platform}: no variant {name!r}") from err

    def digest(self) -> str:
        """sha256 of the canonical JSON of the parsed preset (recorded for reproducibility)."""
        data = asdict(self)
        data.pop("origin", None)
        blob = json.dumps(data, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()


# --------------------------------------------------------------------------- parsing


class _Reader:
    """Reads one table, collecting problems instead of stopping at the first."""

    def __init__(self, data: Mapping[str, Any], path: str, problems: list[str]) -> None:
        self.data = data
        self.path = path
        self.problems = problems
        self.seen: set[str] = set()

    def _where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _get(self, key: str, required: bool) -> Any:
        self.seen.add(key)
        if key not in self.data:
            if required:
                self.problems.append(f"{self._where(key)}: missing")
            return None
        return self.data[key]

    def int_(self, key: str, default: int | None = None, *, lo: int = 0, required: bool = False,
             hi: int | None = None) -> int | None:
        value = self._get(key, required)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.problems.append(f"{self._where(key)}: expected an integer, got {value!r}")
            return default
        if value < lo or (hi is not None and value > hi):
            rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
            self.problems.append(f"{self._where(key)}: must be {rng}, got {value}")
            return default
        return value

    def float_(self, key: str, default: float | None = None, *, lo: float = 0.0) -> float | None:
        value = self._get(key, False)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problems.append(f"{self._where(key)}: expected a number, got {value!r}")
            return default
        if value < lo:
            self.problems.append(f"{self._where(key)}: must be >= {lo}, got {value}")
            return default
        return float(value)

    def bool_(self, key: str, default: bool = False) -> bool:
        value = self._get(key, False)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.problems.append(f"{self._where(key)}: expected true or false, got {value!r}")
            return default
        return value

    def str_(self, key: str, default: str | None = None, *, choices: tuple[str, ...] | None = None,
             required: bool = False) -> str | None:
        value = self._get(key, required)
        if value is None:
            return default
        if not isinstance(value, str):
            self.problems.append(f"{self._where(key)}: expected a string, got {value!r}")
            return default
        if choices is not None and value not in choices:
            self.problems.append(
                f"{self._where(key)}: unknown value {value!r} (one of {', '.join(choices)})"
            )
            return default
        return value

    def strs(self, key: str, default: tuple[str, ...] = (), *,
             choices: tuple[str, ...] | None = None) -> tuple[str, ...]:
        value = self._get(key, False)
        if value is None:
            return default
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problems.append(f"{self._where(key)}: expected a list of strings")
            return default
        if choices is not None:
            for v in value:
                if v not in choices:
                    self.problems.append(f"{self._where(key)}: unknown value {v!r}")
        return tuple(value)

    def ratio(self, key: str) -> Fraction | None:
        value = self._get(key, False)
        if value is None:
            return None
        parsed = parse_ratio(value)
        if parsed is None:
            self.problems.append(
                f"{self._where(key)}: expected a ratio like \"9:16\", got {value!r}")
        return parsed

    def ratios(self, key: str) -> tuple[Fraction, ...]:
        value = self._get(key, False)
        if value is None:
            return ()
        if not isinstance(value, list):
            self.problems.append(f"{self._where(key)}: expected a list of ratios")
            return ()
        out = []
        for item in value:
            parsed = parse_ratio(item)
            if parsed is None:
                self.problems.append(f"{self._where(key)}: bad ratio {item!r}")
            else:
                out.append(parsed)
        return tuple(out)

    def table(self, key: str, required: bool = False) -> _Reader | None:
        value = self._get(key, required)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problems.append(f"{self._where(key)}: expected a table")
            return None
        return _Reader(value, self._where(key), self.problems)

    def finish(self) -> None:
        for key in self.data:
            if key not in self.seen:
                self.problems.append(f"{self._where(key)}: unknown key")


def parse_ratio(value: object) -> Fraction | None:
    """Parse ``"9:16"``, ``"1.91:1"`` or a number into width/height."""
    try:
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            result = Fraction(value).limit_denominator(10000)
        elif isinstance(value, str) and ":" in value:
            w, h = value.split(":", 1)
            result = Fraction(w.strip()) / Fraction(h.strip())
        else:
            return None
    except (ValueError, ZeroDivisionError):
        return None
    return result if result > 0 else None


def _audio(r: _Reader | None) -> AudioSpec:
    if r is None:
        return AudioSpec()
    spec = AudioSpec(
        codecs=r.strs("codecs", ("aac",), choices=AUDIO_CODECS),
        max_channels=r.int_("max_channels", 2, lo=1, hi=8) or 2,
        sample_rates_hz=_int_list(r, "sample_rates_hz", (48000, 44100)),
        bitrate_kbps=r.int_("bitrate_kbps", 128, lo=32, hi=512) or 128,
        min_bitrate_kbps=r.int_("min_bitrate_kbps", 0) or 0,
        required=r.bool_("required"),
        loudnorm=r.bool_("loudnorm"),
    )
    r.finish()
    return spec


def _int_list(r: _Reader, key: str, default: tuple[int, ...]) -> tuple[int, ...]:
    value = r._get(key, False)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(v, int) for v in value):
        r.problems.append(f"{r._where(key)}: expected a list of integers")
        return default
    return tuple(value)


def _image(r: _Reader) -> ImageSpec:
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
        fit=r.str_("fit", "pad", choices=FIT_POLICIES),  # type: ignore[arg-type]
        crop_ratios=r.ratios("crop_ratios"),
        background=r.str_("background", "#ffffff") or "#ffffff",
        carousel=r.str_("carousel", "none", choices=("none", "first_aspect", "same_size")),  # type: ignore[arg-type]
        animated_formats=r.strs("animated_formats", choices=IMAGE_FORMATS),
        max_animated_bytes=r.int_("max_animated_bytes", None, lo=1),
        max_animated_frames=r.int_("max_animated_frames", None, lo=1),
        quality=r.int_("quality", 90, lo=1, hi=100) or 90,
        quality_floor=r.int_("quality_floor", 60, lo=1, hi=100) or 60,
        min_upscale_width=r.int_("min_upscale_width", None, lo=1),
    )
    r.finish()
    _check_order(r, "min_width", spec.min_width, "max_width", spec.max_width)
    _check_order(r, "min_height", spec.min_height, "max_height", spec.max_height)
    _check_order(r, "aspect_min", spec.aspect_min, "aspect_max", spec.aspect_max)
    _check_order(r, "quality_floor", spec.quality_floor, "quality", spec.quality)
    return spec


def _video(r: _Reader) -> VideoSpec:
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
        fit=r.str_("fit", "pad", choices=FIT_POLICIES),  # type: ignore[arg-type]
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
    )
    r.finish()
    _check_order(r, "min_width", spec.min_width, "max_width", spec.max_width)
    _check_order(r, "min_height", spec.min_height, "max_height", spec.max_height)
    _check_order(r, "aspect_min", spec.aspect_min, "aspect_max", spec.aspect_max)
    _check_order(r, "fps_min", spec.fps_min, "fps_max", spec.fps_max)
    if spec.max_duration_s is not None:
        _check_order(r, "min_duration_s", spec.min_duration_s,
                     "max_duration_s", spec.max_duration_s)
    return spec


def _cover(r: _Reader) -> CoverSpec:
    aspect_raw = r.data.get("aspect")
    aspect: Fraction | Literal["video"] | None
    if aspect_raw == "video":
        r.seen.add("aspect")
        aspect = "video"
    else:
        aspect = r.ratio("aspect")
    spec = CoverSpec(
        source=r.str_("source", "image", choices=("frame", "image", "image_or_frame"),  # type: ignore[arg-type]
                      required=True),
        formats=r.strs("formats", ("jpeg",), choices=IMAGE_FORMATS),
        width=r.int_("width", 1280, lo=16) or 1280,
        height=r.int_("height", 720, lo=16) or 720,
        min_width=r.int_("min_width", 1, lo=1) or 1,
        aspect=aspect,
        max_bytes=r.int_("max_bytes", 2_000_000, lo=1) or 2_000_000,
        fit=r.str_("fit", "blur", choices=COVER_FIT_POLICIES),  # type: ignore[arg-type]
        default_at_ms=r.int_("default_at_ms", None),
        platform_ignores=r.str_("platform_ignores"),
    )
    r.finish()
    return spec


def _ui_zones(r: _Reader) -> tuple[UiZone, ...]:
    """``[variants.X.ui_zones.EDGE]`` tables: ``fraction`` in (0, 0.5], ``what``, ``source``."""
    zones = []
    for edge in list(r.data):
        sub = r.table(edge)
        if edge not in UI_EDGES:
            r.problems.append(f"{r._where(edge)}: unknown edge (one of {', '.join(UI_EDGES)})")
            continue
        if sub is None:
            continue
        fraction = sub.float_("fraction", None)
        if fraction is None and "fraction" not in sub.data:
            sub.problems.append(f"{sub._where('fraction')}: missing")
        elif fraction is not None and not 0.0 < fraction <= 0.5:
            # a band deeper than half the frame would meet the opposite band: a typo
            sub.problems.append(f"{sub._where('fraction')}: must be in (0, 0.5], got {fraction}")
            fraction = None
        what = sub.str_("what", "", required=True) or ""
        source = sub.str_("source", "", required=True) or ""
        if "source" in sub.data and not source.strip():
            sub.problems.append(f"{sub._where('source')}: must not be empty")
        sub.finish()
        if fraction is not None and what and source.strip():
            zones.append(UiZone(edge=edge, fraction=fraction, what=what,  # type: ignore[arg-type]
                                source=source))
    r.finish()
    return tuple(zones)


def _check_order(r: _Reader, lo_key: str, lo: Any, hi_key: str, hi: Any) -> None:
    if lo is not None and hi is not None and lo > hi:
        r.problems.append(f"{r.path}: {lo_key} ({lo}) is greater than {hi_key} ({hi})")


def _variant(platform: str, name: str, r: _Reader) -> Variant:
    kind = r.str_("kind", "image", choices=("image", "video"), required=True) or "image"
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
    r.finish()
    return Variant(id=f"{platform}-{name}", name=name, kind=kind,  # type: ignore[arg-type]
                   label=label, image=image, video=video, cover=cover, ui_zones=ui_zones)


def parse_preset(data: Mapping[str, Any], *, origin: str, stem: str | None = None) -> Preset:
    """Validate a parsed TOML document into a :class:`Preset`.

    Raises:
        PresetError: every problem found, listed with the file and key.
    """
    problems: list[str] = []
    r = _Reader(data, "", problems)
    schema = r.int_("schema", None, required=True)
    if schema is not None and schema != SCHEMA_VERSION:
        problems.append(f"schema: unsupported schema {schema} (this build reads {SCHEMA_VERSION})")
    platform = r.str_("platform", "", required=True) or ""
    if stem is not None and platform and platform != stem:
        problems.append(f"platform: {platform!r} must equal the file name {stem!r}")
    version = r.str_("version", "", required=True) or ""
    label = r.str_("label", platform) or platform
    aliases = r.strs("aliases")
    sources = r.strs("sources")
    checked_raw = r._get("checked", False)
    checked = (checked_raw.isoformat() if isinstance(checked_raw, dt.date)
               else str(checked_raw or ""))

    lt = r.table("limits", required=True)
    limits = Limits(0, 0, False, None, None, True, False)
    if lt is not None:
        limits = Limits(
            max_images=lt.int_("max_images", 0, required=True) or 0,
            max_videos=lt.int_("max_videos", 0, required=True) or 0,
            media_required=lt.bool_("media_required"),
            max_image_bytes=lt.int_("max_image_bytes", None, lo=1),
            max_video_bytes=lt.int_("max_video_bytes", None, lo=1),
            allow_mixed=lt.bool_("allow_mixed", True),
            thread=lt.bool_("thread"),
            min_carousel=lt.int_("min_carousel", 2, lo=1) or 2,
            max_items=lt.int_("max_items", None, lo=1),
        )
        lt.finish()

    mode_setting = r.str_("mode_setting")
    default_mode = r.str_("default_mode", "default") or "default"
    variants: dict[str, Variant] = {}
    vt = r.table("variants", required=True)
    if vt is not None:
        for name in list(vt.data):
            sub = vt.table(name)
            if sub is not None:
                variants[name] = _variant(platform, name, sub)
        vt.finish()

    modes: dict[str, Mode] = {}
    mt = r.table("modes", required=True)
    if mt is not None:
        for name in list(mt.data):
            sub = mt.table(name)
            if sub is None:
                continue
            mode = Mode(image=sub.str_("image"), video=sub.str_("video"),
                        carousel=sub.str_("carousel"), cover_ignored=sub.str_("cover_ignored"))
            sub.finish()
            refs = ((mode.image, "image"), (mode.video, "video"), (mode.carousel, "image"))
            for ref, want in refs:
                if ref is not None and ref not in variants:
                    problems.append(f"modes.{name}.{want}: no variant {ref!r}")
                elif ref is not None and variants[ref].kind != want:
                    problems.append(
                        f"modes.{name}.{want}: variant {ref!r} is not an {want} variant")
            modes[name] = mode
        mt.finish()
        if modes and default_mode not in modes:
            problems.append(f"default_mode: {default_mode!r} is not one of the modes")

    enums: dict[str, tuple[str, ...]] = {}
    et = r.table("enums")
    if et is not None:
        for name in list(et.data):
            enums[name] = et.strs(name)
        et.finish()
    r.finish()

    if problems:
        raise PresetError(f"{origin}: " + "; ".join(problems), details={"problems": problems})
    return Preset(platform=platform, version=version, label=label, aliases=aliases,
                  sources=sources, checked=checked, limits=limits, mode_setting=mode_setting,
                  default_mode=default_mode, modes=modes, enums=enums, variants=variants,
                  origin=origin)


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


# --------------------------------------------------------------------------- registry


REPO_PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"


def bundled_presets_dir() -> Path:
    """Presets shipped with the package (wheel) or, in a source checkout, ``<repo>/presets``."""
    packaged = importlib.resources.files("pipeline") / "_presets"
    if packaged.is_dir():
        return Path(str(packaged))
    return REPO_PRESETS_DIR


@dataclass(frozen=True, slots=True)
class PresetRegistry:
    """All platforms by name, with aliases (``x`` → ``twitter``)."""

    presets: Mapping[str, Preset]
    aliases: Mapping[str, str]

    def get(self, name: str) -> Preset | None:
        """The preset for a platform name or alias, or None."""
        key = self.aliases.get(name.lower(), name.lower())
        return self.presets.get(key)

    def __iter__(self) -> Iterator[Preset]:
        return iter(self.presets[k] for k in sorted(self.presets))

    def version(self) -> str:
        """One string naming every platform's preset version (recorded in each manifest)."""
        return ",".join(f"{p.platform}@{p.version}" for p in self)

    def find_variant(self, variant_id: str) -> tuple[Preset, Variant] | None:
        """Look up ``platform-variant`` ids such as ``tiktok-video``."""
        for preset in self.presets.values():
            for variant in preset.variants.values():
                if variant.id == variant_id:
                    return preset, variant
        return None


def load_presets(extra_dir: Path | None = None) -> PresetRegistry:
    """Load the bundled presets, then files in ``extra_dir`` that add or override platforms.

    Raises:
        PresetError: any file is invalid (all files' problems are listed together).
    """
    files: dict[str, Path] = {}
    for folder in (bundled_presets_dir(), extra_dir):
        if folder is None:
            continue
        if not folder.is_dir():
            raise PresetError(f"presets directory not found: {folder}")
        for path in sorted(folder.glob("*.toml")):
            files[path.stem] = path
    problems: list[str] = []
    presets: dict[str, Preset] = {}
    for stem, path in sorted(files.items()):
        try:
            presets[stem] = load_preset_file(path)
        except PresetError as err:
            problems.append(err.message)
    if problems:
        raise PresetError("invalid presets: " + " | ".join(problems))
    if not presets:
        raise PresetError("no presets found")
    aliases: dict[str, str] = {}
    for preset in presets.values():
        for alias in preset.aliases:
            aliases[alias.lower()] = preset.platform
    return PresetRegistry(presets=presets, aliases=aliases)
