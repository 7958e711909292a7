"""Video planning: pass-through, remux or encode, and every parameter of the encode."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace
from fractions import Fraction
from typing import Literal

from .. import rules
from ..models import MediaInfo
from ..presets import FitPolicy, VideoSpec
from .geometry import clamp_aspect, fit_geometry
from .targets import AudioTarget, Rendition, VideoTarget

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
STANDARD_RATES = (Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001),
                  Fraction(30), Fraction(48), Fraction(50), Fraction(60000, 1001), Fraction(60))


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

    The shared stream rules (:mod:`pipeline.rules`), met exactly: the verifier allows an
    output some rounding slack, so a stream kept here always passes verification.

    Raises:
        Nothing: ``info`` must have a video stream.
    """
    return rules.video_stream_problems(info, spec, max_bytes=max_bytes, tolerance=rules.EXACT)


def audio_target(info: MediaInfo, spec: VideoSpec, *, reencode_all: bool) -> AudioTarget:
    """Keep conforming audio, encode the rest, add silence only when the preset requires it.

    Encoded audio is AAC-LC at the source's rate when the preset allows it (44.1 kHz stays
    44.1 kHz), else 48 kHz; more channels than allowed are downmixed to stereo. Audio whose
    hidden priming would come a frame late or more once copied is encoded too.

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
    # A copy plays the priming the source's edit list hid (we write none): keep it only while
    # that moves the sound by less than a frame (48 kHz AAC from ffmpeg at 30 fps), else the
    # encode puts the sound back where it was (an iPhone's 2112 samples are 48 ms).
    frame_s = 1 / float(info.video.fps) if info.video and info.video.fps else 1 / 30
    conforms = (a.codec in aspec.codecs and (a.codec != "aac" or (a.profile or "LC") == "LC")
                and 1 <= a.channels <= aspec.max_channels
                and a.sample_rate_hz in aspec.sample_rates_hz
                and (a.bitrate_kbps or kbps) >= aspec.min_bitrate_kbps and not aspec.loudnorm
                and a.priming_s < frame_s)
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
               from_image: bool, x264_preset: str, loops: int = 1,
               fit: FitPolicy | None = None) -> tuple[VideoTarget, list[str], list[str]]:
    """Target, planned actions and warnings for one video (or animation) and one video variant.

    The least work wins: untouched (``passthrough``) when stream and container conform,
    stream copy into a new MP4 (``remux``) when only the container does not, a new audio
    track only (``audio_only``), else a full encode (``transcode``). ``loops`` > 1 (an endless
    animation under the variant's minimum, see validation) plays it that many whole times.

    ``fit`` overrides the variant's fit for a shape change (the job's ``conform.fit``).

    Raises:
        Nothing: validation has already checked durations and counts.
    """
    fit = fit or spec.fit
    v = info.video
    actions: list[str] = []
    warnings: list[str] = []
    from_image = from_image or v is None
    duration = min((info.duration_s or 1.0) * loops, trim_s or math.inf)
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
    if not rules.aspect_ok(info.width, info.height, spec.aspect_min, spec.aspect_max,
                           rules.EXACT):
        aspect = spec.target_aspect or clamp_aspect(info.aspect, spec.aspect_min,
                                                    spec.aspect_max)
    geometry = fit_geometry(
        info.width, info.height, aspect=aspect, fit=fit if aspect else "none",
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
            actions.append({"crop": "cropped", "pad": "padded", "blur": "blurred",
                            "smart": "reframed"}[geometry.fit])
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
        if loops > 1:
            actions.append("looped")
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
        loops=loops, crf=QUALITY_CRF[spec.quality] if transcode else CRF,
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
                   t.full_to_limited, t.loops)
            groups.setdefault(key, []).append(r.key)
    out: list[tuple[str, ...]] = []
    for keys in groups.values():
        for i in range(0, len(keys), MAX_SHARED_OUTPUTS):
            chunk = tuple(keys[i:i + MAX_SHARED_OUTPUTS])
            if len(chunk) > 1:
                out.append(chunk)
    return tuple(out)
