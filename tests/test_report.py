"""The preview sheet: `conform report` / `conform run --report`, looked at in a real browser."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image, ImageStat

from pipeline.cli import main
from tests.support import browser, s3server

s3_server = s3server.s3_server
s3_bucket = s3server.s3_bucket

HOSTILE_ID = '<img src=x onerror=alert(1)>&"tt'
VERTICAL = {"tt-1", HOSTILE_ID, "ig-1"}


def media_entry(uri: str, index: int = 0, **fields: Any) -> dict[str, Any]:
    """One medium of the published shape (schemas/manifest.json)."""
    return {"content_index": 0, "media_index": index, "source": "photo.jpg", "kind": "image",
            "uri": uri, "mime": "image/jpeg", "bytes": 1234, "sha256": f"{index:064x}",
            "width": 64, "height": 48, "duration_ms": None, "actions": [], "warnings": [],
            **fields}


def account_entry(account_id: str = "a", **fields: Any) -> dict[str, Any]:
    return {"account_id": account_id, "platform": "telegram", "variant": "telegram-image",
            "status": "ok", "media": [], "cover": None, "warnings": [], "errors": [], **fields}


def manifest_doc(*accounts: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"job_id": "j", "workspace_id": "ws", "status": "succeeded",
            "presets_version": "test", "pipeline_version": "test", "accounts": list(accounts),
            **fields}


def run_cli(args: list[str]) -> Any:
    return CliRunner().invoke(main, args, catch_exceptions=False)


def make_library(root: Path) -> Path:
    """A grey 9:16 clip (3 s: TikTok's and Reels' minimum) and a grey 4:3 photo."""
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "color=c=0x808080:s=270x480:r=24:d=3", "-c:v", "libx264", "-preset",
                    "ultrafast", "-pix_fmt", "yuv420p", str(root / "clip.mp4")],
                   check=True, capture_output=True)
    Image.new("RGB", (400, 300), (120, 120, 120)).save(root / "photo.jpg", quality=90)
    return root


def job(job_id: str) -> dict[str, Any]:
    return {"workspace_id": "ws", "id": job_id,
            "content": [{"media": ["clip.mp4"]}, {"media": ["photo.jpg"]}],
            "accounts": [{"id": "tt-1", "platform": "tiktok"},
                         {"id": HOSTILE_ID, "platform": "tiktok"},
                         {"id": "ig-1", "platform": "instagram",
                          "settings": {"post_type": "REELS"}},
                         {"id": "x-1", "platform": "x"}]}


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run of a four-account job with --report (one encode per distinct output)."""
    tmp = tmp_path_factory.mktemp("report")
    library = make_library(tmp / "library")
    (tmp / "job.json").write_text(json.dumps(job("preview-job")))
    result = run_cli(["run", str(tmp / "job.json"), "--library", f"file://{library}/{{id}}",
                      "--dest", str(tmp / "out"), "--no-progress", "--report",
                      str(tmp / "report")])
    assert result.exit_code == 0, result.stderr
    return {"tmp": tmp, "manifest": json.loads(result.stdout), "report": tmp / "report",
            "library": library}


@pytest.fixture(scope="module")
def page(ran: dict[str, Any]) -> dict[str, Any]:
    """The page as Chromium renders it: one screenshot and one DOM dump for the module."""
    index = ran["report"] / "index.html"
    shot = browser.screenshot(index, ran["tmp"] / "shot.png", height=2600)
    return {"shot": shot, "dom": browser.dump_dom(index), "html": index.read_text()}


@pytest.mark.ffmpeg
def test_run_report_writes_a_self_contained_page(ran: dict[str, Any]) -> None:
    html = (ran["report"] / "index.html").read_text()
    # no network: no script, no external stylesheet, font or picture
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "@import" not in html and "url(" not in html
    pictures = re.findall(r'<img src="([^"]+)"', html)
    assert pictures
    for name in pictures:
        with Image.open(ran["report"] / name) as img:
            assert img.width > 0
    # each distinct video: a poster plus a filmstrip of five frames, grey like the source
    videos = {m["uri"] for a in ran["manifest"]["accounts"] for m in a["media"]
              if m["kind"] == "video"}
    strip = [p for p in pictures if re.search(r"-\d\.jpg$", p)]
    assert len(set(strip)) == 5 * len(videos)
    with Image.open(ran["report"] / strip[0]) as frame:
        assert all(abs(m - 128) < 12 for m in ImageStat.Stat(frame).mean)


@pytest.mark.ffmpeg
def test_identical_outputs_are_shown_once_and_referenced(ran: dict[str, Any]) -> None:
    html = (ran["report"] / "index.html").read_text()
    uris = {m["uri"] for a in ran["manifest"]["accounts"] for m in a["media"]}
    uses = sum(len(a["media"]) for a in ran["manifest"]["accounts"])
    assert len(uris) < uses  # the two TikTok accounts share their video
    full_cards = re.findall(r'<figure id="(out-\d+)"', html)
    refs = re.findall(r'the same file as <a href="#(out-\d+)"', html)
    assert refs and set(refs) <= set(full_cards)
    # each stored file is described (its URI linked) exactly once
    for uri in uris:
        assert html.count(f'href="{uri}"') == 1


