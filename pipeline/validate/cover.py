"""The API's cover rules: one function per kind of variant cover, picked from one table.

``_COVER_RULES`` maps a variant's ``cover.source`` to its rule: ``frame`` (TikTok's
``video_cover_timestamp_ms``), ``image`` (the uploaded thumbnail of YouTube, Instagram Reels,
Facebook) and ``image_or_frame`` (Pinterest, which always gets a cover).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..errors import PipelineError, ThumbnailInvalid
from ..models import CoverChoice, ErrorInfo, Job, MediaRef, Probed, Selected
from ..presets import CoverSource, CoverSpec, Mode, Preset
from .problem import unprocessable

# Fetch errors that keep their own code (and 404) when they hit the cover thumbnail; any
# other failure to read it is reported as ThumbnailInvalid.
_THUMBNAIL_FETCH_CODES = ("media_not_found", "url_not_allowed", "download_failed", "too_large",
                          "invalid_library_id")


@dataclass(frozen=True, slots=True)
class _CoverAsk:
    """What one account's cover rules weigh: the request, and the video and spec it is for."""

    preset: Preset
    spec: CoverSpec
    video: Selected                 # content[0]'s video, which the cover goes with
    timestamp_ms: int | None        # cover_image.video_cover_timestamp_ms
    thumbnail: MediaRef | None      # cover_image.thumbnail
    probed: Mapping[MediaRef, Probed]

    @property
    def duration_ms(self) -> int:
        """How long the delivered video plays (loops and trim applied), in ms."""
        return round(self.video.delivered_s * 1000)


@dataclass(frozen=True, slots=True)
class _CoverOutcome:
    """The cover an account takes (None: no cover), and what the rules said on the way."""

    choice: CoverChoice | None = None
    warnings: tuple[str, ...] = ()
    errors: tuple[ErrorInfo, ...] = ()


def check_cover(job: Job, preset: Preset, mode: Mode, items: list[Selected],
                probed: Mapping[MediaRef, Probed]
                ) -> tuple[CoverChoice | None, list[str], list[ErrorInfo]]:
    """The API's cover rules for one account: which cover it takes, or why none.

    Only ``content[0].cover_image`` applies, and only to the account's video of content[0].
    The variant's ``cover.source`` picks the rule (:data:`_COVER_RULES`): a ``frame`` variant
    (TikTok) takes ``video_cover_timestamp_ms`` only, an ``image`` variant (YouTube, Instagram
    Reels, Facebook) the ``thumbnail`` only; a field the account cannot use is an error when it
    is the only one given, a warning when the other one is there too. ``image_or_frame``
    (Pinterest video pins, which need a cover) takes the thumbnail, else the requested frame,
    else the variant's default frame.
    """
    warnings = [f"content[{ci}].cover_image is ignored: only content[0]'s cover applies"
                for ci, item in enumerate(job.content[1:], start=1) if item.cover is not None]
    request = job.content[0].cover
    video = next((s for s in items if s.content_index == 0 and s.variant.kind == "video"), None)
    spec = video.variant.cover if video is not None else None
    if video is None or spec is None or mode.cover_ignored:
        if request is not None:
            warnings.append(f"cover_image ignored: {_why_no_cover(video, mode)}")
        return None, warnings, []
    ask = _CoverAsk(preset=preset, spec=spec, video=video,
                    timestamp_ms=request.timestamp_ms if request else None,
                    thumbnail=request.thumbnail if request else None, probed=probed)
    outcome = _COVER_RULES[spec.source](ask)
    return outcome.choice, warnings + list(outcome.warnings), list(outcome.errors)


def _why_no_cover(video: Selected | None, mode: Mode) -> str:
    """Why a requested cover is ignored: no video, a mode without covers, or a coverless video."""
    if video is None:
        return "the post has no video"
    return mode.cover_ignored or f"{video.variant.label} takes no cover"


