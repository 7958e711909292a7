"""Output sharing (pure): an account takes an encode planned for another account of the source.

Identical targets already share one output (:func:`pipeline.plan.plan_job`). This step goes
further, as a cover: once every account's own target is known, an account's encode is dropped
when each account using it can take another planned encode of the same source instead. An
account takes an output only when

- the output passes the account's own video rules (:mod:`pipeline.rules`, the verifier's: the
  planned output is judged as the probed file would be: size, shape, frame rate, keyframes,
  bitrate and byte caps, codec, profile, pixel format) and its audio rules;
- it shows the same picture: the same crop of the source (and smart-framing path), no more
  bars or fill than the account's own target, at least its frame rate, quality (CRF, x264
  preset) and audio;
- it is not smaller than what the account's platform displays: the own target fitted into the
  player's largest size (``display_long_side`` x ``display_short_side`` in the preset, with
  its source); where no source says, the own target itself.

Of the outputs that qualify, the one closest to the own target (in pixels) is taken. Largest
encodes are considered first, since dropping them saves the most.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from fractions import Fraction

from .. import rules
from ..geometry import Geometry
from ..models import AudioStream, MediaInfo, VideoStream
from ..presets import VideoSpec
from .targets import BurnIn, Rendition, Use, VideoTarget
from .videos import CONTAINER_FIXED_BYTES, CONTAINER_OVERHEAD, merge_video_targets

# A use of an output: (account id, content index, media index).
UseId = tuple[str, int, int]
# Even sizes: a fitted picture may come out one 2-pixel step under the exact display size.
DISPLAY_SLACK_PX = 2
# A share of the canvas the picture may lose to bars or fill beyond the own target's (rounding).
FILL_SLACK = 0.01
# The encode's VBV buffer in seconds of its maxrate (bufsize = 2 x maxrate in video.graph).
VBV_BUFFER_S = 2.0


@dataclass(frozen=True, slots=True)
class Share:
    """One account's video and the output it gets: its own target's, or another account's.

    ``reason`` says why it takes the other output, or why it keeps its own (the closest
    candidate's first failing check).
    """

    account_id: str
    platform: str
    content_index: int
    media_index: int
    own_key: str
    taken_key: str
    reason: str

    @property
    def taken(self) -> bool:
        """The account gets an output planned for another account."""
        return self.own_key != self.taken_key

    def to_dict(self) -> dict[str, object]:
        """The plan's JSON view (``conform plan --json``)."""
        return {"account_id": self.account_id, "platform": self.platform,
                "content_index": self.content_index, "media_index": self.media_index,
                "own_output": self.own_key, "output": self.taken_key, "taken": self.taken,
                "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Owned:
    """One use of a video and its own target, as planned for the account alone."""

    use: Use
    own_key: str
    target: VideoTarget
    duration_s: float      # the output's length (looped, trimmed): for its byte estimate


@dataclass(frozen=True, slots=True)
class Shared:
    """The renditions after sharing, where each use went, and the per-account decisions."""

    renditions: dict[str, Rendition]
    moved: dict[UseId, str]
    shares: tuple[Share, ...]


def use_id(use: Use) -> UseId:
    """The identity of one use (an account's medium).

    Raises:
        Nothing.
    """
    return (use.account_id, use.content_index, use.media_index)


def share_outputs(renditions: Mapping[str, Rendition], owned: Iterable[Owned]) -> Shared:
    """Let accounts take outputs already planned for other accounts of the same source.

    Args:
        renditions: every output of the job by key, each with its uses.
        owned: each video use with its own target (only encodes are considered).

    Returns:
        The remaining renditions (taking uses carry them, the dropped are gone), each moved
        use's new key, and a decision for every use that had a candidate.

    Raises:
        Nothing.
    """
    alive = dict(renditions)
    own = {use_id(o.use): o for o in owned if o.target.action == "transcode"}
    reasons: dict[UseId, str] = {}
    home: dict[UseId, str] = {u: o.own_key for u, o in own.items()}
    for key in sorted(_encodes(alive.values()), key=lambda k: (-_cost(alive[k]), k)):
        rendition = alive[key]
        uses = [u for u in rendition.uses if use_id(u) in own]
        if len(uses) != len(rendition.uses):
            continue  # a use that is not an encode of its own (never happens for an encode)
        candidates = [c for c in alive.values() if c.key != key and _same_source(c, rendition)]
        if not candidates:
            continue
        picks = {use_id(u): _choose(own[use_id(u)], candidates) for u in uses}
        if any(pick is None for pick, _ in picks.values()):
            _keep(reasons, picks, home, own, rendition)
            continue
        for uid, (_, why) in picks.items():
            reasons[uid] = why
        del alive[key]
        for use in uses:
            pick = picks[use_id(use)][0]
            assert pick is not None
            host = alive[pick.key]
            alive[pick.key] = replace(host, target=merge_video_targets(
                _video(host), own[use_id(use)].target), uses=(*host.uses, use))
            home[use_id(use)] = pick.key
    _final_reasons(reasons, alive, home, own)
    shares = tuple(Share(o.use.account_id, o.use.platform, o.use.content_index,
                         o.use.media_index, o.own_key, home[u], reasons[u])
                   for u, o in own.items() if u in reasons)
    moved = {u: k for u, k in home.items() if k != own[u].own_key}
    return Shared(alive, moved, shares)


def _keep(reasons: dict[UseId, str],
          picks: Mapping[UseId, tuple[Rendition | None, str]], home: Mapping[UseId, str],
          own: Mapping[UseId, Owned], rendition: Rendition) -> None:
    """Record why the uses of an output that stays keep it (a use moved here keeps its why)."""
    for uid, (pick, why) in picks.items():
        if home[uid] != own[uid].own_key:
            continue
        reasons[uid] = why if pick is None else _keep_text(rendition, picks)


def _final_reasons(reasons: dict[UseId, str], alive: Mapping[str, Rendition],
                   home: Mapping[UseId, str], own: Mapping[UseId, Owned]) -> None:
    """Why each kept output stays, judged against the outputs that are finally made.

    A reason recorded while an output was considered can name a candidate dropped later; the
    plan should only ever point at outputs it makes.
    """
    for key, rendition in alive.items():
        uses = [use_id(u) for u in rendition.uses
                if use_id(u) in reasons and home[use_id(u)] == own[use_id(u)].own_key]
        candidates = [c for c in alive.values() if c.key != key and _same_source(c, rendition)]
        if not uses or not candidates:
            continue
        picks = {uid: _choose(own[uid], candidates) for uid in uses}
        for uid in uses:
            if picks[uid][0] is None:
                reasons[uid] = picks[uid][1]
            elif all(pick is not None for pick, _ in picks.values()):
                reasons[uid] = "keeps its own: it was settled before the output it could take"
            else:
                reasons[uid] = _keep_text(rendition, picks)


def _keep_text(rendition: Rendition,
               picks: Mapping[UseId, tuple[Rendition | None, str]]) -> str:
    needed_by = [u.account_id for u in rendition.uses
                 if use_id(u) in picks and picks[use_id(u)][0] is None]
    return f"keeps its own: it is made anyway for {', '.join(needed_by)}"


def _encodes(renditions: Iterable[Rendition]) -> list[str]:
    return [r.key for r in renditions
            if isinstance(r.target, VideoTarget) and r.target.action == "transcode"]


def _video(r: Rendition) -> VideoTarget:
    assert isinstance(r.target, VideoTarget)
    return r.target


def _cost(r: Rendition) -> float:
    """What an encode costs, roughly: pixels per second."""
    t = _video(r)
    return t.geometry.width * t.geometry.height * float(t.fps or 30)


def _same_source(a: Rendition, b: Rendition) -> bool:
    return (a.source_sha256 == b.source_sha256 and a.ref_text == b.ref_text
            and isinstance(a.target, VideoTarget) and a.target.action == "transcode")


def _choose(owner: Owned, candidates: list[Rendition]) -> tuple[Rendition | None, str]:
    """The qualifying candidate closest to the own target, or None and the closest's failure."""
    own_px = owner.target.geometry.width * owner.target.geometry.height

    def distance(r: Rendition) -> tuple[int, str]:
        g = _video(r).geometry
        return (abs(g.width * g.height - own_px), r.key)

    first_failure = ""
    for candidate in sorted(candidates, key=distance):
        problems = serving_problems(_video(candidate), owner)
        if not problems:
            g = _video(candidate).geometry
            hosts = ", ".join(dict.fromkeys(u.account_id for u in candidate.uses))
            return candidate, (f"takes the {g.width}x{g.height} planned for {hosts} (own target "
                               f"{owner.target.geometry.width}x{owner.target.geometry.height}):"
                               f" passes {owner.use.platform}'s video rules and is not below "
                               f"what it displays ({_display_text(owner)})")
        if not first_failure:
            g = _video(candidate).geometry
            first_failure = f"keeps its own: {g.width}x{g.height} {problems[0]}"
    return None, first_failure


def serving_problems(candidate: VideoTarget, owner: Owned) -> list[str]:
    """Why ``candidate`` cannot be delivered instead of the owner's own target (empty: it can).

    Raises:
        Nothing.
    """
    spec = owner.use.variant.video
    assert spec is not None
    return [*_picture_problems(candidate, owner.target, spec),
            *_display_problems(candidate, owner),
            *_audio_problems(candidate, owner.target, spec),
            *rules.video_stream_problems(predicted_info(candidate, owner.duration_s), spec,
                                         max_bytes=owner.target.max_bytes,
                                         tolerance=rules.OUTPUT, encoded=True)]


def _picture_problems(c: VideoTarget, own: VideoTarget, spec: VideoSpec) -> list[str]:
    """The same picture: crop, framing path, length, fill, frame rate, quality, container."""
    g, o = c.geometry, own.geometry
    crop = (g.crop_x, g.crop_y, g.crop_width, g.crop_height)
    checks = (
        (crop != (o.crop_x, o.crop_y, o.crop_width, o.crop_height) or c.reframe != own.reframe,
         "shows another part of the picture"),
        ((c.trim_s, c.loops, c.from_image) != (own.trim_s, own.loops, own.from_image),
         "lasts another length"),
        (_picture_share(g) < _picture_share(o) - FILL_SLACK, "adds bars or fill"),
        ((c.fps or 0) < (own.fps or 0), f"has fewer frames per second ({c.fps})"),
        (c.crf > own.crf or c.x264_preset != own.x264_preset, "is encoded at a lower quality"),
        ("mp4" not in spec.containers, "is an MP4, which it does not take"),
        (_captions_misplaced(c.burn_in, own.burn_in),
         "shows other captions, or draws them where the app's UI covers them"),
    )
    return [problem for found, problem in checks if found]


def _captions_misplaced(c: BurnIn | None, own: BurnIn | None) -> bool:
    """Burned-in captions that are not the account's own text, or that sit lower or wider
    than its surface's UI bands allow (X's bottom-placed captions under TikTok's buttons)."""
    if c is None or own is None:
        return c is not own
    return c.sha256 != own.sha256 or any(
        mine > theirs for mine, theirs in ((own.bottom, c.bottom), (own.left, c.left),
                                           (own.right, c.right)))


def _picture_share(g: Geometry) -> float:
    """How much of the canvas is picture (the rest: bars or fill)."""
    return (g.content_width * g.content_height) / max(1, g.width * g.height)


def display_size(owner: Owned) -> tuple[int, int]:
    """The smallest picture the account may get: its own, fitted into what its player shows.

    Raises:
        Nothing.
    """
    g = owner.target.geometry
    spec = owner.use.variant.video
    assert spec is not None
    if spec.display_long_side is None or spec.display_short_side is None:
        return g.content_width, g.content_height
    landscape = g.content_width >= g.content_height
    box_w, box_h = ((spec.display_long_side, spec.display_short_side) if landscape
                    else (spec.display_short_side, spec.display_long_side))
    scale = min(1.0, box_w / g.content_width, box_h / g.content_height)
    return math.floor(g.content_width * scale), math.floor(g.content_height * scale)


def _display_text(owner: Owned) -> str:
    w, h = display_size(owner)
    spec = owner.use.variant.video
    source = "its player's size" if spec and spec.display_long_side else "its own target"
    return f"{w}x{h}, {source}"


def _display_problems(c: VideoTarget, owner: Owned) -> list[str]:
    w, h = display_size(owner)
    g = c.geometry
    if g.content_width + DISPLAY_SLACK_PX < w or g.content_height + DISPLAY_SLACK_PX < h:
        return [f"is below what {owner.use.platform} displays ({_display_text(owner)})"]
    return []


def _audio_problems(c: VideoTarget, own: VideoTarget, spec: VideoSpec) -> list[str]:
    """The same sound, at least the own bitrate, inside the account's audio rules."""
    a, o = c.audio, own.audio
    same = (a.action, a.sample_rate_hz, a.channels, a.loudnorm) == (
        o.action, o.sample_rate_hz, o.channels, o.loudnorm)
    if not same or a.bitrate_kbps < o.bitrate_kbps:
        return ["has other sound"]
    if a.action in ("encode", "silent") and (
            a.codec not in spec.audio.codecs or a.sample_rate_hz not in spec.audio.sample_rates_hz
            or a.channels > spec.audio.max_channels):
        return ["breaks its audio rules"]
    return []


def predicted_info(t: VideoTarget, duration_s: float) -> MediaInfo:
    """The file an encode will make, as probing would describe it (for the shared rules).

    The bitrate and size are their planned ceilings: x264's VBV holds any stretch of the
    stream to the maxrate plus one buffer (twice the maxrate, see ``video.graph``), so a file
    that passes here passes with any bitrate the encode really makes.

    Raises:
        Nothing.
    """
    g = t.geometry
    fps = t.fps or Fraction(30)
    audio_kbps = t.audio.bitrate_kbps if t.audio.action != "none" else 0
    length_s = max(duration_s, 0.1)
    video_kbps = math.ceil(t.maxrate_kbps * (1 + VBV_BUFFER_S / length_s))
    kbps = video_kbps + audio_kbps
    size = int((kbps * 1000 / 8 * length_s + CONTAINER_FIXED_BYTES) / (1 - CONTAINER_OVERHEAD))
    video = VideoStream(
        codec="h264", profile="High", width=g.width, height=g.height, display_width=g.width,
        display_height=g.height, rotation_deg=0, mirrored=False, display_matrix=None,
        sar=Fraction(1), fps=fps, fps_real=fps, vfr=False, pix_fmt="yuv420p", bit_depth=8,
        color_transfer="bt709", color_primaries="bt709", color_space="bt709",
        color_range="tv", hdr=False, interlaced=False, bitrate_kbps=video_kbps,
        frame_count=None, max_keyframe_interval_s=t.gop_frames / float(fps))
    audio = None
    if t.audio.action != "none":
        audio = AudioStream(codec=t.audio.codec, profile="LC",
                            sample_rate_hz=t.audio.sample_rate_hz, channels=t.audio.channels,
                            channel_layout=None, bitrate_kbps=t.audio.bitrate_kbps)
    return MediaInfo(kind="video", format_name="mp4", size_bytes=size, width=g.width,
                     height=g.height, duration_s=length_s, bitrate_kbps=kbps,
                     start_time_s=0.0, video=video, audio=audio, moov_first=True)
