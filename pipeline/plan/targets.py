"""Targets: what each output must be, and the content address derived from it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Literal

from ..captions import Cue
from ..geometry import FitMode, Geometry
from ..models import MediaRef
from ..presets import Preset, Variant

# Bump when the same target would now produce different bytes (encoder settings, filters).
ENCODER_VERSION = "1"
# The same for images: part of every image output's content address (``ImageTarget.engine``),
# so a re-run never reuses an output an older image engine made.
IMAGE_ENGINE = "image-2"
# Bump when a video target would now produce different bytes (filters, encoder settings).
VIDEO_ENCODER_VERSION = "2"
# The same for videos made from animations only (frame timing): "2" keeps every frame's own
# delay (WebP used to get 100 ms per frame), so no earlier output of one is ever reused.
ANIMATION_TIMING_VERSION = "2"
# The same for burned-in captions (font, size, outline, margins: pipeline/video/burnin.py).
BURN_IN_STYLE_VERSION = "1"

@dataclass(frozen=True, slots=True)
class ReframeShot:
    """One shot of a smart-framed video: where the crop window sits over time.

    ``keys`` are ``(t_s, offset_px)`` points of a piecewise-linear path of the window's
    left edge (``axis`` "x") or top edge ("y"), in displayed source pixels; a still camera
    has one point. The window is the geometry's ``crop_width`` x ``crop_height``.
    """

    start_s: float
    end_s: float
    camera: Literal["still", "pan"]
    axis: Literal["x", "y"]
    keys: tuple[tuple[float, int], ...]

    def to_dict(self, geometry: Geometry | None = None) -> dict[str, object]:
        """The shot as the manifest lists it: its camera and every keyframe of the window.

        Each key is a time and the window's position in displayed source pixels (straight
        lines between keys). With the target's ``geometry`` (the manifest's case) a key has
        both corners' coordinates, ``x`` and ``y``, and the shot the window's size; without
        it (``conform plan``) only the moving edge.
        """
        out: dict[str, object] = {"start_s": round(self.start_s, 4), "end_s": round(self.end_s, 4),
                                  "camera": self.camera}
        if geometry is None:
            out["keys"] = [{"t_s": round(t, 4), self.axis: v} for t, v in self.keys]
            return out
        fixed = geometry.crop_y if self.axis == "x" else geometry.crop_x
        out["window_width"], out["window_height"] = geometry.crop_width, geometry.crop_height
        out["keys"] = [{"t_s": round(t, 4), "x": v if self.axis == "x" else fixed,
                        "y": v if self.axis == "y" else fixed} for t, v in self.keys]
        return out


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
class BurnIn:
    """Captions rendered into the picture, inside the surface's safe area.

    ``cues`` are already timed to the delivered video (trims, loops); ``sha256`` names them
    (the SRT they make), so the content key holds the text and timing without the cues
    themselves. The bands are the shares of the frame the app's own UI covers (the variant's
    ``ui_zones``), which the captions stay out of.
    """

    sha256: str
    lang: str
    bottom: float
    left: float
    right: float
    cues: tuple[Cue, ...] = field(default=(), compare=False, repr=False)

    def key_view(self) -> dict[str, object]:
        """What of it changes the pixels (the cues by their hash, the style's version)."""
        return {"sha256": self.sha256, "lang": self.lang, "bottom": self.bottom,
                "left": self.left, "right": self.right, "style": BURN_IN_STYLE_VERSION}


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
    reframe: tuple[ReframeShot, ...] = ()  # smart framing: the crop window's path per shot
    kind: Literal["video"] = "video"
    loops: int = 1                    # an endless animation played this many whole times
    crf: int = 20                     # x264 CRF of a constant-quality encode (preset quality)
    burn_in: BurnIn | None = None     # captions rendered into the picture
    audio_shift_s: float = 0.0        # encoded audio comes this much earlier (picture's grid)
    picture_frames: int | None = None  # an encode's frame count, when the sound runs on < 1 frame


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
    """One account's use of an output: the ids the manifest names, and the variant itself.

    ``variant`` and ``preset`` are the objects validation chose, carried so that nothing
    later looks them up again by id (``platform`` and ``variant_id`` are their names).
    """

    account_id: str
    platform: str
    variant_id: str
    content_index: int
    media_index: int
    variant: Variant
    preset: Preset


@dataclass(frozen=True, slots=True)
class Rendition:
    """One output to produce (shared by every account whose target is identical)."""

    key: str
    source_sha256: str
    ref_text: str          # str(ref): what `conform plan` prints
    ref: MediaRef
    target: Target
    actions: tuple[str, ...]
    warnings: tuple[str, ...]
    name: str
    uses: tuple[Use, ...] = field(default_factory=tuple)

    @property
    def variants(self) -> tuple[Variant, ...]:
        """Every variant that shares this output, in order of first use: it must meet them all."""
        return tuple(dict.fromkeys(u.variant for u in self.uses))


@dataclass(frozen=True, slots=True)
class CoverPlan:
    """One cover output; for frames it is made from the rendition it names."""

    key: str
    target: CoverTarget
    rendition_key: str
    thumbnail_sha256: str | None
    accounts: tuple[str, ...]
    thumbnail: MediaRef | None = None  # the job's reference of the thumbnail (image covers)
    # The rendition named by ``rendition_key``, as finally planned (every account using it):
    # set by ``plan_job`` once all renditions are known. A frame is taken from its output; its
    # uses name the presets a cover's origin metadata records.
    rendition: Rendition | None = field(default=None, compare=False, repr=False)

    def video(self) -> Rendition:
        """The rendition this cover belongs to (a planned cover always has one)."""
        if self.rendition is None:
            raise ValueError(f"cover {self.key[:16]} was not linked to its rendition")
        return self.rendition


def target_key(source_sha256: str, target: Target | CoverTarget, extra: str = "") -> str:
    """Content address of an output: source bytes + every parameter that changes the bytes +
    encoder version. Caps that do not change the bytes (a byte cap far above what the encode
    makes) are left out, so platforms with different caps share one output."""
    blob = json.dumps({"src": source_sha256, "target": _key_view(target), "enc": ENCODER_VERSION,
                       "extra": extra}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


# The fields of each target that go into its content key: the ones that change the output's
# bytes. Adding a field to a target is not enough to put it in the key: list it here (or in
# NOT_IN_KEY, saying why), or tests/test_plan.py fails; keys of existing outputs are pinned.
IMAGE_KEY_FIELDS = ("format", "geometry", "background", "max_bytes", "quality",
                    "quality_floor", "animated", "passthrough", "orientation", "to_srgb",
                    "min_width", "min_height", "engine", "kind")
COVER_KEY_FIELDS = ("source", "at_ms", "format", "width", "height", "fit", "max_bytes",
                    "min_width")
VIDEO_KEY_FIELDS = ("action", "geometry", "pad_color", "fps", "gop_frames", "tonemap",
                    "deinterlace", "full_to_limited", "maxrate_kbps", "trim_s", "audio",
                    "from_image", "x264_preset", "square_pixels", "in_matrix", "in_transfer",
                    "in_primaries", "level", "source_codec", "reframe", "kind", "loops", "crf",
                    "burn_in", "audio_shift_s", "picture_frames")
# Only an encode makes the picture: a stream copy (remux, pass-through) keys on the rest.
VIDEO_ENCODE_FIELDS = ("geometry", "pad_color", "gop_frames", "maxrate_kbps", "x264_preset",
                       "tonemap", "deinterlace", "full_to_limited", "square_pixels",
                       "in_matrix", "in_transfer", "in_primaries", "level", "crf", "burn_in",
                       "picture_frames")
# Fields that never reach the bytes, so outputs shared by platforms with different caps have
# one key. The byte cap reaches a video only through maxrate_kbps (derived from it; the
# rendition is verified against the smallest cap of everyone sharing it); the minimum size is
# the floor of budget retries, and the cap decides whether it is reached.
NOT_IN_KEY = {"video": ("max_bytes", "spec_max_bitrate_kbps", "min_width", "min_height"),
              "image": (), "cover": ()}


def _key_view(target: Target | CoverTarget) -> dict[str, object]:
    full = asdict(target)
    if isinstance(target, VideoTarget):
        names = [n for n in VIDEO_KEY_FIELDS
                 if not (target.action != "transcode" and n in VIDEO_ENCODE_FIELDS)
                 # keys of everything not looped, and of outputs without smart framing, stay
                 # what they were before those fields existed
                 and not (n == "loops" and target.loops == 1)
                 and not (n == "reframe" and not target.reframe)
                 # "standard" quality keeps the keys made before the quality knob
                 and not (n == "crf" and target.crf == 20)
                 and not (n == "burn_in" and target.burn_in is None)
                 # audio that needs no move keeps the keys made before the move existed
                 and not (n == "audio_shift_s" and not target.audio_shift_s)
                 and not (n == "picture_frames" and target.picture_frames is None)]
        view = {n: full[n] for n in names}
        if target.burn_in is not None and "burn_in" in view:
            view["burn_in"] = target.burn_in.key_view()
        view["video_encoder"] = VIDEO_ENCODER_VERSION
        if target.from_image:
            view["animation_timing"] = ANIMATION_TIMING_VERSION
        return view
    names = list(IMAGE_KEY_FIELDS if isinstance(target, ImageTarget) else COVER_KEY_FIELDS)
    return {n: full[n] for n in names}
