"""Planner: geometry, least work, and deduplication of identical targets (no ffmpeg needed)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from pipeline.errors import JobInvalid
from pipeline.geometry import fit_geometry
from pipeline.job import parse_job
from pipeline.models import Account, MediaRef
from pipeline.plan import (
    JobPlan,
    VideoTarget,
    account_preset,
    plan_job,
    target_key,
)
from pipeline.presets import load_presets
from pipeline.validate import check_account
from tests.factories import image_info, video_info

PRESETS = load_presets()


def plan_for(content: list[dict[str, Any]], accounts: list[dict[str, Any]],
             probed: dict[str, Any]) -> JobPlan:
    job = parse_job({"workspace_id": "w", "content": content, "accounts": accounts}, PRESETS)
    refs = {MediaRef("library", k): v for k, v in probed.items()}
    checks = [check_account(job, a, account_preset(a, PRESETS), refs) for a in job.accounts]
    sha_of = {ref: f"sha-{ref.value}" for ref in refs}
    return plan_job(checks, sha_of=sha_of, thumb_infos={})


def test_fit_geometry_downscale_only() -> None:
    g = fit_geometry(4000, 3000, aspect=None, fit="none", max_width=1440, max_height=1800)
    assert (g.width, g.height) == (1440, 1080) and g.fit == "none" and g.resized
    small = fit_geometry(800, 600, aspect=None, fit="none", max_width=1440, max_height=1800)
    assert (small.width, small.height) == (800, 600) and not small.resized


def test_fit_geometry_upscales_only_to_a_minimum() -> None:
    g = fit_geometry(200, 200, aspect=None, fit="none", max_width=1440, max_height=1800,
                     min_width=320)
    assert (g.width, g.height) == (320, 320) and g.upscaled


def test_fit_geometry_crop_to_aspect() -> None:
    g = fit_geometry(1000, 2000, aspect=Fraction(4, 5), fit="crop", max_width=1440,
                     max_height=1800)
    assert (g.crop_width, g.crop_height) == (1000, 1250)
    assert (g.crop_x, g.crop_y) == (0, 375)
    assert (g.width, g.height) == (1000, 1250)


def test_fit_geometry_blur_pad_to_9_16() -> None:
    g = fit_geometry(1920, 1080, aspect=Fraction(9, 16), fit="blur", max_width=1080,
                     max_height=1920, even=True)
    assert (g.width, g.height) == (1080, 1920)
    assert (g.content_width, g.content_height) == (1080, 608)


def test_fit_geometry_pixel_and_side_caps() -> None:
    g = fit_geometry(9000, 6000, aspect=None, fit="none", max_width=9000, max_height=9000,
                     max_side_sum=10_000)
    assert g.width + g.height <= 10_000
    p = fit_geometry(8000, 6000, aspect=None, fit="none", max_width=8000, max_height=8000,
                     max_pixels=36_152_320)
    assert p.width * p.height <= 36_152_320
    s = fit_geometry(1500, 2000, aspect=None, fit="none", max_width=1920, max_height=1920,
                     max_short_side=1080)
    assert min(s.width, s.height) <= 1080


def test_even_dimensions_for_video() -> None:
    g = fit_geometry(161, 121, aspect=None, fit="none", max_width=4096, max_height=4096,
                     even=True)
    assert g.width % 2 == 0 and g.height % 2 == 0


def test_identical_targets_share_one_output() -> None:
    vid = video_info(1080, 1920, duration_s=20, moov_first=False)
    accounts = [{"id": p, "platform": p} for p in ("tiktok", "threads", "bluesky")] + [
        {"id": "ig", "platform": "instagram", "settings": {"post_type": "REELS"}},
        {"id": "fb", "platform": "facebook", "settings": {"post_type": "REELS"}}]
    plan = plan_for([{"media": ["v"]}], accounts, {"v": vid})
    assert all(ap.check.ok for ap in plan.accounts), [ap.check.errors for ap in plan.accounts]
    # a conformant 1080x1920 H.264 with moov at the end: one remux serves everyone
    assert len(plan.renditions) == 1
    only = plan.renditions[0]
    assert isinstance(only.target, VideoTarget) and only.target.action == "remux"
    assert {u.account_id for u in only.uses} == {"tiktok", "threads", "bluesky", "ig", "fb"}
    # the shared output is held to the smallest byte cap of its users (Bluesky 100 MB)
    assert only.target.max_bytes == 100_000_000


def test_landscape_to_vertical_platforms_is_one_encode() -> None:
    vid = video_info(1920, 1080, duration_s=20)
    accounts = [{"id": "tt", "platform": "tiktok"},
                {"id": "ig", "platform": "instagram", "settings": {"post_type": "REELS"}},
                {"id": "yt", "platform": "youtube", "settings": {"video_type": "short"}},
                {"id": "x", "platform": "twitter"}]
    plan = plan_for([{"media": ["v"]}], accounts, {"v": vid})
    encodes = [r for r in plan.renditions if r.target.action == "transcode"]  # type: ignore[union-attr]
    vertical = [r for r in encodes if r.target.geometry.height > r.target.geometry.width]
    assert len(vertical) == 1
    assert {u.account_id for u in vertical[0].uses} == {"tt", "ig", "yt"}
    assert "blurred" in vertical[0].actions
    x = next(r for r in plan.renditions if any(u.account_id == "x" for u in r.uses))
    assert (x.target.geometry.width, x.target.geometry.height) == (1280, 720)


def test_a_rendition_carries_its_source_and_variants() -> None:
    vid = video_info(1920, 1080, duration_s=20)
    accounts = [{"id": "tt", "platform": "tiktok"},
                {"id": "ig", "platform": "instagram", "settings": {"post_type": "REELS"}}]
    plan = plan_for([{"media": ["v"]}], accounts, {"v": vid})
    (shared,) = plan.renditions
    assert shared.ref == MediaRef("library", "v") and shared.ref_text == str(shared.ref)
    # the objects validation chose, not ids to look up again (and in order of first use)
    for use in shared.uses:
        preset = PRESETS.get(use.platform)
        assert preset is not None
        assert use.preset is preset and use.variant is preset.variants[use.variant.name]
        assert use.variant.id == use.variant_id
    assert [v.id for v in shared.variants] == list(dict.fromkeys(u.variant_id
                                                                 for u in shared.uses))


def test_a_cover_carries_its_rendition_as_finally_planned() -> None:
    """The cover links to the rendition object, with the uses added after the cover was planned."""
    vid = video_info(1920, 1080, duration_s=20)
    accounts = [{"id": "tt", "platform": "tiktok"}, {"id": "tt2", "platform": "tiktok"}]
    content = [{"media": ["v"], "cover_image": {"video_cover_timestamp_ms": 1000}}]
    plan = plan_for(content, accounts, {"v": vid})
    (shared,) = plan.renditions
    (cover,) = plan.covers
    assert cover.video() is shared and cover.rendition_key == shared.key
    assert cover.accounts == ("tt", "tt2")
    assert [u.account_id for u in cover.video().uses] == ["tt", "tt2"]


def test_an_unknown_platform_is_an_invalid_job() -> None:
    # parse_job refuses it; a job built in code reaches the planner's lookup
    with pytest.raises(JobInvalid, match="unknown platform"):
        account_preset(Account(id="a", platform="myspace", mode="feed"), PRESETS)
    assert account_preset(Account(id="x", platform="x", mode=""), PRESETS).platform == "twitter"


@pytest.mark.parametrize(
    ("info", "action"),
    [
        (video_info(1280, 720), "passthrough"),
        (video_info(1280, 720, moov_first=False), "remux"),
        (video_info(1280, 720, fmt="mov"), "remux"),
        (video_info(1280, 720, codec="vp9", fmt="webm"), "transcode"),
        (video_info(1280, 720, fps=Fraction(120)), "transcode"),
        (video_info(1280, 720, rotation=90), "transcode"),
        (video_info(1280, 720, pix_fmt="yuv420p10le", hdr=True), "transcode"),
        (video_info(3840, 2160), "transcode"),
    ],
)
def test_least_work_decision_for_x(info: Any, action: str) -> None:
    plan = plan_for([{"media": ["v"]}], [{"id": "x", "platform": "twitter"}], {"v": info})
    assert plan.renditions[0].target.action == action  # type: ignore[union-attr]


def test_key_changes_with_source_and_target_but_not_with_account() -> None:
    vid = video_info(1920, 1080)
    a = plan_for([{"media": ["v"]}], [{"id": "a", "platform": "tiktok"}], {"v": vid})
    b = plan_for([{"media": ["v"]}], [{"id": "zzz", "platform": "tiktok"}], {"v": vid})
    assert a.renditions[0].key == b.renditions[0].key
    t = a.renditions[0].target
    assert target_key("sha-other", t) != a.renditions[0].key


def test_failed_accounts_plan_nothing() -> None:
    plan = plan_for([{"media": ["i"]}], [{"id": "yt", "platform": "youtube"},
                                          {"id": "x", "platform": "twitter"}],
                    {"i": image_info()})
    assert not plan.accounts[0].check.ok and plan.accounts[0].media == ()
    assert [u.account_id for r in plan.renditions for u in r.uses] == ["x"]
