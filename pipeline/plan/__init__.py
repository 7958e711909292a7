"""Planning (pure): for every (medium, account) the exact target and the least work to reach it.

No I/O happens here: the same inputs always give the same plan, which is what ``conform plan``
prints and what the content-addressed output keys are derived from. Identical targets made from
the same source share one output.

Modules: ``targets`` (what an output must be, its content address), ``geometry`` (crop, scale,
canvas), ``images``, ``videos`` and ``covers`` (one medium and one variant each; a video's
``framerate`` and ``audio`` decisions have their own modules), ``jobplan`` (a whole job,
deduplicated), ``sharing`` (an account takes another's encode when it serves it).
"""

from __future__ import annotations

from ..rules import H264_PROFILES, is_srgb_profile
from .audio import LOUDNORM_I, LOUDNORM_LRA, LOUDNORM_TP, MIN_AUDIO_KBPS, audio_target
from .burnin import BurnSource
from .covers import frame_target, plan_cover, thumbnail_target
from .framerate import SNAP_TOLERANCE, STANDARD_RATES, choose_fps
from .geometry import clamp_aspect, fit_geometry, nearest_ratio, round_even
from .images import (
    ANIMATION_PIXEL_BUDGET,
    PNG_BUDGET_SHARE,
    animation_fits,
    carousel_frame,
    force_size,
    needs_srgb,
    plan_image,
    wanted_aspect,
)
from .jobplan import AccountPlan, JobPlan, account_preset, plan_job
from .prechain import ToneMapOnce, rescaled, tone_map_once
from .sharing import Share, share_outputs
from .targets import (
    ENCODER_VERSION,
    IMAGE_ENGINE,
    VIDEO_ENCODER_VERSION,
    AudioTarget,
    BurnIn,
    CoverPlan,
    CoverTarget,
    FitMode,
    Geometry,
    ImageTarget,
    Rendition,
    Target,
    Use,
    VideoTarget,
    target_key,
)
from .videos import (
    BITS_PER_PIXEL_CEILING,
    CONTAINER_FIXED_BYTES,
    CONTAINER_OVERHEAD,
    CRF,
    H264_LEVELS,
    HDR_REFERENCE_WHITE_NITS,
    MAX_SHARED_OUTPUTS,
    MIN_CEILING_KBPS,
    START_TOLERANCE_FRAMES,
    START_TOLERANCE_S,
    budget_kbps,
    h264_level,
    merge_video_targets,
    plan_video,
    shared_decodes,
    start_tolerance_s,
    video_streams_conform,
)

__all__ = [
    "ANIMATION_PIXEL_BUDGET",
    "BITS_PER_PIXEL_CEILING",
    "CONTAINER_FIXED_BYTES",
    "CONTAINER_OVERHEAD",
    "CRF",
    "ENCODER_VERSION",
    "H264_LEVELS",
    "H264_PROFILES",
    "HDR_REFERENCE_WHITE_NITS",
    "IMAGE_ENGINE",
    "LOUDNORM_I",
    "LOUDNORM_LRA",
    "LOUDNORM_TP",
    "MAX_SHARED_OUTPUTS",
    "MIN_AUDIO_KBPS",
    "MIN_CEILING_KBPS",
    "PNG_BUDGET_SHARE",
    "SNAP_TOLERANCE",
    "STANDARD_RATES",
    "START_TOLERANCE_FRAMES",
    "START_TOLERANCE_S",
    "VIDEO_ENCODER_VERSION",
    "AccountPlan",
    "AudioTarget",
    "BurnIn",
    "BurnSource",
    "CoverPlan",
    "CoverTarget",
    "FitMode",
    "Geometry",
    "ImageTarget",
    "JobPlan",
    "Rendition",
    "Share",
    "Target",
    "ToneMapOnce",
    "Use",
    "VideoTarget",
    "account_preset",
    "animation_fits",
    "audio_target",
    "budget_kbps",
    "carousel_frame",
    "choose_fps",
    "clamp_aspect",
    "fit_geometry",
    "force_size",
    "frame_target",
    "h264_level",
    "is_srgb_profile",
    "merge_video_targets",
    "nearest_ratio",
    "needs_srgb",
    "plan_cover",
    "plan_image",
    "plan_job",
    "plan_video",
    "rescaled",
    "round_even",
    "share_outputs",
    "shared_decodes",
    "start_tolerance_s",
    "target_key",
    "thumbnail_target",
    "tone_map_once",
    "video_streams_conform",
    "wanted_aspect",
]
