"""Job parsing: every rule of the Create-Post job model, and every bad-input case."""

from __future__ import annotations

import json

import pytest

from pipeline.errors import JobInvalid
from pipeline.job import derive_job_id, parse_job, parse_job_text
from pipeline.models import MediaRef
from pipeline.presets import load_presets

PRESETS = load_presets()


def job(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "workspace_id": "ws1",
        "content": [{"text": "hi", "media": ["abc"]}],
        "accounts": [{"id": "a1", "platform": "twitter"}],
    }
    base.update(overrides)
    return base


def problems(data: object) -> list[tuple[str, str]]:
    with pytest.raises(JobInvalid) as info:
        parse_job(data, PRESETS)
    return info.value.problems


def test_minimal_job_parses_with_defaults() -> None:
    parsed = parse_job(job(), PRESETS)
    assert parsed.workspace_id == "ws1"
    assert parsed.content[0].media == (MediaRef("library", "abc"),)
    assert parsed.accounts[0].platform == "twitter"
    assert parsed.accounts[0].mode == "default"
    assert parsed.duration_policy == "refuse"
    assert parsed.id.startswith("job-")


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("https://example.com/a.jpg", MediaRef("url", "https://example.com/a.jpg")),
        ("HTTP://example.com/a.jpg", MediaRef("url", "HTTP://example.com/a.jpg")),
        ("lib-1", MediaRef("library", "lib-1")),
        (42, MediaRef("library", "42")),
        ({"id": 7}, MediaRef("library", "7")),
        ({"id": "x.jpg"}, MediaRef("library", "x.jpg")),
        ({"url": "https://e.com/v.mp4"}, MediaRef("url", "https://e.com/v.mp4")),
        # other schemes are refused by ingest per account (url_not_allowed), not here
        ({"url": "file:///etc/passwd"}, MediaRef("url", "file:///etc/passwd")),
        # a non-http string is a library ID; ingest refuses it as invalid_library_id
        ("ftp://host/x", MediaRef("library", "ftp://host/x")),
    ],
)
def test_media_reference_forms(ref: object, expected: MediaRef) -> None:
    parsed = parse_job(job(content=[{"media": [ref]}]), PRESETS)
    assert parsed.content[0].media == (expected,)


@pytest.mark.parametrize(
    ("ref", "path"),
    [
        (True, "content[0].media[0]"),
        (None, "content[0].media[0]"),
        (1.5, "content[0].media[0]"),
        ("", "content[0].media[0]"),
        ({"id": 1, "url": "https://x"}, "content[0].media[0]"),
        ({}, "content[0].media[0]"),
        ({"url": ""}, "content[0].media[0].url"),
        ({"id": [1]}, "content[0].media[0].id"),
    ],
)
def test_bad_media_references_name_their_path(ref: object, path: str) -> None:
    assert path in [p for p, _ in problems(job(content=[{"media": [ref]}]))]


def test_platform_aliases_and_case() -> None:
    parsed = parse_job(job(accounts=[{"id": 1, "platform": "X"}, {"id": 2, "platform": "Bluesky"}]),
                       PRESETS)
    assert [a.platform for a in parsed.accounts] == ["twitter", "bluesky"]
    assert parsed.accounts[0].id == "1"


def test_unknown_platform_is_reported_with_its_path() -> None:
    found = problems(job(accounts=[{"id": "a", "platform": "twitter"},
                                   {"id": "b", "platform": "facebook"},
                                   {"id": "c", "platform": "myspace"}]))
    assert ("accounts[2].platform", "unknown platform 'myspace'") in found


@pytest.mark.parametrize(
    ("platform", "settings", "mode"),
    [
        ("instagram", {}, "POST"),
        ("instagram", {"post_type": "REELS"}, "REELS"),
        ("instagram", {"post_type": "stories"}, "STORIES"),
        ("youtube", {"video_type": "short"}, "short"),
        ("youtube", {}, "video"),
        ("facebook", {"post_type": "REELS"}, "REELS"),
        ("tiktok", {"post_mode": "DIRECT_POST", "privacy_level": "SELF_ONLY"}, "default"),
    ],
)
def test_variant_settings(platform: str, settings: dict[str, str], mode: str) -> None:
    parsed = parse_job(job(accounts=[{"id": "a", "platform": platform, "settings": settings}]),
                       PRESETS)
    assert parsed.accounts[0].mode == mode


@pytest.mark.parametrize(
    ("platform", "settings", "path"),
    [
        ("instagram", {"post_type": "CAROUSEL"}, "accounts[0].settings.post_type"),
        ("youtube", {"video_type": "long"}, "accounts[0].settings.video_type"),
        ("tiktok", {"post_mode": "NOW"}, "accounts[0].settings.post_mode"),
        ("tiktok", {"privacy_level": "EVERYONE"}, "accounts[0].settings.privacy_level"),
        ("tiktok", {"privacy_level": 3}, "accounts[0].settings.privacy_level"),
    ],
)
def test_bad_enums(platform: str, settings: dict[str, object], path: str) -> None:
    assert path in [p for p, _ in problems(job(accounts=[{"id": "a", "platform": platform,
                                                          "settings": settings}]))]


