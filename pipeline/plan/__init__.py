"""Planning (pure): for every (medium, account) the exact target and the least work to reach it.

No I/O happens here: the same inputs always give the same plan, which is what ``conform plan``
prints and what the content-addressed output keys are derived from. Identical targets made from
the same source share one output.

Modules: ``targets`` (what an output must be, its content address), ``images``, ``videos`` and
``covers`` (one medium and one variant each; a video's ``framerate`` and ``audio`` decisions
have their own modules), ``jobplan`` (a whole job, deduplicated), ``sharing`` (an account takes
another's encode when it serves it). Crop, scale and canvas are the leaf ``pipeline.geometry``;
what a platform accepts is ``pipeline.rules``. ``Geometry``, ``fit_geometry``, ``round_even``,
``animation_fits`` and ``ANIMATION_PIXEL_BUDGET`` are still exported here, where they were
promised before they moved.
"""

from __future__ import annotations

from ..geometry import Geometry, fit_geometry, round_even
from ..rules import ANIMATION_PIXEL_BUDGET, animation_fits
from .audio import LOUDNORM_I, LOUDNORM_LRA, LOUDNORM_TP, audio_target
from .burnin import BurnSource
from .covers import frame_target, plan_cover, thumbnail_target
from .framerate import choose_fps
from .images import plan_image
from .jobplan import AccountPlan, JobPlan, account_preset, plan_job
from .prechain import rescaled, tone_map_once
from .targets import (
    ENCODER_VERSION,
    BurnIn,
    CoverPlan,
    CoverTarget,
    ImageTarget,
    Rendition,
    VideoTarget,
    target_key,
)
from .videos import (
    BITS_PER_PIXEL_CEILING,
    HDR_REFERENCE_WHITE_NITS,
    budget_kbps,
    h264_level,
    low_resolution_warning,
    merge_video_targets,
    plan_video,
    shared_decodes,
    start_tolerance_s,
    video_streams_conform,
)

__all__ = [
    "ANIMATION_PIXEL_BUDGET",
    "BITS_PER_PIXEL_CEILING",
    "ENCODER_VERSION",
    "HDR_REFERENCE_WHITE_NITS",
    "LOUDNORM_I",
    "LOUDNORM_LRA",
    "LOUDNORM_TP",
    "AccountPlan",
    "BurnIn",
    "BurnSource",
    "CoverPlan",
    "CoverTarget",
    "Geometry",
    "ImageTarget",
    "JobPlan",
    "Rendition",
    "VideoTarget",
    "account_preset",
    "animation_fits",
    "audio_target",
    "budget_kbps",
    "choose_fps",
    "fit_geometry",
    "frame_target",
    "h264_level",
    "low_resolution_warning",
    "merge_video_targets",
    "plan_cover",
    "plan_image",
    "plan_job",
    "plan_video",
    "rescaled",
    "round_even",
    "shared_decodes",
    "start_tolerance_s",
    "target_key",
    "thumbnail_target",
    "tone_map_once",
    "video_streams_conform",
]
