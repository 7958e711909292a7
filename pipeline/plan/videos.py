"""Video planning: pass-through, remux or encode, and every parameter of the encode."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace
from fractions import Fraction
from typing import Literal

from .. import rules
from ..geometry import FIT_ACTIONS, Geometry, clamp_aspect, fit_geometry
from ..models import MediaInfo
from ..presets import FitPolicy, VideoSpec
from .audio import audio_shift_s, audio_target, picture_start_s
from .framerate import output_fps
from .targets import AudioTarget, BurnIn, Rendition, VideoTarget

# x264 quality: CRF 20 is visually transparent for social re-encodes at these sizes.
CRF = 20
# A video variant's `quality` (presets): the CRF it encodes at. Measured on the corpus clips
# at Instagram Reels' settings (BENCHMARKS.md, "x264 settings").
QUALITY_CRF = {"high": 18, "standard": CRF, "compact": 24}
# Ceiling on the video bitrate we ever ask for, by output pixels per second: about 0.1 bit per
# pixel, i.e. 1080p30 ~ 6.2 Mbps, 1080x1920p60 ~ 12.4 Mbps: more is spent on nothing a feed
# will show, and the platforms re-encode anyway.
BITS_PER_PIXEL_CEILING = 0.1
# Container overhead kept out of a byte budget (moov index, muxing): 2 % plus 64 KB.
CONTAINER_OVERHEAD = 0.02


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
# ffprobe colour-matrix names -> the names swscale's in_color_matrix takes.
_SWS_MATRIX = {"bt709": "bt709", "smpte170m": "bt601", "bt470bg": "bt601", "fcc": "fcc",
               "smpte240m": "smpte240m", "bt2020nc": "bt2020", "bt2020c": "bt2020"}


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

    The shared stream rules (:mod:`pipeline.rules`), met exactly: the verifier allows an
    output some rounding slack, so a stream kept here always passes verification.

    Raises:
        Nothing: ``info`` must have a video stream.
    """
    return rules.video_stream_problems(info, spec, max_bytes=max_bytes, tolerance=rules.EXACT)


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


VideoAction = Literal["passthrough", "remux", "audio_only", "transcode"]
# What the manifest says was done, by the least work chosen: a new audio track is a remux too.
_DONE = {"passthrough": "passed_through", "remux": "remuxed", "audio_only": "remuxed",
         "transcode": "transcoded"}


def plan_video(info: MediaInfo, spec: VideoSpec, *, max_bytes: int, trim_s: float | None,
               from_image: bool, x264_preset: str, loops: int = 1,
               fit: FitPolicy | None = None,
               surface: str = "",
               burn_in: BurnIn | None = None) -> tuple[VideoTarget, list[str], list[str]]:
    """Target, planned actions and warnings for one video (or animation) and one video variant.

    The least work wins: untouched (``passthrough``) when stream and container conform,
    stream copy into a new MP4 (``remux``) when only the container does not, a new audio
    track only (``audio_only``), else a full encode (``transcode``). ``loops`` > 1 (an endless
    animation under the variant's minimum, see validation) plays it that many whole times.

    ``fit`` overrides the variant's fit for a shape change (the job's ``conform.fit``).
    ``surface`` (the variant's id) names it in a ``low_resolution`` warning: an output below
    the variant's recommended minimum size is upscaled to it (lanczos) where the variant says
    so and the caps allow it, else it is delivered with that warning. ``burn_in`` renders
    captions into the picture (always an encode).

    Raises:
        Nothing: validation has already checked durations and counts.
    """
    v = info.video
    from_image = from_image or v is None
    audio = audio_target(info, spec, reencode_all=False)
    fps, fps_changed = output_fps(info, spec)
    planned = _video_geometry(info, spec, fit or spec.fit)
    geometry = _at_recommended_size(info, spec, fit or spec.fit, planned)
    duration_s = min((info.duration_s or 1.0) * loops, trim_s or math.inf)
    maxrate = _maxrate_kbps(spec, geometry, fps, max_bytes=max_bytes, duration_s=duration_s,
                            audio=audio)
    problems = (["animated image"] if from_image
                else video_streams_conform(info, spec, max_bytes))
    if trim_s is not None:
        problems.append("trim")
    if geometry != planned:
        problems.append("below the recommended size")
    if burn_in is not None:
        problems.append("captions burned in")
    action = _choose_action(info, spec, problems, audio)
    matrix, transfer, primaries = _colour_in(info)
    # Every encode is 8-bit SDR H.264, so HDR is tone-mapped whenever we encode, not only for
    # SDR-only presets (an HDR source YouTube would keep still needs it once re-encoded).
    hdr = bool(v and v.hdr)
    target = VideoTarget(
        action=action, geometry=geometry, pad_color=spec.pad_color, fps=fps,
        gop_frames=max(1, math.floor(float(fps) * spec.gop_max_s)), tonemap=hdr,
        deinterlace=bool(v and v.interlaced), full_to_limited=_full_range(info),
        max_bytes=max_bytes, maxrate_kbps=maxrate, trim_s=trim_s, audio=audio,
        from_image=from_image, x264_preset=x264_preset,
        spec_max_bitrate_kbps=spec.max_bitrate_kbps, square_pixels=bool(v and v.sar != 1),
        in_matrix=matrix, in_transfer=transfer if hdr else None, in_primaries=primaries,
        level=h264_level(geometry.width, geometry.height, fps, maxrate),
        min_width=spec.min_width, min_height=spec.min_height, loops=loops,
        crf=QUALITY_CRF[spec.quality], burn_in=burn_in,
        picture_frames=_picture_frames(info, fps, duration_s) if not from_image else None,
    )
    if action != "transcode":
        assert v is not None  # a source without a video stream is always encoded
        target = _stream_copy(target, v.codec)
    target = replace(target, audio_shift_s=audio_shift_s(
        info, audio, copies_picture=action != "transcode", fps=fps))
    warnings = ["upscaled"] if geometry.upscaled else []
    small = low_resolution_warning((geometry.width, geometry.height), spec, surface)
    return (target, _planned_actions(target, info, fps_changed=fps_changed),
            [*warnings, small] if small else warnings)


