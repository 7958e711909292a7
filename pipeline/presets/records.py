"""The typed preset records: a platform's limits, modes and variants, and their closed sets.

Everything here is a frozen dataclass or a constant; reading and checking the TOML is
:mod:`.parse`, finding the files :mod:`.registry`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Literal, get_args

from ..errors import PresetError

SCHEMA_VERSION = 1
# Closed sets read from the files. Where a field is typed by a Literal, the tuple of allowed
# values is taken from it (get_args), so the checker and the type cannot drift apart.
# smart: crop around the subject (vision/framing.py)
FitPolicy = Literal["crop", "pad", "blur", "smart"]
UiEdge = Literal["top", "bottom", "left", "right"]
VariantKind = Literal["image", "video"]
CoverSource = Literal["frame", "image", "image_or_frame"]
CarouselPolicy = Literal["none", "first_aspect", "same_size"]
FIT_POLICIES: tuple[FitPolicy, ...] = get_args(FitPolicy)
# a custom thumbnail is the user's own framing: never cropped around a detected subject
COVER_FIT_POLICIES: tuple[FitPolicy, ...] = ("crop", "pad", "blur")
UI_EDGES: tuple[UiEdge, ...] = get_args(UiEdge)
VARIANT_KINDS: tuple[VariantKind, ...] = get_args(VariantKind)
COVER_SOURCES: tuple[CoverSource, ...] = get_args(CoverSource)
CAROUSEL_POLICIES: tuple[CarouselPolicy, ...] = get_args(CarouselPolicy)
IMAGE_FORMATS = ("jpeg", "png", "webp", "gif", "bmp", "tiff", "heif", "avif")
CONTAINERS = ("mp4", "mov", "webm", "matroska", "avi", "mpegts")
VIDEO_CODECS = ("h264", "hevc", "vp8", "vp9", "av1", "mpeg4")
VIDEO_QUALITIES = ("high", "standard", "compact")  # a video variant's `quality` (its x264 CRF)
# Below a surface's recommended minimum size: upscale to it (lanczos), or warn.
LowResolutionPolicy = Literal["upscale", "warn"]
LOW_RESOLUTION_POLICIES: tuple[LowResolutionPolicy, ...] = get_args(LowResolutionPolicy)
AUDIO_CODECS = ("aac", "opus", "mp3", "vorbis", "ac3")
CaptionFormat = Literal["srt", "vtt"]
CAPTION_FORMATS: tuple[CaptionFormat, ...] = get_args(CaptionFormat)


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
    # The longest alt text the platform takes on a medium (characters); None: it takes none
    # through its API, so the manifest carries none (with the warning alt_text_not_supported).
    alt_text_max_chars: int | None = None


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
    carousel: CarouselPolicy = "none"
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
    # The largest picture the platform's player shows (long side x short side, sourced in the
    # preset): an output another account gets may be smaller than this account's own target,
    # never smaller than this (see pipeline.plan.sharing). None: no source says; the own target.
    display_long_side: int | None = None
    display_short_side: int | None = None
    # The smallest picture the platform recommends for this surface (in its own shape, with a
    # source in the preset file), and what an output below it gets: "upscale" (lanczos, to the
    # minimum, when that stays within the caps; else the warning) or "warn" (the
    # ``low_resolution`` warning). None: the platform recommends no minimum we found.
    recommended_min_width: int | None = None
    recommended_min_height: int | None = None
    low_resolution: LowResolutionPolicy = "warn"


@dataclass(frozen=True, slots=True)
class CoverSpec:
    """How a video variant takes its cover: a frame by timestamp, or an uploaded image."""

    source: CoverSource
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
class AccountCeiling:
    """How far an account's own limits may loosen a variant's (``[variants.X.account_ceiling]``).

    A platform that grants some accounts more (X Premium: 125 min and 16 GB instead of the
    default) publishes the most any account gets; an account's ``conform.limits`` may ask for
    up to that, never more. A variant without a ceiling can only be tightened.
    ``source`` says where the numbers come from.
    """

    source: str
    max_duration_s: float | None = None
    max_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class AccountLimits:
    """An account's own limits (``accounts[].conform.limits``), as its platform reported them.

    X gives Premium accounts 125 min and 16 GB; TikTok tells each creator its longest post
    (``creator_info``). Each value replaces the variants' own (None: the preset's stands);
    :func:`pipeline.presets.account.limit_problems` holds them to the variants' ceilings.
    """

    max_duration_s: float | None = None
    max_video_bytes: int | None = None
    max_image_bytes: int | None = None

    def items(self) -> tuple[tuple[str, float | int], ...]:
        """The limits that are set, by name, in the job's spelling."""
        pairs = (("max_duration_s", self.max_duration_s),
                 ("max_video_bytes", self.max_video_bytes),
                 ("max_image_bytes", self.max_image_bytes))
        return tuple((name, value) for name, value in pairs if value is not None)


@dataclass(frozen=True, slots=True)
class Variant:
    """One media variant of a platform, e.g. ``instagram-reels``."""

    id: str
    name: str
    kind: VariantKind
    label: str
    image: ImageSpec | None = None
    video: VideoSpec | None = None
    cover: CoverSpec | None = None
    ui_zones: tuple[UiZone, ...] = ()
    account_ceiling: AccountCeiling | None = None


@dataclass(frozen=True, slots=True)
class CaptionSpec:
    """The caption files a platform takes with a video (``[captions]``): the formats (the
    first is what is delivered), the largest file, how many tracks; ``source`` says where."""

    formats: tuple[CaptionFormat, ...]
    source: str
    max_bytes: int | None = None
    max_tracks: int | None = None


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
    # None: the platform's API takes no caption files (captions_not_supported)
    captions: CaptionSpec | None = None

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