def test_settings_not_about_media_are_ignored() -> None:
    data = job(labels=[1, 2], schedule_type="schedule", repeatable=True,
               schedule={"date": "2026-12-01", "time": "10:00", "timezone": "UTC"},
               accounts=[{"id": "a", "platform": "twitter",
                          "settings": {"reply_settings": "everyone", "poll": {"x": 1}}}])
    assert parse_job(data, PRESETS).accounts[0].settings["reply_settings"] == "everyone"


def test_every_problem_is_listed_at_once() -> None:
    found = dict(problems({"content": [{}, "x"], "accounts": [{"platform": "twitter"},
                                                              {"id": "b", "platform": 5}]}))
    assert {"workspace_id", "content[0]", "content[1]", "accounts[0].id",
            "accounts[1].platform"} <= set(found)


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ([], ""),
        ({"workspace_id": "w", "content": [], "accounts": [{"id": 1, "platform": "x"}]}, "content"),
        ({"workspace_id": "w", "content": [{"text": "t"}], "accounts": []}, "accounts"),
        ({"workspace_id": "w", "content": [{"text": "t"}], "accounts": "x"}, "accounts"),
        ({"workspace_id": "w", "content": [{"text": "t", "media": "a"}],
          "accounts": [{"id": 1, "platform": "x"}]}, "content[0].media"),
        ({"workspace_id": "w", "content": [{"text": 5}],
          "accounts": [{"id": 1, "platform": "x"}]}, "content[0].text"),
        ({"workspace_id": "w", "id": "../etc", "content": [{"text": "t"}],
          "accounts": [{"id": 1, "platform": "x"}]}, "id"),
        ({"workspace_id": True, "content": [{"text": "t"}],
          "accounts": [{"id": 1, "platform": "x"}]}, "workspace_id"),
        ({"workspace_id": "w", "content": [{"text": "t"}],
          "accounts": [{"id": 1, "platform": "x"}, {"id": 1, "platform": "x"}]},
         "accounts[1].id"),
        ({"workspace_id": "w", "content": [{"text": "t"}],
          "accounts": [{"id": 1, "platform": "x", "settings": []}]}, "accounts[0].settings"),
        ({"workspace_id": "w", "content": [{"text": "t"}],
          "accounts": [{"id": 1, "platform": "x"}], "conform": {"duration_policy": "cut"}},
         "conform.duration_policy"),
    ],
)
def test_schema_errors(data: object, path: str) -> None:
    assert path in [p for p, _ in problems(data)]


@pytest.mark.parametrize(
    ("cover", "path"),
    [
        ({"video_cover_timestamp_ms": -1}, "content[0].cover_image.video_cover_timestamp_ms"),
        ({"video_cover_timestamp_ms": "100"}, "content[0].cover_image.video_cover_timestamp_ms"),
        ({"video_cover_timestamp_ms": 1.5}, "content[0].cover_image.video_cover_timestamp_ms"),
        ({"thumbnail": True}, "content[0].cover_image.thumbnail"),
        ("x", "content[0].cover_image"),
    ],
)
def test_bad_covers(cover: object, path: str) -> None:
    assert path in [p for p, _ in problems(job(content=[{"media": ["a"], "cover_image": cover}]))]


def test_cover_forms() -> None:
    parsed = parse_job(job(content=[{"media": ["v"], "cover_image": {
        "thumbnail": {"url": "https://e.com/t.jpg"}, "video_cover_timestamp_ms": 0}}]), PRESETS)
    cover = parsed.content[0].cover
    assert cover is not None
    assert cover.thumbnail == MediaRef("url", "https://e.com/t.jpg")
    assert cover.timestamp_ms == 0


def test_malformed_json() -> None:
    with pytest.raises(JobInvalid) as info:
        parse_job_text("{not json", PRESETS)
    assert "malformed JSON" in info.value.problems[0][1]


def test_derived_id_is_stable_and_order_independent() -> None:
    a = job()
    b = json.loads(json.dumps(a))
    b = dict(reversed(list(b.items())))
    assert derive_job_id(a) == derive_job_id(b)
    assert derive_job_id(a) != derive_job_id(job(workspace_id="other"))
    assert parse_job(a, PRESETS).id == parse_job(b, PRESETS).id


def test_given_id_is_kept() -> None:
    assert parse_job(job(id=123), PRESETS).id == "123"
    assert parse_job(job(id="post-42"), PRESETS).id == "post-42"


def test_trim_policy() -> None:
    assert parse_job(job(conform={"duration_policy": "trim"}), PRESETS).duration_policy == "trim"