def _planned_actions(target: VideoTarget, info: MediaInfo, *, fps_changed: bool) -> list[str]:
    """What the manifest says was done: the action, then what it did to picture and sound."""
    action = target.action
    actions = [_DONE[action]]
    if action == "transcode":
        actions += _picture_actions(target, info, fps_changed=fps_changed)
    if target.burn_in is not None:
        actions.append("burned_in_captions")
    if action in ("audio_only", "transcode"):
        actions += _audio_actions(target.audio)
    if action != "passthrough" and (info.has_location or info.extra_streams):
        actions.append("stripped_metadata")
    return actions


def _picture_frames(info: MediaInfo, fps: Fraction, length_s: float) -> int | None:
    """The encode's frame count when the sound outlasts the picture by less than a frame.

    An encode lasts as long as the file (the last frame is held while the sound goes on), but
    AAC ends on whole 1024-sample frames, so the sound usually runs a fraction of a frame past
    the picture: holding the last frame for that fraction adds a frame the source does not
    have. The picture then ends with its own last frame. None: no cap (the picture lasts the
    output's length, its last frame held for the whole frames the sound goes on).
    """
    v = info.video
    if v is None or v.end_s is None or fps <= 0:
        return None
    picture_s = v.end_s - info.start_time_s
    frame_s = 1 / float(fps)
    if not 0 < length_s - picture_s < frame_s:
        return None
    # ffmpeg's -t keeps a frame whose first half starts before the end: round(length x fps)
    # frames. The cap is set only when it removes one, so outputs it does not change keep
    # their content key.
    held = math.ceil(length_s * float(fps) - 0.5)
    own = max(1, round(picture_s * float(fps)))
    return own if own < held else None


def _recommended(spec: VideoSpec) -> tuple[int, int] | None:
    if spec.recommended_min_width is None or spec.recommended_min_height is None:
        return None
    return spec.recommended_min_width, spec.recommended_min_height


def _below(width: int, height: int, minimum: tuple[int, int]) -> bool:
    """Smaller than ``minimum`` in either dimension, compared in the picture's own
    orientation (YouTube's 426x240 minimum holds a 426x240 and a 240x426 picture alike)."""
    return (min(width, height) < min(minimum) or max(width, height) < max(minimum))


def low_resolution_warning(size: tuple[int, int], spec: VideoSpec, surface: str) -> str | None:
    """The ``low_resolution`` warning for an output of ``size`` (width, height) below the
    variant's recommended size.

    Raises:
        Nothing.
    """
    minimum = _recommended(spec)
    width, height = size
    if minimum is None or not _below(width, height, minimum):
        return None
    return (f"low_resolution: {width}x{height} below the recommended "
            f"{minimum[0]}x{minimum[1]} for {surface or 'this surface'}")


def _at_recommended_size(info: MediaInfo, spec: VideoSpec, fit: FitPolicy,
                         planned: Geometry) -> Geometry:
    """The planned geometry, upscaled to the recommended minimum where the variant asks for
    it and the result stays within its caps (else it stays as planned, and is warned about)."""
    minimum = _recommended(spec)
    if (minimum is None or spec.low_resolution != "upscale"
            or not _below(planned.width, planned.height, minimum)):
        return planned
    bigger = _video_geometry(info, spec, fit, min_size=(max(spec.min_width, minimum[0]),
                                                       max(spec.min_height, minimum[1])))
    if (bigger.width > min(spec.max_width, spec.target_width or spec.max_width)
            or bigger.height > min(spec.max_height, spec.target_height or spec.max_height)
            or (spec.max_long_side and max(bigger.width, bigger.height) > spec.max_long_side)):
        return planned
    return bigger


