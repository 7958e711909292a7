"""Output sharing: an account takes an encode planned for another account only when it serves it.

Planning tests read the plan; the end-to-end test reads the delivered file back with ffprobe.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.job import parse_job
from pipeline.models import MediaRef
from pipeline.plan import JobPlan, VideoTarget, account_preset, plan_job
from pipeline.plan.sharing import Owned, display_size, serving_problems
from pipeline.presets import load_presets
from pipeline.validate import check_account
from tests.factories import video_info

PRESETS = load_presets()
X = {"id": "x", "platform": "x"}
LI = {"id": "li", "platform": "linkedin"}
YT = {"id": "yt", "platform": "youtube", "settings": {"video_type": "video"}}


def plan(info: Any, accounts: list[dict[str, Any]], *, share: bool = True) -> JobPlan:
    job = parse_job({"workspace_id": "w", "content": [{"media": ["a"]}], "accounts": accounts},
                    PRESETS)
    refs = {MediaRef("library", "a"): info}
    checks = [check_account(job, a, account_preset(a, PRESETS), refs) for a in job.accounts]
    return plan_job(checks, sha_of={MediaRef("library", "a"): "sha-a"}, thumb_infos={}, share=share)


def output_of(jobplan: JobPlan, account_id: str) -> str:
    account = next(a for a in jobplan.accounts if a.check.account.id == account_id)
    return account.media[0][1]


def encodes(jobplan: JobPlan) -> int:
    return sum(1 for r in jobplan.renditions
               if isinstance(r.target, VideoTarget) and r.target.action == "transcode")


def share_of(jobplan: JobPlan, account_id: str) -> Any:
    return next(s for s in jobplan.shares if s.account_id == account_id)


def test_linkedin_takes_the_x_output_it_can_show() -> None:
    # HEVC: both must encode. LinkedIn's own target is 1920x1080; its player shows 720p.
    info = video_info(1920, 1080, codec="hevc")
    alone = plan(info, [X, LI], share=False)
    assert encodes(alone) == 2
    shared = plan(info, [X, LI])
    assert encodes(shared) == 1
    assert output_of(shared, "li") == output_of(shared, "x") == output_of(alone, "x")
    rendition = next(r for r in shared.renditions if r.key == output_of(shared, "x"))
    assert [u.account_id for u in rendition.uses] == ["x", "li"]
    assert {v.id for v in rendition.variants} == {"twitter-video", "linkedin-video"}
    decision = share_of(shared, "li")
    assert decision.taken and decision.own_key == output_of(alone, "li")
    assert "1280x720" in decision.reason and "linkedin" in decision.reason


def test_an_account_whose_rules_the_output_breaks_keeps_its_own() -> None:
    # 2.8:1: X keeps the shape (1:3 to 3:1), LinkedIn (up to 2.4:1) must pad.
    jobplan = plan(video_info(2800, 1000, codec="hevc"), [X, LI])
    assert encodes(jobplan) == 2
    assert output_of(jobplan, "li") != output_of(jobplan, "x")
    decision = share_of(jobplan, "li")
    assert not decision.taken and "aspect" in decision.reason


def test_an_output_below_what_the_platform_displays_is_not_taken() -> None:
    # YouTube's player size has no source: its own 1920x1080 is the floor, X's 720p is below.
    jobplan = plan(video_info(1920, 1080, fps=Fraction(120)), [X, YT])
    assert encodes(jobplan) == 2
    assert output_of(jobplan, "yt") != output_of(jobplan, "x")
    decision = share_of(jobplan, "yt")
    assert not decision.taken and "below what youtube displays" in decision.reason


def test_linkedin_display_size_is_the_floor() -> None:
    jobplan = plan(video_info(1920, 1080, codec="hevc"), [X, LI], share=False)
    li = next(r for r in jobplan.renditions if r.uses[0].account_id == "li")
    x = next(r for r in jobplan.renditions if r.uses[0].account_id == "x")
    assert isinstance(li.target, VideoTarget) and isinstance(x.target, VideoTarget)
    owner = Owned(li.uses[0], li.key, li.target, 10.0)
    assert display_size(owner) == (1280, 720)
    assert serving_problems(x.target, owner) == []
    g = x.target.geometry
    small = replace(x.target, geometry=replace(g, width=960, height=540, content_width=960,
                                               content_height=540))
    assert any("below what linkedin displays" in p for p in serving_problems(small, owner))
    # A byte cap the planned ceiling could break is a rule failure too.
    tight = replace(li.target, max_bytes=1_000_000)
    assert any("byte" in p for p in serving_problems(x.target, replace(owner, target=tight)))


def test_shared_sound_and_quality_must_match() -> None:
    jobplan = plan(video_info(1920, 1080, codec="hevc"), [X, LI], share=False)
    li = next(r for r in jobplan.renditions if r.uses[0].account_id == "li")
    x = next(r for r in jobplan.renditions if r.uses[0].account_id == "x")
    assert isinstance(li.target, VideoTarget) and isinstance(x.target, VideoTarget)
    owner = Owned(li.uses[0], li.key, li.target, 10.0)
    worse = replace(x.target, crf=li.target.crf + 4)
    assert "is encoded at a lower quality" in serving_problems(worse, owner)
    quiet = replace(x.target, audio=replace(x.target.audio, bitrate_kbps=64))
    assert "has other sound" in serving_problems(quiet, owner)


@pytest.mark.ffmpeg
def test_one_encode_serves_x_and_linkedin(tmp_path: Path,
                                          make_clip: Any) -> None:
    src = make_clip(width=1920, height=1080, seconds=3.5, fps=10, codec="hevc")
    lib = src.parent
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"workspace_id": "w", "id": "share",
                               "content": [{"media": [src.name]}], "accounts": [X, LI]}))
    planned = CliRunner().invoke(main, ["plan", str(job), "--library", f"file://{lib}/{{id}}"],
                                 catch_exceptions=False)
    assert planned.exit_code == 0, planned.stderr
    assert "takes the 1280x720 planned for x" in planned.stdout  # conform plan says why
    dest = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", str(job), "--library", f"file://{lib}/{{id}}",
                                       "--dest", str(dest), "--no-progress"],
                                env={"CONFORM_X264_PRESET": "ultrafast"},
                                catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    manifest = json.loads(result.stdout)
    media = {a["account_id"]: a["media"][0] for a in manifest["accounts"]}
    assert media["x"]["uri"] == media["li"]["uri"]
    path = Path(media["li"]["uri"].removeprefix("file://"))
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "stream=codec_name,profile,width,height", "-of", "json", str(path)],
                           capture_output=True, text=True, check=True)
    stream = json.loads(probe.stdout)["streams"][0]
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 1280, 720)
    videos = [p for p in dest.rglob("*.mp4")]
    assert len(videos) == 1  # one encode, delivered to both accounts


@pytest.mark.parametrize(
    ("lines", "needle"),
    [
        ("display_long_side = 1280\n", "go together"),
        ("display_long_side = 720\ndisplay_short_side = 1280\n", "greater than display_long_side"),
        ("display_long_side = 0\ndisplay_short_side = 0\n", "must be >= 2"),
        ('display_long_side = "720p"\ndisplay_short_side = 720\n', "expected an integer"),
    ],
)
def test_bad_display_sizes_are_preset_errors(tmp_path: Path, lines: str, needle: str) -> None:
    from pipeline.errors import PresetError
    from pipeline.presets import load_preset_file

    text = (Path(__file__).resolve().parent.parent / "presets" / "linkedin.toml").read_text()
    start = text.index("display_long_side")
    end = text.index("[variants.video.video.audio]")
    path = tmp_path / "linkedin.toml"
    path.write_text(text[:start] + lines + text[end:])
    with pytest.raises(PresetError) as info:
        load_preset_file(path)
    assert needle in info.value.message


def test_reasons_name_only_outputs_the_plan_makes() -> None:
    # LinkedIn's own 1920x1080 is considered first and dropped: TikTok's reason for keeping
    # its own must be judged against what is finally made (X's 1280x720), not against it.
    tiktok = {"id": "tt", "platform": "tiktok"}
    jobplan = plan(video_info(1920, 1080, codec="hevc"), [tiktok, X, LI])
    sizes = {f"{r.target.geometry.width}x{r.target.geometry.height}"
             for r in jobplan.renditions}
    assert "1920x1080" not in sizes
    decision = share_of(jobplan, "tt")
    assert not decision.taken and "1280x720" in decision.reason