@pytest.mark.ffmpeg
def test_chromium_renders_every_account_with_overlays_on_vertical_outputs(
        page: dict[str, Any], ran: dict[str, Any]) -> None:
    shot: Image.Image = page["shot"]
    stat = ImageStat.Stat(shot)
    assert max(stat.stddev) > 20  # not blank
    assert browser.zone_pixels(shot) > 5000  # the magenta zones over the grey 9:16 pictures
    accounts = re.findall(r'<section class="account"[^>]*data-account="([^"]*)"', page["dom"])
    unescaped = [a.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
                 .replace("&amp;", "&") for a in accounts]
    assert unescaped == [a["account_id"] for a in ran["manifest"]["accounts"]]
    # the hostile account id is text, never markup
    assert "<img src=x" not in page["dom"] and "onerror=alert" in page["dom"]
    sections = re.split(r'<section class="account"', page["dom"])[1:]
    for account, section in zip(ran["manifest"]["accounts"], sections, strict=True):
        vertical = account["account_id"] in VERTICAL
        assert ('class="zone z-bottom"' in section) == vertical, account["account_id"]
        assert account["status"] in section


@pytest.mark.ffmpeg
def test_report_command_with_png_sheet(ran: dict[str, Any], tmp_path: Path) -> None:
    manifest_path = ran["tmp"] / "out" / "manifests" / "ws" / "preview-job.json"
    result = run_cli(["report", str(manifest_path), "--out", str(tmp_path / "r"), "--png"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split() == [str(tmp_path / "r" / "index.html"),
                                     str(tmp_path / "r" / "sheet.png")]
    with Image.open(tmp_path / "r" / "sheet.png") as sheet:
        assert sheet.format == "PNG"
        rgb = sheet.convert("RGB")
    assert max(ImageStat.Stat(rgb).stddev) > 20
    assert browser.zone_pixels(rgb) > 1000  # zones drawn on the vertical tiles


def test_page_escapes_manifest_strings_and_shows_errors(tmp_path: Path) -> None:
    photo = tmp_path / "p.jpg"
    Image.new("RGB", (64, 48), (200, 10, 10)).save(photo)
    manifest = manifest_doc(
        account_entry("</section><b>x", warnings=["<i>w</i>"],
                      media=[media_entry(photo.as_uri(), actions=["<a>"])]),
        account_entry("a2", platform="tiktok", variant="tiktok-video", status="failed",
                      errors=[{"code": "too_large", "message": "<script>bad()</script>",
                               "http_status": 400, "content_index": 0, "media_index": 0}]),
        job_id="j<1>", status="partial")
    path = tmp_path / "m.json"
    path.write_text(json.dumps(manifest))
    result = run_cli(["report", str(path), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.stderr
    html = (tmp_path / "r" / "index.html").read_text()
    for raw in ("</section><b>", "<i>w</i>", "<a>", "<script>", "j<1>"):
        assert raw not in html
    assert "&lt;script&gt;bad()&lt;/script&gt;" in html
    assert "too_large" in html and "content[0].media[0]" in html
    assert html.count('<section class="account"') == 2


def test_an_unreadable_output_is_shown_as_such_and_the_rest_still_shown(tmp_path: Path) -> None:
    photo = tmp_path / "p.png"
    Image.new("RGB", (64, 48), (10, 10, 200)).save(photo)
    bogus = tmp_path / "not-an-image.jpg"
    bogus.write_text("hello")
    media = [media_entry(p.as_uri(), i) for i, p in enumerate((bogus, photo))]
    manifest = manifest_doc(account_entry(media=media))
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    result = run_cli(["report", str(tmp_path / "m.json"), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.stderr
    html = (tmp_path / "r" / "index.html").read_text()
    assert "no picture: corrupt_media" in html
    (still,) = re.findall(r'<img src="([^"]+)"', html)
    with Image.open(tmp_path / "r" / still) as img:
        assert ImageStat.Stat(img.convert("RGB")).mean[2] > 150  # the blue photo


def test_report_of_a_missing_manifest_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli(["report", str(tmp_path / "nope.json"), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "no such file" in result.stderr and "Traceback" not in result.stderr
    (tmp_path / "bad.json").write_text("{}")
    result = run_cli(["report", str(tmp_path / "bad.json"), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "not a manifest" in result.stderr


@pytest.mark.ffmpeg
@pytest.mark.s3
def test_report_of_a_manifest_and_outputs_on_s3(s3_server: s3server.S3Server, s3_bucket: str,
                                                tmp_path: Path) -> None:
    library = tmp_path / "lib"
    library.mkdir()
    Image.new("RGB", (400, 300), (20, 160, 40)).save(library / "photo.jpg", quality=90)
    (tmp_path / "job.json").write_text(json.dumps(
        {"workspace_id": "ws", "id": "s3-job", "content": [{"media": ["photo.jpg"]}],
         "accounts": [{"id": "tg", "platform": "telegram"}]}))
    dest = f"s3://{s3_bucket}/out"
    result = run_cli(["run", str(tmp_path / "job.json"), "--library",
                      f"file://{library}/{{id}}", "--dest", dest, "--no-progress"])
    assert result.exit_code == 0, result.stderr
    uri = json.loads(result.stdout)["accounts"][0]["media"][0]["uri"]
    assert uri.startswith("s3://")
    result = run_cli(["report", f"{dest}/manifests/ws/s3-job.json", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.stderr
    html = (tmp_path / "r" / "index.html").read_text()
    assert "no picture" not in html
    (still,) = re.findall(r'<img src="([^"]+)"', html)
    with Image.open(tmp_path / "r" / still) as img:  # the green photo, fetched from S3
        r, g, b = ImageStat.Stat(img.convert("RGB")).mean
    assert g > 120 and r < 60 and b < 80