def _video_geometry(info: MediaInfo, spec: VideoSpec, fit: FitPolicy,
                    min_size: tuple[int, int] | None = None) -> Geometry:
    """Shape and size: a shape outside the variant's range takes its target (or nearest) ratio.

    ``min_size`` replaces the variant's minimum (the recommended one, to upscale to).
    """
    min_width, min_height = min_size or (spec.min_width, spec.min_height)
    aspect = None
    if not rules.aspect_ok(info.width, info.height, spec.aspect_min, spec.aspect_max,
                           rules.EXACT):
        aspect = spec.target_aspect or clamp_aspect(info.aspect, spec.aspect_min,
                                                    spec.aspect_max)
    return fit_geometry(
        info.width, info.height, aspect=aspect, fit=fit if aspect else "none",
        max_width=min(spec.max_width, spec.target_width or spec.max_width),
        max_height=min(spec.max_height, spec.target_height or spec.max_height),
        min_width=min_width, min_height=min_height,
        max_long_side=spec.max_long_side, even=True,
    )


def _maxrate_kbps(spec: VideoSpec, geometry: Geometry, fps: Fraction, *, max_bytes: int,
                  duration_s: float, audio: AudioTarget) -> int:
    """The encode's bitrate cap: the byte budget, the pixel-rate ceiling and the preset's cap.

    The planned cap never goes below 100 kbps: a budget under that is the byte-budget
    retries' to judge (smaller pictures, or too_large).
    """
    pixels_per_s = geometry.width * geometry.height * float(fps)
    ceiling = max(MIN_CEILING_KBPS, int(pixels_per_s * BITS_PER_PIXEL_CEILING / 1000))
    audio_kbps = audio.bitrate_kbps if audio.action != "none" else 0
    budget = max(100, budget_kbps(max_bytes, duration_s, audio_kbps))
    return max(1, min(budget, ceiling, spec.max_bitrate_kbps or budget))


def _choose_action(info: MediaInfo, spec: VideoSpec, stream_problems: list[str],
                   audio: AudioTarget) -> VideoAction:
    """The least work: keep the file, copy its streams into a new one, add audio, or encode."""
    if stream_problems:
        return "transcode"
    if audio.action not in ("copy", "none"):
        # A copied picture starts at 0 in the output, and the new sound moves with it
        # (audio_shift_s), losing what it played before the first frame. Within the
        # tolerance of a file that starts at 0 (a B-frame delay) that is at most 0.1 s; a
        # picture that starts later is encoded whole (its first frame held from 0).
        late = picture_start_s(info) > start_tolerance_s(info.video.fps if info.video else None)
        return "transcode" if late else "audio_only"
    return "passthrough" if _container_ok(info, spec) else "remux"


def _full_range(info: MediaInfo) -> bool:
    """The source is full-range (JPEG) YUV, which every encode squeezes to limited range."""
    v = info.video
    return bool(v and (v.color_range == "pc" or v.pix_fmt.startswith("yuvj")))


def _stream_copy(target: VideoTarget, codec: str) -> VideoTarget:
    """A stream copy (pass-through, remux, new audio) encodes no picture: no encoder settings."""
    return replace(target, fps=None, tonemap=False, maxrate_kbps=0, x264_preset="",
                   in_transfer=None, level="", source_codec=codec, crf=CRF,
                   picture_frames=None)


def _picture_actions(target: VideoTarget, info: MediaInfo, *, fps_changed: bool) -> list[str]:
    """What an encode does to the picture, in the manifest's vocabulary and order."""
    v = info.video
    g = target.geometry
    done = (("rotated", bool(v and (v.rotation_deg or v.mirrored))),
            ("square_pixels", target.square_pixels),
            (FIT_ACTIONS.get(g.fit, ""), g.fit != "none"),
            ("resized", g.resized),
            ("fps_changed", fps_changed),
            ("tone_mapped", target.tonemap),
            ("deinterlaced", target.deinterlace),
            ("trimmed", target.trim_s is not None),
            ("looped", target.loops > 1))
    return [name for name, happens in done if happens]


def _audio_actions(audio: AudioTarget) -> list[str]:
    """What a new audio track does: encoded (and loudness-normalised), or silence added."""
    if audio.action == "encode":
        return ["audio_encoded", "loudness_normalised"] if audio.loudnorm else ["audio_encoded"]
    return ["audio_added"] if audio.action == "silent" else []


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
        # Burned-in captions draw on one branch with a file of their own: not shared (yet).
        if (isinstance(t, VideoTarget) and t.action == "transcode" and not t.audio.loudnorm
                and t.burn_in is None):
            key = (r.source_sha256, t.deinterlace, t.from_image, t.square_pixels,
                   t.full_to_limited, t.loops)
            groups.setdefault(key, []).append(r.key)
    out: list[tuple[str, ...]] = []
    for keys in groups.values():
        for i in range(0, len(keys), MAX_SHARED_OUTPUTS):
            chunk = tuple(keys[i:i + MAX_SHARED_OUTPUTS])
            if len(chunk) > 1:
                out.append(chunk)
    return tuple(out)
