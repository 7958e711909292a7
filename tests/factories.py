"""Synthetic MediaInfo values for unit tests that need no ffmpeg."""

from __future__ import annotations

from fractions import Fraction

from pipeline.models import AudioStream, ImageFacts, MediaInfo, VideoStream


def image_info(width: int = 1200, height: int = 900, *, fmt: str = "jpeg", frames: int = 1,
               size_bytes: int = 200_000, orientation: int = 1, alpha: bool = False) -> MediaInfo:
    return MediaInfo(
        kind="image", format_name=fmt, size_bytes=size_bytes, width=width, height=height,
        duration_s=frames / 10 if frames > 1 else None, bitrate_kbps=None, start_time_s=0.0,
        image=ImageFacts(mode="RGBA" if alpha else "RGB", bits=8, has_alpha=alpha,
                         icc_profile=None, exif_orientation=orientation, has_gps=False,
                         has_exif=False, has_xmp=False, frames=frames),
    )


def video_info(width: int = 1920, height: int = 1080, *, duration_s: float = 10.0,
               fps: Fraction = Fraction(30), codec: str = "h264", fmt: str = "mp4",
               audio: bool = True, size_bytes: int = 5_000_000, moov_first: bool = True,
               rotation: int = 0, pix_fmt: str = "yuv420p", hdr: bool = False) -> MediaInfo:
    stream = VideoStream(
        codec=codec, profile="High", width=width, height=height, display_width=width,
        display_height=height, rotation_deg=rotation, mirrored=False, display_matrix=None,
        sar=Fraction(1), fps=fps, fps_real=fps, vfr=False, pix_fmt=pix_fmt,
        bit_depth=10 if "10" in pix_fmt else 8, color_transfer="smpte2084" if hdr else "bt709",
        color_primaries="bt709", color_space="bt709", color_range="tv", hdr=hdr,
        interlaced=False, bitrate_kbps=4000, frame_count=int(duration_s * fps),
    )
    a = AudioStream(codec="aac", profile="LC", sample_rate_hz=48000, channels=2,
                    channel_layout="stereo", bitrate_kbps=128) if audio else None
    return MediaInfo(kind="video", format_name=fmt, size_bytes=size_bytes, width=width,
                     height=height, duration_s=duration_s, bitrate_kbps=4200, start_time_s=0.0,
                     video=stream, audio=a, moov_first=moov_first)
