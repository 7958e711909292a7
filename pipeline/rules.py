"""What a platform accepts in a video stream: one list of rules for the planner and the verifier.

The planner asks it whether a source's video stream can be kept as it is (then the file is
passed through or remuxed); the verifier asks it whether an output may ship. Both read the
same rules, so a pass-through can never fail verification because the two lists drifted. They
differ only in the slack they allow (:class:`Tolerance`): a source is kept only when it meets
a rule exactly, an output may be off by what whole, even pixels and a frame rate's rounding
cannot avoid.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from .models import MediaInfo
from .presets import VideoSpec

# All four profiles a platform's H.264 decoder takes; our own encodes are always High.
H264_PROFILES = ("baseline", "constrained baseline", "main", "high")
KEYFRAME_SLACK_S = 1e-3


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How far from a rule's edge a stream may be and still meet it.

    ``fps``: relative slack on the frame-rate range; ``aspect``: relative slack on the aspect
    range, at least ``aspect_pixels`` pixels' worth on the shorter side (rounding to even
    sizes moves a small picture's ratio by up to one 2-pixel step).
    """

    fps: Fraction = Fraction(0)
    aspect: float = 0.0
    aspect_pixels: int = 0


EXACT = Tolerance()
"""The planner's: a source is kept only when it meets every rule exactly."""

OUTPUT = Tolerance(fps=Fraction(1, 100), aspect=0.01, aspect_pixels=2)
"""The verifier's: what rounding to whole, even pixels and a measured frame rate cannot avoid."""


def video_stream_problems(info: MediaInfo, spec: VideoSpec, *, max_bytes: int,
                          tolerance: Tolerance, encoded: bool = False) -> list[str]:
    """Why this video stream breaks the variant's rules (empty: it meets them).

    Args:
        info: the probed file; it must have a video stream.
        spec: the variant's video rules.
        max_bytes: the byte cap.
        tolerance: :data:`EXACT` (planner) or :data:`OUTPUT` (verifier).
        encoded: the stream is our own encode, held to the profile we encode (High).

    Raises:
        Nothing.
    """
    v = info.video
    assert v is not None
    problems: list[str] = []
    if v.codec not in spec.codecs:
        problems.append(f"codec {v.codec}")
    if v.codec == "h264" and (v.profile or "").lower() not in (
            ("high",) if encoded else H264_PROFILES):
        problems.append(f"H.264 profile {v.profile}")
    if v.pix_fmt not in spec.pix_fmts:
        problems.append(f"pixel format {v.pix_fmt}")
    if v.interlaced:
        problems.append("interlaced")
    if v.rotation_deg or v.mirrored:
        problems.append("rotation metadata")
    if v.sar != 1:
        problems.append(f"sample aspect ratio {v.sar}")
    if v.vfr:
        problems.append("variable frame rate")
    if not (spec.fps_min * (1 - tolerance.fps) <= v.fps <= spec.fps_max * (1 + tolerance.fps)):
        problems.append(f"{float(v.fps):.3f} fps out of range")
    if (v.max_keyframe_interval_s is not None
            and v.max_keyframe_interval_s > spec.gop_max_s + KEYFRAME_SLACK_S):
        problems.append(f"keyframes {v.max_keyframe_interval_s:.2f} s apart "
                        f"(at most {spec.gop_max_s:g} s)")
    if spec.sdr_only and v.hdr:
        problems.append("HDR")
    if v.color_range == "pc" or v.pix_fmt.startswith("yuvj"):
        problems.append("full-range colour")
    problems += size_problems(info, spec, tolerance)
    rate = v.bitrate_kbps or info.bitrate_kbps
    if spec.max_bitrate_kbps and rate and rate > spec.max_bitrate_kbps:
        problems.append(f"{rate} kbps over the {spec.max_bitrate_kbps} kbps cap")
    if info.size_bytes > max_bytes:
        problems.append(f"{info.size_bytes} bytes over the {max_bytes}-byte cap")
    return problems


def size_problems(info: MediaInfo, spec: VideoSpec, tolerance: Tolerance) -> list[str]:
    """The picture's size and shape against the variant: range, long side, even, aspect.

    Raises:
        Nothing.
    """
    w, h = info.width, info.height
    problems: list[str] = []
    if not (spec.min_width <= w <= spec.max_width and spec.min_height <= h <= spec.max_height):
        problems.append(f"size {w}x{h} out of range")
    if spec.max_long_side and max(w, h) > spec.max_long_side:
        problems.append(f"long side {max(w, h)} over {spec.max_long_side}")
    if w % 2 or h % 2:
        problems.append(f"odd size {w}x{h}")
    if not aspect_ok(w, h, spec.aspect_min, spec.aspect_max, tolerance):
        problems.append(f"aspect {w}:{h} out of range")
    return problems


def aspect_ok(w: int, h: int, lo: Fraction | None, hi: Fraction | None,
              tolerance: Tolerance) -> bool:
    """Whether ``w:h`` is inside ``[lo, hi]``, give or take the tolerance.

    Raises:
        Nothing.
    """
    slack = max(tolerance.aspect, tolerance.aspect_pixels / max(1, min(w, h)))
    if not slack:
        a = Fraction(w, max(1, h))
        return not ((lo and a < lo) or (hi and a > hi))
    ratio = w / h
    return (lo is None or ratio >= float(lo) * (1 - slack)) and (
        hi is None or ratio <= float(hi) * (1 + slack))
