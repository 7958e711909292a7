"""Limits that follow the posting account (``accounts[].conform.limits``): parsing, ceilings,
and what validation and planning then hold the account's media to (no ffmpeg needed; the
end-to-end trim is read back from the output file in test_post_extras_e2e.py)."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.errors import JobInvalid
from pipeline.examine import plan_summary
from pipeline.job import parse_job
from pipeline.models import MediaRef
from pipeline.plan import JobPlan, account_preset, plan_job
from pipeline.presets import load_presets
from pipeline.validate import check_account
from tests.factories import image_info, video_info

PRESETS = load_presets()


def _job(accounts: list[dict[str, Any]], media: list[Any] | None = None) -> Any:
    return parse_job({"workspace_id": "w", "content": [{"media": media or ["v"]}],
                      "accounts": accounts}, PRESETS)


def _plan(accounts: list[dict[str, Any]], probed: dict[str, Any]) -> JobPlan:
    job = _job(accounts, list(probed))
    refs = {MediaRef("library", k): v for k, v in probed.items()}
    checks = [check_account(job, a, account_preset(a, PRESETS), refs) for a in job.accounts]
    sha_of = {ref: f"sha-{ref.value}" for ref in refs}
    return plan_job(checks, sha_of=sha_of, thumb_infos={})


def _problems(accounts: list[dict[str, Any]]) -> dict[str, str]:
    with pytest.raises(JobInvalid) as caught:
        _job(accounts)
    return dict(caught.value.problems)


def test_an_x_premium_account_posts_a_five_minute_video() -> None:
    five_min = {"v": video_info(1280, 720, duration_s=300)}
    plain = _plan([{"id": "x", "platform": "x"}], five_min)
    assert [e.code for e in plain.accounts[0].check.errors] == ["duration_out_of_range"]
    premium = _plan([{"id": "x", "platform": "x",
                      "conform": {"limits": {"max_duration_s": 7500,
                                             "max_video_bytes": 16_000_000_000}}}], five_min)
    assert premium.accounts[0].check.ok, premium.accounts[0].check.errors
    assert premium.renditions[0].target.max_bytes == 16_000_000_000


def test_a_creator_limit_tightens_tiktok() -> None:
    three_min = {"v": video_info(1080, 1920, duration_s=180)}
    accounts = [{"id": "short", "platform": "tiktok",
                 "conform": {"limits": {"max_duration_s": 60}}},
                {"id": "long", "platform": "tiktok"}]
    plan = _plan(accounts, three_min)
    by_id = {ap.check.account.id: ap.check for ap in plan.accounts}
    assert [e.code for e in by_id["short"].errors] == ["duration_out_of_range"]
    assert "60" in by_id["short"].errors[0].message
    assert by_id["long"].ok


def test_a_tighter_byte_limit_is_part_of_the_target_and_its_key() -> None:
    vid = {"v": video_info(1080, 1920, duration_s=60, size_bytes=90_000_000)}
    plan = _plan([{"id": "a", "platform": "tiktok"},
                  {"id": "b", "platform": "tiktok",
                   "conform": {"limits": {"max_video_bytes": 20_000_000}}},
                  {"id": "c", "platform": "tiktok",
                   "conform": {"limits": {"max_video_bytes": 20_000_000}}}], vid)
    keys = {ap.check.account.id: ap.media[0][1] for ap in plan.accounts}
    # b and c asked for the same: one output; a's bigger budget makes other bytes
    assert keys["b"] == keys["c"] != keys["a"]
    small = next(r for r in plan.renditions if r.key == keys["b"])
    assert small.target.max_bytes == 20_000_000


def test_an_image_byte_limit_follows_the_account() -> None:
    photo = {"p": image_info(4000, 3000, size_bytes=1_500_000)}
    plain = _plan([{"id": "b", "platform": "bluesky"}], photo)
    assert plain.renditions[0].target.max_bytes == 1_000_000
    raised = _plan([{"id": "b", "platform": "bluesky",
                     "conform": {"limits": {"max_image_bytes": 2_000_000}}}], photo)
    assert raised.renditions[0].target.max_bytes == 2_000_000


def test_plan_shows_which_limit_applied() -> None:
    plan = _plan([{"id": "x", "platform": "x",
                   "conform": {"limits": {"max_duration_s": 300}}},
                  {"id": "y", "platform": "x"}], {"v": video_info(1280, 720, duration_s=200)})
    summary = {a["account_id"]: a for a in plan_summary(plan)["accounts"]}
    assert summary["x"]["limits"] == ["max_duration_s 300 s"]
    assert summary["y"]["limits"] == []


@pytest.mark.parametrize(("limits", "path", "words"), [
    ({"max_duration_s": 9000}, "max_duration_s", "above the most twitter-video allows"),
    ({"max_video_bytes": 17_000_000_000}, "max_video_bytes", "16,000,000,000"),
    ({"max_image_bytes": 6_000_000}, "max_image_bytes", "allows no account more"),
    ({"max_duration_s": 0.2}, "max_duration_s", "below twitter-video's minimum"),
    ({"max_duration_s": "300"}, "max_duration_s", "positive number"),
    ({"max_duration_s": True}, "max_duration_s", "positive number"),
    ({"max_video_bytes": 1.5e9}, "max_video_bytes", "positive integer"),
    ({"max_video_bytes": -1}, "max_video_bytes", "positive integer"),
    ({"max_duration_s": float("inf")}, "max_duration_s", "positive number"),
    ({"max_duraton_s": 60}, "max_duraton_s", "unknown limit"),
])
def test_bad_limits_are_invalid_with_their_path(limits: dict[str, Any], path: str,
                                                words: str) -> None:
    problems = _problems([{"id": "x", "platform": "x", "conform": {"limits": limits}}])
    assert words in problems[f"accounts[0].conform.limits.{path}"]


def test_tiktok_has_no_ceiling_above_its_api_maximum() -> None:
    problems = _problems([{"id": "t", "platform": "tiktok",
                           "conform": {"limits": {"max_duration_s": 700}}}])
    assert "600 s" in problems["accounts[0].conform.limits.max_duration_s"]


@pytest.mark.parametrize("conform", [[], "x", {"limits": []}, {"limits": 5}])
def test_wrong_shapes_are_invalid(conform: Any) -> None:
    problems = _problems([{"id": "x", "platform": "x", "conform": conform}])
    assert any(path.startswith("accounts[0].conform") for path in problems)


def test_the_ceiling_is_checked_for_the_accounts_own_mode() -> None:
    # Instagram Reels may be loosened to 300 MB; a feed (POST) account's image variant has no
    # video ceiling to check, so the video limit is held to the Reels variant its mode uses.
    ok = _job([{"id": "i", "platform": "instagram", "settings": {"post_type": "REELS"},
                "conform": {"limits": {"max_video_bytes": 300_000_000}}}])
    assert ok.accounts[0].limits is not None
    problems = _problems([{"id": "i", "platform": "instagram",
                           "settings": {"post_type": "STORIES"},
                           "conform": {"limits": {"max_video_bytes": 300_000_000}}}])
    assert "instagram-stories" in problems["accounts[0].conform.limits.max_video_bytes"]
