"""The API's cover rules, one test each, through ``pipeline.runner.process`` end to end.

TikTok takes a frame by ``video_cover_timestamp_ms``; YouTube, Instagram Reels and Facebook an
uploaded ``thumbnail``; only ``content[0].cover_image`` counts; Stories take none; Shorts keep
the thumbnail with a warning; Pinterest always gets a cover and says where it came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.support.httpserver import LOOPBACK, LocalHTTPServer, serve_bytes
from tests.test_cover import (
    account,
    file_of,
    frame_times,
    index_of,
    make_indexed_clip,
    mean_rgb,
    run_job,
    settings_for,
    shown_at,
)

pytestmark = pytest.mark.ffmpeg

CLIP_MS = 4500
TT = {"id": "tt", "platform": "tiktok"}
YT = {"id": "yt", "platform": "youtube"}
SHORT = {"id": "short", "platform": "youtube", "settings": {"video_type": "short"}}
IG = {"id": "ig", "platform": "instagram", "settings": {"post_type": "REELS"}}
STORY = {"id": "story", "platform": "instagram", "settings": {"post_type": "STORIES"}}
FB = {"id": "fb", "platform": "facebook"}
FB_REEL = {"id": "fbr", "platform": "facebook", "settings": {"post_type": "REELS"}}
PIN = {"id": "pin", "platform": "pinterest"}


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 540x960 4.5 s clip with sound that every video variant here keeps without encoding,
    and a 1280x720 photo-like thumbnail."""
    lib = tmp_path_factory.mktemp("library")
    make_indexed_clip(lib / "clip.mp4", width=540, height=960, seconds=CLIP_MS / 1000,
                      audio_s=CLIP_MS / 1000)
    thumb = Image.linear_gradient("L").resize((1280, 720)).convert("RGB")
    thumb.save(lib / "thumb.jpg", quality=90)
    return lib


def post(cover: dict[str, Any] | None, **extra: Any) -> list[dict[str, Any]]:
    item: dict[str, Any] = {"media": ["clip.mp4"], **extra}
    if cover is not None:
        item["cover_image"] = cover
    return [item]


def codes(a: dict[str, Any]) -> list[str]:
    return [e["code"] for e in a["errors"]]


def assert_thumbnail_cover(a: dict[str, Any], width: int, height: int,
                           source: str = "thumb.jpg") -> None:
    assert a["status"] == "ok", a["errors"]
    cov = a["cover"]
    assert set(cov) == {"uri", "mime", "bytes", "width", "height", "source"}
    assert cov["source"] == source and cov["mime"] == "image/jpeg"
    assert (cov["width"], cov["height"]) == (width, height)
    path = file_of(cov["uri"])
    assert path.stat().st_size == cov["bytes"]
    with Image.open(path) as im:
        assert im.format == "JPEG" and im.size == (width, height)


def assert_frame_cover(a: dict[str, Any], at_ms: int, source: str) -> None:
    assert a["status"] == "ok", a["errors"]
    cov = a["cover"]
    assert set(cov) == {"uri", "mime", "bytes", "width", "height", "timestamp_ms", "source"}
    assert cov["timestamp_ms"] == at_ms and cov["source"] == source
    video = a["media"][0]
    assert (cov["width"], cov["height"]) == (video["width"], video["height"])
    with Image.open(file_of(cov["uri"])) as im:
        assert im.format == "JPEG"
        assert index_of(mean_rgb(im)) == shown_at(frame_times(file_of(video["uri"])), at_ms)


def test_thumbnail_alone_is_not_supported_on_tiktok(tmp_path: Path, library: Path) -> None:
    m = run_job(settings_for(tmp_path, library), post({"thumbnail": "thumb.jpg"}), [TT, YT])
    tt = account(m, "tt")
    assert tt["status"] == "failed" and tt["media"] == [] and tt["cover"] is None
    assert codes(tt) == ["cover_not_supported"] and tt["errors"][0]["http_status"] == 422
    assert_thumbnail_cover(account(m, "yt"), 1280, 720)
    assert m["status"] == "partial"


