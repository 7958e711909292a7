"""Audio planning: keep a conforming track, encode the rest, add silence when required."""

from __future__ import annotations

from fractions import Fraction

from ..models import AudioStream, MediaInfo
from ..presets import AudioSpec, VideoSpec
from .targets import AudioTarget

# AAC-LC at 128 kbps or more: Facebook's "stereo AAC at 128 kbps or more", X's recommended
# minimum and the IG/Threads number (platform-specs sections 1, 2, 3, 8).
MIN_AUDIO_KBPS = 128
# EBU R128 measurement, streaming-normal target: no platform states a loudness target
# (platform-specs 3d: "-14 LUFS is a streaming norm"), so a preset that asks for loudnorm gets
# -14 LUFS integrated, -1 dBTP true peak, LRA 11 LU.
LOUDNORM_I, LOUDNORM_TP, LOUDNORM_LRA = -14.0, -1.0, 11.0
# Audio that starts this much after the picture (an empty edit, as phones and editors write
# it) is never copied: an MP4 without an edit list starts every track at 0, so a copy would
# play it that much early. Under a millisecond is rounding (Matroska stores whole ms).
LEAD_IN_TOLERANCE_S = 0.001


def audio_target(info: MediaInfo, spec: VideoSpec, *, reencode_all: bool) -> AudioTarget:
    """Keep conforming audio, encode the rest, add silence only when the preset requires it.

    Encoded audio is AAC-LC at the source's rate when the preset allows it (44.1 kHz stays
    44.1 kHz), else 48 kHz; more channels than allowed are downmixed to stereo. Audio whose
    hidden priming would come a frame late or more once copied is encoded too, and so is
    audio that starts after the picture (its lead-in, which only an encode can keep).

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
    if (_copyable(a, aspec, _frame_s(info), kbps) and lead_in_s(info) < LEAD_IN_TOLERANCE_S
            and not reencode_all):
        return AudioTarget("copy", codec=a.codec, sample_rate_hz=a.sample_rate_hz,
                           channels=a.channels, bitrate_kbps=a.bitrate_kbps or kbps)
    rate = a.sample_rate_hz if a.sample_rate_hz in aspec.sample_rates_hz else default_rate
    channels = min(max(1, a.channels), aspec.max_channels)
    if a.channels > aspec.max_channels:
        channels = min(2, aspec.max_channels)  # 5.1 -> stereo, never 5.1 -> 4.0
    return AudioTarget("encode", sample_rate_hz=rate, channels=channels, bitrate_kbps=kbps,
                       loudnorm=aspec.loudnorm)


def lead_in_s(info: MediaInfo) -> float:
    """How long after the first frame the audio's first packet comes (negative: before it).

    Raises:
        Nothing.
    """
    if info.audio is None or info.video is None:
        return 0.0
    return info.audio.start_s - info.video.start_s


def _frame_s(info: MediaInfo) -> float:
    """One frame's duration (30 fps when the file has no video rate)."""
    return 1 / float(info.video.fps) if info.video and info.video.fps else 1 / 30


def _copyable(a: AudioStream, aspec: AudioSpec, frame_s: float, kbps: int) -> bool:
    """The track meets the variant and can be copied as it is.

    A copy plays the priming the source's edit list hid (we write none): keep it only while
    that moves the sound by less than a frame (48 kHz AAC from ffmpeg at 30 fps), else the
    encode puts the sound back where it was (an iPhone's 2112 samples are 48 ms).
    """
    return (a.codec in aspec.codecs and (a.codec != "aac" or (a.profile or "LC") == "LC")
            and 1 <= a.channels <= aspec.max_channels
            and a.sample_rate_hz in aspec.sample_rates_hz
            and (a.bitrate_kbps or kbps) >= aspec.min_bitrate_kbps and not aspec.loudnorm
            and a.priming_s < frame_s)


def picture_start_s(info: MediaInfo) -> float:
    """When the first frame is shown, counted from the file's start (where ffmpeg puts 0).

    Raises:
        Nothing.
    """
    if info.video is None:
        return 0.0
    return max(0.0, info.video.start_s - info.start_time_s)


def audio_shift_s(info: MediaInfo, audio: AudioTarget, *, copies_picture: bool,
                  fps: Fraction | None) -> float:
    """How much earlier encoded audio must come to stay with the picture (0 when it needs
    no move).

    The output's picture starts on its frame grid: a copied picture starts at 0, an encoded
    one has its first frame on the nearest frame time (the fps filter). A source whose first
    frame is a fraction of a frame after the file's start (Matroska with Opus: the Opus
    pre-skip puts the audio's first packet before 0, so the video starts ~7-14 ms in) would
    have its picture moved by that fraction and its sound not: the sound moves with it.

    Raises:
        Nothing.
    """
    if audio.action != "encode" or info.video is None:
        return 0.0
    start = picture_start_s(info)
    if copies_picture:
        moved = start
    else:
        rate = float(fps or info.video.fps or 30)
        moved = start - round(start * rate) / rate
    if abs(moved) * audio.sample_rate_hz < 1:  # under a sample: nothing to move
        return 0.0
    return round(moved, 6)
