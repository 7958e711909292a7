"""`conform run` end to end on small media, outputs checked the way a platform would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image

from pipeline.cli import main
from pipeline.probe import probe

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
MEDIA_KEYS = {"content_index", "media_index", "source", "kind", "uri", "mime", "bytes", "sha256",
              "width", "height", "duration_ms", "actions", "warnings"}
ACCOUNT_KEYS = {"account_id", "platform", "variant", "status", "media", "cover", "errors",
                "warnings"}
ALL_PLATFORMS = ["twitter", "facebook", "instagram", "linkedin", "youtube", "tiktok",
                 "pinterest", "threads", "telegram", "bluesky"]


def run_cli(args: list[str], stdin: str | None = None) -> Any:
    return CliRunner().invoke(main, args, input=stdin, catch_exceptions=False)


def check_manifest_contract(m: dict[str, Any]) -> None:
    assert set(m) >= {"job_id", "status", "presets_version", "accounts"}
    assert m["status"] in ("succeeded", "partial", "failed")
    for a in m["accounts"]:
        assert set(a) >= ACCOUNT_KEYS
        assert a["status"] in ("ok", "failed")
        if a["status"] == "failed":
            assert a["media"] == [] and a["errors"]
        for e in a["errors"]:
            assert {"code", "message", "http_status"} <= set(e)
            assert e["code"].islower() and " " not in e["code"]
        for medium in a["media"]:
            assert set(medium) == MEDIA_KEYS
            assert medium["uri"].startswith("file:///")
            path = Path(medium["uri"][len("file://"):])
            assert path.is_file() and path.stat().st_size == medium["bytes"]


def file_of(uri: str) -> Path:
    return Path(uri[len("file://"):])


@pytest.mark.ffmpeg
def test_sample_post_to_all_ten_platforms(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    result = run_cli(["run", str(EXAMPLES / "post.json"), "--library",
                      f"file://{EXAMPLES / 'media'}/{{id}}", "--dest", str(dest),
                      "--no-progress"])
    assert result.exit_code == 0, result.stderr
    m = json.loads(result.stdout)  # stdout carries only the manifest
    check_manifest_contract(m)
    assert m["status"] == "succeeded"
    assert sorted(a["platform"] for a in m["accounts"]) == sorted(ALL_PLATFORMS)
    stored = json.loads((dest / "manifests" / "demo" / "sample-post.json").read_text())
    assert stored["accounts"] == m["accounts"]

    for account in m["accounts"]:
        for medium in account["media"]:
            info = probe(file_of(medium["uri"]))
            assert (info.width, info.height) == (medium["width"], medium["height"])
            if medium["kind"] == "video":
                assert info.video is not None and info.video.codec == "h264"
                assert info.video.pix_fmt == "yuv420p" and info.moov_first
                assert info.video.rotation_deg == 0 and not info.edit_list
                assert abs(info.duration_s - 6.0) < 0.2  # type: ignore[operator]
            else:
                with Image.open(file_of(medium["uri"])) as im:
                    # the phone photo is stored sideways with EXIF 6: outputs are upright
                    assert im.height < im.width or account["platform"] == "pinterest"
                    assert 0x0112 not in im.getexif() and 0x8825 not in im.getexif()
    by_platform = {a["platform"]: a for a in m["accounts"]}
    # thread platforms publish the photo of content[1] too
    assert [x["kind"] for x in by_platform["twitter"]["media"]] == ["video", "image"]
    assert [x["kind"] for x in by_platform["facebook"]["media"]] == ["video"]
    # vertical-first platforms got a 9:16 blurred fill, made once for both
    ig, tt = by_platform["instagram"]["media"][0], by_platform["tiktok"]["media"][0]
    assert ig["uri"] == tt["uri"] and ig["height"] > ig["width"]
    # covers: TikTok a frame at the timestamp, YouTube a 16:9 thumbnail
    assert by_platform["tiktok"]["cover"]["timestamp_ms"] == 2000
    yt_cover = by_platform["youtube"]["cover"]
    assert yt_cover["width"] * 9 == yt_cover["height"] * 16
    assert by_platform["x"]["cover"] if "x" in by_platform else True
    # the run is repeatable: same outputs, reused
    again = run_cli(["run", str(EXAMPLES / "post.json"), "--library",
                     f"file://{EXAMPLES / 'media'}/{{id}}", "--dest", str(dest), "--no-progress"])
    m2 = json.loads(again.stdout)
    assert [x["uri"] for a in m2["accounts"] for x in a["media"]] == [
        x["uri"] for a in m["accounts"] for x in a["media"]]
    assert all("reused" in x["actions"] for a in m2["accounts"] for x in a["media"])


@pytest.mark.ffmpeg
def test_photo_and_video_in_one_item_judged_per_account(tmp_path: Path) -> None:
    job = {"workspace_id": "w", "id": "mixed", "content": [{"media": ["photo.jpg", "clip.mp4"]}],
           "accounts": [{"id": p, "platform": p} for p in ALL_PLATFORMS]}
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(job))
    result = run_cli(["run", str(job_file), "--library", f"file://{EXAMPLES / 'media'}/{{id}}",
                      "--dest", str(tmp_path / "out"), "--no-progress"])
    assert result.exit_code == 1  # ran, some accounts failed
    m = json.loads(result.stdout)
    check_manifest_contract(m)
    assert m["status"] == "partial"
    status = {a["platform"]: a["status"] for a in m["accounts"]}
    assert {p for p, s in status.items() if s == "ok"} == {"instagram", "threads", "telegram"}
    errors = {a["platform"]: [e["code"] for e in a["errors"]] for a in m["accounts"]}
    assert errors["twitter"] == ["mixed_media_not_allowed"]
    assert "media_type_not_supported" in errors["youtube"]
    ig = next(a for a in m["accounts"] if a["platform"] == "instagram")
    assert [x["kind"] for x in ig["media"]] == ["image", "video"]
    assert ig["media"][0]["mime"] == "image/jpeg"


@pytest.mark.ffmpeg
def test_carousel_over_the_total_is_refused_whole(tmp_path: Path) -> None:
    # 10 photos + 1 video: each kind within its count, 11 items over Instagram's 10 (error
    # 2207028) and a Telegram media group's 10.
    def run(photos: int, job_id: str) -> Any:
        job = {"workspace_id": "w", "id": job_id,
               "content": [{"media": ["photo.jpg"] * photos + ["clip.mp4"]}],
               "accounts": [{"id": p, "platform": p} for p in ("instagram", "telegram")]}
        job_file = tmp_path / f"{job_id}.json"
        job_file.write_text(json.dumps(job))
        return run_cli(["run", str(job_file), "--library",
                        f"file://{EXAMPLES / 'media'}/{{id}}", "--dest", str(tmp_path / job_id),
                        "--no-progress"])

    result = run(10, "eleven")
    assert result.exit_code == 1
    m = json.loads(result.stdout)
    check_manifest_contract(m)
    assert m["status"] == "failed"
    assert {a["platform"]: [e["code"] for e in a["errors"]] for a in m["accounts"]} == {
        "instagram": ["too_many_items"], "telegram": ["too_many_items"]}
    assert not (tmp_path / "eleven" / "assets").exists()  # nothing was made for a refused post
    result = run(9, "ten")
    assert result.exit_code == 0, result.stdout
    m = json.loads(result.stdout)
    check_manifest_contract(m)
    for account in m["accounts"]:
        assert [x["kind"] for x in account["media"]] == ["image"] * 9 + ["video"]


def test_failed_image_post_is_labelled_with_its_image_variant(tmp_path: Path) -> None:
    # A photo cut in half (no end-of-image marker) next to a good one: every account fails
    # on it, and the manifest still names the image variant the post was for, not the video.
    lib = tmp_path / "lib"
    lib.mkdir()
    Image.new("RGB", (320, 240), (200, 40, 40)).save(lib / "good.jpg", quality=90)
    whole = (lib / "good.jpg").read_bytes()
    (lib / "cut.jpg").write_bytes(whole[:len(whole) // 2])
    platforms = ("instagram", "facebook", "tiktok", "pinterest")
    job = {"workspace_id": "w", "id": "cut", "content": [{"media": ["cut.jpg", "good.jpg"]}],
           "accounts": [{"id": p, "platform": p} for p in platforms]}
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(job))
    result = run_cli(["run", str(job_file), "--library", f"file://{lib}/{{id}}", "--dest",
                      str(tmp_path / "out"), "--no-progress"])
    assert result.exit_code == 1
    m = json.loads(result.stdout)
    check_manifest_contract(m)
    assert {a["platform"]: a["variant"] for a in m["accounts"]} == {
        "instagram": "instagram-feed-image", "facebook": "facebook-feed-image",
        "tiktok": "tiktok-photo", "pinterest": "pinterest-carousel"}
    assert all([e["code"] for e in a["errors"]] == ["corrupt_media"] for a in m["accounts"])


@pytest.mark.ffmpeg
def test_missing_library_item_fails_only_that_account(tmp_path: Path) -> None:
    job = {"workspace_id": "w", "content": [{"media": ["nope.jpg"]}, {"media": ["photo.jpg"]}],
           "accounts": [{"id": "x", "platform": "x"}, {"id": "fb", "platform": "facebook"}]}
    result = run_cli(["run", "-", "--library", f"file://{EXAMPLES / 'media'}/{{id}}",
                      "--dest", str(tmp_path / "out"), "--no-progress"], stdin=json.dumps(job))
    assert result.exit_code == 1
    m = json.loads(result.stdout)
    assert m["status"] == "failed"
    assert all(a["errors"][0]["code"] == "media_not_found" for a in m["accounts"])
    assert m["accounts"][0]["errors"][0]["http_status"] == 404
    assert m["accounts"][0]["errors"][0]["content_index"] == 0


def test_invalid_job_exits_2_and_names_each_problem(tmp_path: Path) -> None:
    job = {"workspace_id": "w", "content": [{"media": ["a"]}],
           "accounts": [{"id": 1, "platform": "x"}, {"id": 2, "platform": "tiktok"},
                        {"id": 3, "platform": "myspace"},
                        {"id": 4, "platform": "instagram", "settings": {"post_type": "REEL"}}]}
    out = tmp_path / "out"
    result = run_cli(["run", "-", "--dest", str(out)], stdin=json.dumps(job))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "accounts[2].platform: unknown platform 'myspace'" in result.stderr
    assert "accounts[3].settings.post_type" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()  # nothing written


@pytest.mark.parametrize("text", ["{nope", "[]", '"x"', ""])
def test_malformed_jobs_exit_2(text: str) -> None:
    result = run_cli(["run", "-"], stdin=text)
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error:")


def test_unreadable_job_file(tmp_path: Path) -> None:
    result = run_cli(["run", str(tmp_path / "missing.json")])
    assert result.exit_code == 2 and "cannot read the job file" in result.stderr


def test_plan_prints_and_writes_nothing(tmp_path: Path) -> None:
    result = run_cli(["plan", str(EXAMPLES / "post.json"), "--library",
                      f"file://{EXAMPLES / 'media'}/{{id}}", "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["encodes"] == sum(1 for o in data["outputs"] if o["action"] == "transcode")
    assert len(data["accounts"]) == 10
    table = run_cli(["plan", str(EXAMPLES / "post.json"), "--library",
                     f"file://{EXAMPLES / 'media'}/{{id}}"])
    assert "ACCOUNT" in table.stdout and "tiktok" in table.stdout


def test_presets_commands() -> None:
    listing = run_cli(["presets", "list"])
    assert listing.exit_code == 0
    for platform in ALL_PLATFORMS:
        assert platform in listing.stdout
    shown = run_cli(["presets", "show", "x"])
    assert json.loads(shown.stdout)["platform"] == "twitter"
    variant = run_cli(["presets", "show", "instagram-reels"])
    assert json.loads(variant.stdout)["id"] == "instagram-reels"
    missing = run_cli(["presets", "show", "myspace"])
    assert missing.exit_code == 2


def test_console_script_help_in_a_subprocess() -> None:
    out = subprocess.run([sys.executable, "-m", "pipeline", "--help"], capture_output=True,
                         text=True, check=True)
    assert "conform" in out.stdout and "run" in out.stdout
    version = subprocess.run([sys.executable, "-m", "pipeline", "--version"],
                             capture_output=True, text=True, check=True)
    assert version.stdout.startswith("conform ")