def test_timestamp_alone_is_not_supported_for_thumbnail_platforms(tmp_path: Path,
                                                                 library: Path) -> None:
    m = run_job(settings_for(tmp_path, library), post({"video_cover_timestamp_ms": 2000}),
                [TT, YT, IG, FB, FB_REEL])
    for account_id in ("yt", "ig", "fb", "fbr"):
        a = account(m, account_id)
        assert a["status"] == "failed" and a["cover"] is None, account_id
        assert codes(a) == ["cover_not_supported"], account_id
    assert_frame_cover(account(m, "tt"), 2000, "video_cover_timestamp_ms")


def test_both_fields_each_account_takes_its_own(tmp_path: Path, library: Path) -> None:
    m = run_job(settings_for(tmp_path, library),
                post({"thumbnail": "thumb.jpg", "video_cover_timestamp_ms": 1500}),
                [TT, YT, IG, FB])
    assert m["status"] == "succeeded"
    tt = account(m, "tt")
    assert_frame_cover(tt, 1500, "video_cover_timestamp_ms")
    assert len(tt["warnings"]) == 1  # the thumbnail is not used
    assert_thumbnail_cover(account(m, "yt"), 1280, 720)
    assert_thumbnail_cover(account(m, "ig"), 1080, 1920)
    assert_thumbnail_cover(account(m, "fb"), 1080, 1920)  # the 9:16 video's shape
    # The clip is 9:16 and short: YouTube will class it as a Short (and ignore the thumbnail)
    short = "youtube_will_treat_as_short"
    assert [w.startswith(short) for w in account(m, "yt")["warnings"]].count(True) == 1
    for account_id in ("yt", "ig", "fb"):
        others = [w for w in account(m, account_id)["warnings"] if not w.startswith(short)]
        assert len(others) == 1  # the timestamp is not used


def test_cover_on_a_later_content_item_is_ignored(tmp_path: Path, library: Path) -> None:
    later = {"thumbnail": "thumb.jpg", "video_cover_timestamp_ms": 1000}
    content: list[dict[str, Any]] = [{"media": ["clip.mp4"]},
                                     {"text": "second", "cover_image": later}]
    m = run_job(settings_for(tmp_path, library), content, [TT, YT])
    for account_id in ("tt", "yt"):
        a = account(m, account_id)
        assert a["status"] == "ok" and a["cover"] is None, a["errors"]
        warnings = [w for w in a["warnings"] if not w.startswith("youtube_will_treat_as_short")]
        assert len(warnings) == 1 and "content[1]" in warnings[0]


def test_instagram_stories_take_no_cover(tmp_path: Path, library: Path) -> None:
    m = run_job(settings_for(tmp_path, library),
                post({"thumbnail": "thumb.jpg", "video_cover_timestamp_ms": 1000}), [STORY, IG])
    story = account(m, "story")
    assert story["status"] == "ok" and story["cover"] is None and story["errors"] == []
    assert len(story["warnings"]) == 1
    assert_thumbnail_cover(account(m, "ig"), 1080, 1920)


def test_youtube_shorts_keep_the_thumbnail_with_a_warning(tmp_path: Path,
                                                          library: Path) -> None:
    m = run_job(settings_for(tmp_path, library), post({"thumbnail": "thumb.jpg"}), [SHORT, YT])
    short, video = account(m, "short"), account(m, "yt")
    assert_thumbnail_cover(short, 1280, 720)
    assert len(short["warnings"]) == 1
    # Sent as a regular video, the 9:16 clip of 4.5 s is still classed by YouTube as a Short,
    # which ignores the custom thumbnail: said, and the thumbnail is still delivered.
    (warning,) = video["warnings"]
    assert warning.startswith("youtube_will_treat_as_short") and "thumbnail" in warning
    # same cover target: one file for both
    assert short["cover"]["uri"] == video["cover"]["uri"]


