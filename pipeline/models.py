"""Plain typed data that flows between the stages: job, media facts, plans, results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from .errors import PipelineError
from .presets import AccountLimits, CoverSpec, Preset, Variant

Kind = Literal["image", "video"]
MediaKind = Literal["image", "video", "audio"]

# --------------------------------------------------------------------------- the job


@dataclass(frozen=True, slots=True)
class MediaRef:
    """Where a medium comes from: a public URL or a media-library ID."""

    kind: Literal["url", "library"]
    value: str

    def __str__(self) -> str:
        return self.value if self.kind == "url" else f"library:{self.value}"


@dataclass(frozen=True, slots=True)
class CoverRequest:
    """``cover_image`` of a content item: a custom thumbnail and/or a frame timestamp."""

    thumbnail: MediaRef | None = None
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class CaptionRequest:
    """One caption track of a content item: its source, language, and whether the video
    shows it burned in rather than carrying it as a file."""

    ref: MediaRef
    lang: str
    burn_in: bool = False


@dataclass(frozen=True, slots=True)
class ContentItem:
    """One item of the post's thread: text and media."""

    text: str | None
    media: tuple[MediaRef, ...]
    cover: CoverRequest | None = None
    # Alt text per medium, in the order of ``media`` (None: none given); cleaned of control
    # characters when parsed, cut to each platform's limit in the manifest.
    alts: tuple[str | None, ...] = ()
    captions: tuple[CaptionRequest, ...] = ()

    def alt(self, media_index: int) -> str | None:
        """The alt text given for ``media[media_index]``, if any."""
        return self.alts[media_index] if media_index < len(self.alts) else None


@dataclass(frozen=True, slots=True)
class Account:
    """One target account; ``mode`` is the validated setting that picks the media variant."""

    id: str
    platform: str
    mode: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    # conform.limits: what the platform told the publish API about this account (X Premium,
    # TikTok creator_info); applied to its preset by presets.with_account_limits
    limits: AccountLimits | None = None


@dataclass(frozen=True, slots=True)
class Job:
    """A Create-Post request, reduced to what the pipeline needs."""

    id: str
    workspace_id: str
    content: tuple[ContentItem, ...]
    accounts: tuple[Account, ...]
    duration_policy: Literal["refuse", "trim"] = "refuse"
    # conform.fit: overrides every variant's fit for a shape change (None: the variants' own)
    fit: Literal["crop", "pad", "blur", "smart"] | None = None


# --------------------------------------------------------------------------- media facts


@dataclass(frozen=True, slots=True)
class VideoStream:
    """Facts about the first video stream; display size already has rotation and SAR applied."""

    codec: str
    profile: str | None
    width: int
    height: int
    display_width: int
    display_height: int
    rotation_deg: int
    mirrored: bool
    display_matrix: tuple[int, ...] | None
    sar: Fraction
    fps: Fraction
    fps_real: Fraction
    vfr: bool
    pix_fmt: str
    bit_depth: int
    color_transfer: str | None
    color_primaries: str | None
    color_space: str | None
    color_range: str | None
    hdr: bool
    interlaced: bool
    bitrate_kbps: int | None
    frame_count: int | None
    has_b_frames: int = 0
    # Longest gap between keyframes (and from the last one to the end), from the packet
    # index; None when not measured.
    max_keyframe_interval_s: float | None = None
    # When the first frame is shown and when the last one ends, on the file's timeline
    # (packet index); ``end_s`` None when not measured.
    start_s: float = 0.0
    end_s: float | None = None


@dataclass(frozen=True, slots=True)
class AudioStream:
    """Facts about the first audio stream."""

    codec: str
    profile: str | None
    sample_rate_hz: int
    channels: int
    channel_layout: str | None
    bitrate_kbps: int | None
    # Encoder delay (AAC priming) the source hides with an edit list: a copy into a file
    # without one plays it, so the sound comes this much later than in the source.
    priming_s: float = 0.0
    # The first audio packet's time on the file's timeline (ffprobe's stream start): audio
    # that starts after the picture (an empty edit) loses that gap when copied.
    start_s: float = 0.0