def _frame_cover(ask: _CoverAsk) -> _CoverOutcome:
    """``frame`` (TikTok): the frame at ``video_cover_timestamp_ms``; a thumbnail is refused."""
    ts, label = ask.timestamp_ms, ask.preset.label
    if ts is None:
        if ask.thumbnail is None:
            return _CoverOutcome()
        return _CoverOutcome(errors=(unprocessable(
            "cover_not_supported", f"{label} takes a cover frame by video_cover_timestamp_ms "
            "only, not a thumbnail image", 0),))
    warnings = () if ask.thumbnail is None else (
        f"cover_image.thumbnail ignored: {label} uses the frame at video_cover_timestamp_ms",)
    if ts >= ask.duration_ms:
        return _CoverOutcome(warnings=warnings,
                             errors=(_timestamp_out_of_range(ts, ask.duration_ms),))
    return _CoverOutcome(CoverChoice("frame", ask.spec, ask.video, timestamp_ms=ts), warnings)


def _image_cover(ask: _CoverAsk) -> _CoverOutcome:
    """``image`` (YouTube, Reels, Facebook): the thumbnail; a timestamp alone is refused."""
    if ask.thumbnail is not None:
        return _thumbnail_cover(ask, ask.thumbnail)
    if ask.timestamp_ms is None:
        return _CoverOutcome()
    return _CoverOutcome(errors=(unprocessable(
        "cover_not_supported", f"{ask.preset.label} takes a custom thumbnail image only, not "
        "video_cover_timestamp_ms", 0),))


def _image_or_frame_cover(ask: _CoverAsk) -> _CoverOutcome:
    """``image_or_frame`` (Pinterest): the thumbnail, else the requested frame, else the default.

    The default frame is pulled inside a video shorter than it, so a pin always has a cover.
    """
    if ask.thumbnail is not None:
        return _thumbnail_cover(ask, ask.thumbnail)
    ts, duration_ms = ask.timestamp_ms, ask.duration_ms
    if ts is not None and ts >= duration_ms:
        return _CoverOutcome(errors=(_timestamp_out_of_range(ts, duration_ms),))
    at = ts if ts is not None else ask.spec.default_at_ms or 0
    at = min(at, max(0, duration_ms - 1))
    return _CoverOutcome(CoverChoice("frame", ask.spec, ask.video, timestamp_ms=at,
                                     default_frame=ts is None))


def _thumbnail_cover(ask: _CoverAsk, thumbnail: MediaRef) -> _CoverOutcome:
    """The uploaded thumbnail as the cover, if it could be fetched and is an image."""
    warnings: list[str] = []
    if ask.timestamp_ms is not None:
        # image_or_frame (Pinterest) prefers the uploaded picture too: say the frame is unused.
        warnings.append(f"video_cover_timestamp_ms ignored: {ask.preset.label} takes the "
                        "thumbnail image")
    found = ask.probed.get(thumbnail)
    if isinstance(found, PipelineError) or (found is not None and found.kind != "image"):
        return _CoverOutcome(warnings=tuple(warnings), errors=(_thumbnail_unusable(found),))
    if ask.spec.platform_ignores:
        warnings.append(ask.spec.platform_ignores)
    return _CoverOutcome(CoverChoice("image", ask.spec, ask.video, thumbnail=thumbnail),
                         tuple(warnings))


def _thumbnail_unusable(found: Probed) -> ErrorInfo:
    """A thumbnail that failed to fetch keeps its fetch error's code; anything else is invalid."""
    why = found.message if isinstance(found, PipelineError) else "it is not an image"
    code = (found.code if isinstance(found, PipelineError)
            and found.code in _THUMBNAIL_FETCH_CODES else ThumbnailInvalid.code)
    return ErrorInfo(code=code, message=f"cover thumbnail unusable: {why}",
                     http_status=404 if code == "media_not_found" else 400, content_index=0)


def _timestamp_out_of_range(ts: int, duration_ms: int) -> ErrorInfo:
    return unprocessable(
        "cover_timestamp_out_of_range",
        f"video_cover_timestamp_ms {ts} is outside the video [0, {duration_ms}) ms", 0)


# One rule per CoverSpec.source: where each platform's cover request is judged.
_COVER_RULES: dict[CoverSource, Callable[[_CoverAsk], _CoverOutcome]] = {
    "frame": _frame_cover,
    "image": _image_cover,
    "image_or_frame": _image_or_frame_cover,
}