@pytest.mark.parametrize(("cover", "source", "at_ms"), [
    ({"thumbnail": "thumb.jpg", "video_cover_timestamp_ms": 2500}, "thumb.jpg", None),
    ({"video_cover_timestamp_ms": 2500}, "video_cover_timestamp_ms", 2500),
    (None, "default_frame", 1000),
])
def test_pinterest_always_has_a_cover_and_says_which(tmp_path: Path, library: Path,
                                                     cover: dict[str, Any] | None, source: str,
                                                     at_ms: int | None) -> None:
    m = run_job(settings_for(tmp_path, library), post(cover), [PIN])
    pin = account(m, "pin")
    if at_ms is None:
        # the 16:9 thumbnail blur-filled into the video's 9:16 shape
        assert_thumbnail_cover(pin, 1080, 1920)
        assert len(pin["warnings"]) == 1  # the timestamp is not used
    else:
        assert_frame_cover(pin, at_ms, source)
        assert pin["warnings"] == []


def test_timestamp_out_of_range_fails_only_accounts_that_use_it(tmp_path: Path,
                                                                library: Path) -> None:
    m = run_job(settings_for(tmp_path, library),
                post({"thumbnail": "thumb.jpg", "video_cover_timestamp_ms": CLIP_MS}),
                [TT, YT, PIN])
    tt = account(m, "tt")
    assert tt["status"] == "failed" and codes(tt) == ["cover_timestamp_out_of_range"]
    assert tt["errors"][0]["http_status"] == 422
    assert_thumbnail_cover(account(m, "yt"), 1280, 720)
    assert_thumbnail_cover(account(m, "pin"), 1080, 1920)  # Pinterest prefers the thumbnail

    late = run_job(settings_for(tmp_path, library), post({"video_cover_timestamp_ms": 60_000}),
                   [TT, PIN])
    for account_id in ("tt", "pin"):
        assert codes(account(late, account_id)) == ["cover_timestamp_out_of_range"]


def test_identical_cover_targets_share_one_file(tmp_path: Path, library: Path) -> None:
    tt2 = {"id": "tt2", "platform": "tiktok"}
    m = run_job(settings_for(tmp_path, library),
                post({"thumbnail": "thumb.jpg", "video_cover_timestamp_ms": 700}),
                [TT, tt2, FB, FB_REEL, YT])
    assert m["status"] == "succeeded"
    uri = {a["account_id"]: a["cover"]["uri"] for a in m["accounts"]}
    assert uri["tt"] == uri["tt2"]
    assert uri["fb"] == uri["fbr"]   # a 9:16 video: feed and Reel thumbnails are one target
    assert len(set(uri.values())) == 3
    covers = list((tmp_path / "out" / "assets").glob("*/*/cover.jpg"))
    assert len(covers) == 3


def test_thumbnail_from_a_url_is_ingested_safely(tmp_path: Path, library: Path,
                                                 http_server: LocalHTTPServer) -> None:
    http_server.route("/cover.jpg", serve_bytes((library / "thumb.jpg").read_bytes(),
                                                content_type="image/jpeg"))
    url = http_server.url("/cover.jpg")
    refused = run_job(settings_for(tmp_path, library),
                      post({"thumbnail": url, "video_cover_timestamp_ms": 500}), [YT, TT])
    assert codes(account(refused, "yt")) == ["url_not_allowed"]  # loopback: never by default
    assert account(refused, "tt")["status"] == "ok"               # TikTok does not use it

    allowed = run_job(settings_for(tmp_path, library, allow_networks=LOOPBACK),
                      post({"thumbnail": url}), [YT])
    assert_thumbnail_cover(account(allowed, "yt"), 1280, 720, source=url)