@dataclass(frozen=True, slots=True)
class ImageFacts:
    """Facts about a still or animated image, read by Pillow."""

    mode: str
    bits: int
    has_alpha: bool
    icc_profile: str | None
    exif_orientation: int
    has_gps: bool
    has_exif: bool
    has_xmp: bool
    frames: int
    # As stored, before EXIF orientation (MediaInfo.width/height are as displayed).
    stored_width: int | None = None
    stored_height: int | None = None
    # An animation whose loop count is "forever" (GIF NETSCAPE 0, APNG num_plays 0, WebP
    # loop 0); no loop extension, or a finite count, is False.
    loops_forever: bool = False


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """What probing found out about one file."""

    kind: MediaKind
    format_name: str
    size_bytes: int
    width: int
    height: int
    duration_s: float | None
    bitrate_kbps: int | None
    start_time_s: float
    video: VideoStream | None = None
    audio: AudioStream | None = None
    image: ImageFacts | None = None
    moov_first: bool | None = None
    edit_list: bool = False
    has_location: bool = False
    # Streams besides the first video and first audio (data/timecode tracks, subtitles,
    # more audio): a file that has any is never passed through untouched.
    extra_streams: int = 0

    @property
    def animated(self) -> bool:
        """An image with more than one frame (GIF, WebP, APNG)."""
        return self.image is not None and self.image.frames > 1

    @property
    def aspect(self) -> Fraction:
        """Displayed width / height."""
        return Fraction(self.width, max(1, self.height))

    @property
    def duration_ms(self) -> int | None:
        """Duration rounded to whole milliseconds."""
        return None if self.duration_s is None else round(self.duration_s * 1000)


@dataclass(frozen=True, slots=True)
class LocalMedia:
    """A fetched source on local disk, hashed while it was read."""

    ref: MediaRef
    path: Path
    size_bytes: int
    sha256: str


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class JobEvent:
    """A progress event for callers that draw their own progress display."""

    job_id: str
    stage: str
    kind: Literal["start", "progress", "done"]
    pct: float | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An error as the manifest reports it for one account."""

    code: str
    message: str
    http_status: int
    content_index: int | None = None
    media_index: int | None = None
    retryable: bool = False

    @classmethod
    def from_error(cls, err: BaseException, content_index: int | None = None,
                   media_index: int | None = None) -> ErrorInfo:
        """The manifest's error for a raised error: the one place errors become entries.

        A :class:`PipelineError` keeps its code, status and retryability, and the content
        and media index it names (else the ones given); anything else is our bug:
        ``internal``, 500.
        """
        if not isinstance(err, PipelineError):
            return cls("internal", f"internal error: {type(err).__name__}: {err}", 500)
        ci = getattr(err, "content_index", None)
        mi = getattr(err, "media_index", None)
        return cls(code=err.code, message=err.message, http_status=err.http_status,
                   content_index=ci if ci is not None else content_index,
                   media_index=mi if mi is not None else media_index,
                   retryable=err.retryable)

    def to_dict(self) -> dict[str, object]:
        """The manifest's error object."""
        out: dict[str, object] = {
            "code": self.code, "message": self.message, "http_status": self.http_status,
        }
        if self.content_index is not None:
            out["content_index"] = self.content_index
        if self.media_index is not None:
            out["media_index"] = self.media_index
        return out


# --------------------------------------------------------------------------- validation
# What validating one account decided, handed to the planner (validate -> plan).

Probed = MediaInfo | PipelineError


@dataclass(frozen=True, slots=True)
class Selected:
    """One medium of the post as one account will publish it."""

    content_index: int
    media_index: int
    ref: MediaRef
    info: MediaInfo
    variant: Variant
    as_video: bool          # an animated image routed to a video variant
    still_only: bool        # an animated image that must become a still (first frame)
    carousel_size: int      # images in this content item that go to the same variant
    trim_to_s: float | None = None
    loops: int = 1          # an endless animation played this many whole times (a minimum)

    @property
    def delivered_s(self) -> float:
        """How long the delivered medium plays: loops and trim applied."""
        length = (self.info.duration_s or 0.0) * self.loops
        return length if self.trim_to_s is None else min(length, self.trim_to_s)


@dataclass(frozen=True, slots=True)
class CoverChoice:
    """Which cover the account takes, and the spec it must meet."""

    source: Literal["frame", "image"]
    spec: CoverSpec
    video: Selected                     # the content[0] video the cover goes with
    timestamp_ms: int | None = None     # frames: where in the video
    thumbnail: MediaRef | None = None   # images: the custom thumbnail to conform
    default_frame: bool = False         # a frame nobody asked for (Pinterest's 1 s default)


@dataclass(frozen=True, slots=True)
class AccountCheck:
    """The outcome of validating one account."""

    account: Account
    preset: Preset
    items: tuple[Selected, ...]
    cover: CoverChoice | None
    warnings: tuple[str, ...]
    errors: tuple[ErrorInfo, ...]
    # The variants the post's media would go to, for the manifest's label of an account that
    # failed before any medium was placed (a corrupt image is still an image post).
    intended_variants: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """No errors: the account can be processed."""
        return not self.errors
