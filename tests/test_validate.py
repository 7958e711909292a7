"""Per-account validation (cover rules have their own tests in tests/test_cover_rules.py)."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.errors import CorruptMedia, SourceNotFound
from pipeline.job import parse_job
from pipeline.models import AccountCheck, MediaRef, Probed
from pipeline.presets import load_presets
from pipeline.validate import check_account
from tests.factories import image_info, video_info

PRESETS = load_presets()


def run_check(content: list[dict[str, Any]], platform: str, probed: dict[str, Probed],
              settings: dict[str, str] | None = None, **job_extra: Any) -> AccountCheck:
    data = {"workspace_id": "w", "content": content,
            "accounts": [{"id": "a", "platform": platform, "settings": settings or {}}],
            **job_extra}
    job = parse_job(data, PRESETS)
    preset = PRESETS.get(platform)
    assert preset is not None
    refs = {MediaRef("library", k): v for k, v in probed.items()}
    return check_account(job, job.accounts[0], preset, refs)


def codes(check: AccountCheck) -> list[str]:
    return [e.code for e in check.errors]


IMG = image_info()
VID = video_info()


def test_ok_image_post_selects_variants() -> None:
    check = run_check([{"media": ["i1", "i2"]}], "instagram", {"i1": IMG, "i2": IMG})
    assert check.ok
    assert [s.variant.id for s in check.items] == ["instagram-feed-image"] * 2
    assert all(s.carousel_size == 2 for s in check.items)


@pytest.mark.parametrize(
    ("platform", "n", "code"),
    [("twitter", 5, "too_many_images"), ("bluesky", 5, "too_many_images"),
     ("pinterest", 6, "too_many_images"), ("linkedin", 10, "too_many_images"),
     ("instagram", 11, "too_many_images")],
)
def test_image_counts(platform: str, n: int, code: str) -> None:
    probed = {f"i{k}": IMG for k in range(n)}
    check = run_check([{"media": list(probed)}], platform, probed)
    assert codes(check) == [code]
    ok = run_check([{"media": list(probed)[:-1]}], platform, probed)
    assert ok.ok, ok.errors


@pytest.mark.parametrize(("platform", "images", "videos"),
                         [("instagram", 10, 1), ("threads", 6, 5), ("threads", 1, 10),
                          ("telegram", 10, 1), ("telegram", 5, 6)])
def test_mixed_posts_over_the_total_are_refused(platform: str, images: int,
                                                videos: int) -> None:
    # Instagram takes 2-10 carousel items in total (error 2207028), Threads 10, a Telegram
    # media group 10: within each kind's count but over the total.
    probed: dict[str, Probed] = {**{f"i{k}": IMG for k in range(images)},
                                 **{f"v{k}": VID for k in range(videos)}}
    check = run_check([{"media": list(probed)}], platform, probed)
    assert codes(check) == ["too_many_items"]
    assert check.errors[0].content_index == 0 and check.errors[0].http_status == 422
    fewer = dict(list(probed.items())[1:])  # one image less: exactly the total
    assert run_check([{"media": list(fewer)}], platform, fewer).ok


def test_total_is_checked_per_post_of_a_thread() -> None:
    # Threads: each content item is one post, each with its own total of 10.
    probed: dict[str, Probed] = {**{f"i{k}": IMG for k in range(6)},
                                 **{f"v{k}": VID for k in range(5)}}
    content = [{"media": ["i0", "v0"]}, {"media": list(probed)}]
    check = run_check(content, "threads", probed)
    assert codes(check) == ["too_many_items"] and check.errors[0].content_index == 1


def test_youtube_takes_exactly_one_video() -> None:
    images = run_check([{"media": ["i"]}], "youtube", {"i": IMG})
    assert codes(images) == ["media_type_not_supported"]
    assert codes(run_check([{"media": ["v", "w"]}], "youtube", {"v": VID, "w": VID})) == [
        "too_many_videos"]
    assert codes(run_check([{"text": "no media"}], "youtube", {})) == ["media_required"]
    assert run_check([{"media": ["v"]}], "youtube", {"v": VID}).ok


@pytest.mark.parametrize("platform", ["twitter", "facebook", "linkedin", "tiktok", "pinterest",
                                      "bluesky"])
def test_platforms_that_forbid_mixing(platform: str) -> None:
    check = run_check([{"media": ["i", "v"]}], platform, {"i": IMG, "v": VID})
    assert "mixed_media_not_allowed" in codes(check)


@pytest.mark.parametrize("platform", ["instagram", "threads", "telegram"])
def test_platforms_that_allow_mixing(platform: str) -> None:
    assert run_check([{"media": ["i", "v"]}], platform, {"i": IMG, "v": VID}).ok


@pytest.mark.parametrize("platform", ["instagram", "tiktok", "youtube", "pinterest"])
def test_media_required(platform: str) -> None:
    assert codes(run_check([{"text": "just text"}], platform, {})) == ["media_required"]


@pytest.mark.parametrize("platform", ["twitter", "facebook", "linkedin", "threads", "telegram",
                                      "bluesky"])
def test_text_only_posts_are_fine_where_media_is_optional(platform: str) -> None:
    check = run_check([{"text": "just text"}], platform, {})
    assert check.ok and check.items == ()


def test_thread_platforms_check_every_item_others_only_the_first() -> None:
    content = [{"media": ["i1"]}, {"media": ["v"]}, {"media": [f"x{k}" for k in range(5)]}]
    probed = {"i1": IMG, "v": VID, **{f"x{k}": IMG for k in range(5)}}
    x = run_check(content, "twitter", probed)
    assert codes(x) == ["too_many_images"] and x.errors[0].content_index == 2
    fb = run_check(content, "facebook", probed)
    assert fb.ok
    assert [s.content_index for s in fb.items] == [0]
    assert any("content[0] only" in w for w in fb.warnings)


def test_mode_picks_variant_and_refuses_wrong_kind() -> None:
    reels = run_check([{"media": ["v"]}], "instagram", {"v": VID}, {"post_type": "REELS"})
    assert reels.items[0].variant.id == "instagram-reels"
    stories = run_check([{"media": ["i"]}], "instagram", {"i": IMG}, {"post_type": "STORIES"})
    assert stories.items[0].variant.id == "instagram-stories-image"
    wrong = run_check([{"media": ["i"]}], "instagram", {"i": IMG}, {"post_type": "REELS"})
    assert codes(wrong) == ["media_type_not_supported"]
    short = run_check([{"media": ["v"]}], "youtube", {"v": video_info(1080, 1920, duration_s=30)},
                      {"video_type": "short"})
    assert short.items[0].variant.id == "youtube-short"


def test_pinterest_carousel_variant() -> None:
    single = run_check([{"media": ["a"]}], "pinterest", {"a": IMG})
    assert single.items[0].variant.id == "pinterest-image"
    multi = run_check([{"media": ["a", "b"]}], "pinterest", {"a": IMG, "b": IMG})
    assert {s.variant.id for s in multi.items} == {"pinterest-carousel"}


@pytest.mark.parametrize(
    ("platform", "settings", "duration", "ok"),
    [
        ("twitter", {}, 140.0, True), ("twitter", {}, 141.0, False), ("twitter", {}, 0.4, False),
        ("instagram", {"post_type": "STORIES"}, 61.0, False),
        ("instagram", {"post_type": "REELS"}, 2.0, False),
        ("facebook", {"post_type": "REELS"}, 91.0, False),
        ("tiktok", {}, 601.0, False), ("youtube", {"video_type": "short"}, 181.0, False),
        ("threads", {}, 300.0, True), ("threads", {}, 301.0, False),
        ("pinterest", {}, 3.0, False),
    ],
)
def test_duration_range_is_refused_by_default(platform: str, settings: dict[str, str],
                                              duration: float, ok: bool) -> None:
    check = run_check([{"media": ["v"]}], platform, {"v": video_info(duration_s=duration)},
                      settings)
    assert check.ok is ok
    if not ok:
        assert codes(check) == ["duration_out_of_range"]
        assert check.errors[0].http_status == 422


def test_trim_policy_cuts_long_videos_with_a_warning_but_not_short_ones() -> None:
    long = run_check([{"media": ["v"]}], "twitter", {"v": video_info(duration_s=200)},
                     conform={"duration_policy": "trim"})
    assert long.ok and long.items[0].trim_to_s == 140
    assert any("trimmed to 140 s" in w for w in long.warnings)
    short = run_check([{"media": ["v"]}], "tiktok", {"v": video_info(duration_s=1)},
                      conform={"duration_policy": "trim"})
    assert codes(short) == ["duration_out_of_range"]


def test_source_errors_are_reported_with_positions() -> None:
    check = run_check([{"media": ["ok", "missing", "bad"]}], "threads",
                      {"ok": IMG, "missing": SourceNotFound("media 'missing' not found"),
                       "bad": CorruptMedia("truncated")})
    assert [(e.code, e.media_index, e.http_status) for e in check.errors] == [
        ("media_not_found", 1, 404), ("corrupt_media", 2, 400)]


def test_animated_gif_routing() -> None:
    gif = image_info(fmt="gif", frames=40)  # 4 s: long enough for Reels (3 s minimum)
    x = run_check([{"media": ["g"]}], "twitter", {"g": gif})
    assert x.items[0].variant.id == "twitter-image"  # X keeps GIFs
    bsky = run_check([{"media": ["g"]}], "bluesky", {"g": gif})
    assert bsky.items[0].variant.id == "bluesky-video" and bsky.items[0].as_video
    # Instagram POST with a GIF: routed to the Reels video variant
    ig = run_check([{"media": ["g"]}], "instagram", {"g": gif})
    assert ig.items[0].variant.kind == "video"


def short_warnings(check: AccountCheck) -> list[str]:
    return [w for w in check.warnings if w.startswith("youtube_will_treat_as_short")]


@pytest.mark.parametrize(("width", "height", "duration_s", "warned"), [
    (1080, 1920, 60.0, True),      # vertical, 1 min
    (1080, 1080, 180.0, True),     # square, exactly 3 min
    (1080, 1920, 181.0, False),    # vertical but over 3 min: a regular video
    (1920, 1080, 60.0, False),     # landscape: a regular video
])
def test_youtube_video_that_youtube_will_class_as_a_short(width: int, height: int,
                                                          duration_s: float,
                                                          warned: bool) -> None:
    probed: dict[str, Probed] = {"v": video_info(width, height, duration_s=duration_s),
                                 "t": image_info(1280, 720)}
    check = run_check([{"media": ["v"], "cover_image": {"thumbnail": "t"}}], "youtube", probed,
                      {"video_type": "video"})
    assert check.ok and check.items[0].variant.id == "youtube-video"
    assert check.cover is not None and check.cover.thumbnail is not None  # still conformed
    found = short_warnings(check)
    assert len(found) == int(warned)
    if warned:
        assert "thumbnail" in found[0]
    # Asked for as a Short, it is one: no surprise to warn about.
    short = run_check([{"media": ["v"]}], "youtube", probed, {"video_type": "short"})
    assert short_warnings(short) == []
