"""Platform presets: TOML files in ``presets/`` validated into typed, frozen objects.

One file per platform. A file holds the platform's post limits (from the Create-Post API's
table, made stricter where the platform itself is stricter), the account setting that picks
the media variant (``mode``), and one ``[variants.NAME]`` table per media variant.
Every number in the files cites its source there; this package only checks shape and ranges.

The typed records are in :mod:`.records`, the validating reader in :mod:`.reader` and
:mod:`.parse`, and the file lookup and registry in :mod:`.registry`; every name is
re-exported here, so ``from pipeline.presets import ...`` is the one import path.
(The bundled data folder is ``<repo>/presets``, shipped in the wheel as ``pipeline/_presets``.)
"""

from __future__ import annotations

from .account import applied_limits, limit_problems, with_account_limits
from .parse import load_preset_file, parse_preset
from .reader import parse_ratio
from .records import (
    AUDIO_CODECS,
    CAPTION_FORMATS,
    CAROUSEL_POLICIES,
    CONTAINERS,
    COVER_FIT_POLICIES,
    COVER_SOURCES,
    FIT_POLICIES,
    IMAGE_FORMATS,
    SCHEMA_VERSION,
    UI_EDGES,
    VARIANT_KINDS,
    VIDEO_CODECS,
    VIDEO_QUALITIES,
    AccountCeiling,
    AccountLimits,
    AudioSpec,
    CaptionFormat,
    CaptionSpec,
    CarouselPolicy,
    CoverSource,
    CoverSpec,
    FitPolicy,
    ImageSpec,
    Limits,
    Mode,
    Preset,
    UiEdge,
    UiZone,
    Variant,
    VariantKind,
    VideoSpec,
)
from .registry import REPO_PRESETS_DIR, PresetRegistry, bundled_presets_dir, load_presets

__all__ = [
    "AUDIO_CODECS",
    "CAPTION_FORMATS",
    "CAROUSEL_POLICIES",
    "CONTAINERS",
    "COVER_FIT_POLICIES",
    "COVER_SOURCES",
    "FIT_POLICIES",
    "IMAGE_FORMATS",
    "REPO_PRESETS_DIR",
    "SCHEMA_VERSION",
    "UI_EDGES",
    "VARIANT_KINDS",
    "VIDEO_CODECS",
    "VIDEO_QUALITIES",
    "AccountCeiling",
    "AccountLimits",
    "AudioSpec",
    "CaptionFormat",
    "CaptionSpec",
    "CarouselPolicy",
    "CoverSource",
    "CoverSpec",
    "FitPolicy",
    "ImageSpec",
    "Limits",
    "Mode",
    "Preset",
    "PresetRegistry",
    "UiEdge",
    "UiZone",
    "Variant",
    "VariantKind",
    "VideoSpec",
    "applied_limits",
    "bundled_presets_dir",
    "limit_problems",
    "load_preset_file",
    "load_presets",
    "parse_preset",
    "parse_ratio",
    "with_account_limits",
]
