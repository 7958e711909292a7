"""The preview sheet shows what it is about (issue 23, item 5): players that load the outputs,
file names instead of server paths, readable filmstrips, zones that leave the picture readable.
Looked at in headless Chromium."""

from __future__ import annotations

import json
import re
import subprocess
from html import unescape
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.support import browser, s3server
from tests.test_report import account_entry, manifest_doc, media_entry, run_cli

s3_server = s3server.s3_server
s3_bucket = s3server.s3_bucket

GREEN = (32, 192, 32)


def make_clip(path: Path, size: str = "270x480", colour: str = "0x20c020") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"color=c={colour}:s={size}:r=24:d=3", "-c:v", "libx264", "-preset",
                    "ultrafast", "-pix_fmt", "yuv420p", str(path)], check=True,
                   capture_output=True)
    return path


def conform(tmp: Path, dest: str, job_id: str = "sheet-job") -> dict[str, Any]:
    library = tmp / "library"
    make_clip(library / "clip.mp4")
    (tmp / "job.json").write_text(json.dumps(
        {"workspace_id": "ws", "id": job_id, "content": [{"media": ["clip.mp4"]}],
         "accounts": [{"id": "tt-1", "platform": "tiktok"}]}))
    result = run_cli(["run", str(tmp / "job.json"), "--library", f"file://{library}/{{id}}",
                      "--dest", dest, "--no-progress"])
    assert result.exit_code == 0, result.stderr
    manifest: dict[str, Any] = json.loads(result.stdout)
    return manifest


def grey_out_pictures(report: Path) -> None:
    """Every still and filmstrip frame made grey: green on screen can then only be a player."""
    for picture in (report / "pictures").iterdir():
        with Image.open(picture) as img:
            size = img.size
        Image.new("RGB", size, (128, 128, 128)).save(picture)


def green_pixels(shot: Image.Image) -> int:
    r, g, b = np.asarray(shot).astype(int).transpose(2, 0, 1)
    return int(((abs(r - GREEN[0]) < 30) & (abs(g - GREEN[1]) < 30)
                & (abs(b - GREEN[2]) < 30)).sum())


def page_text(dom: str) -> str:
    """What a reader sees: the DOM without tags and attributes."""
    return re.sub(r"<[^>]*>", " ", dom)


@pytest.mark.ffmpeg
def test_a_local_video_plays_from_the_output_and_no_server_path_is_shown(tmp_path: Path) -> None:
    dest = tmp_path / "srv-out"
    manifest = conform(tmp_path, str(dest))
    video = manifest["accounts"][0]["media"][0]
    result = run_cli(["report", str(dest / "manifests" / "ws" / "sheet-job.json"), "--out",
                      str(tmp_path / "r")])
    assert result.exit_code == 0, result.stderr
    page = tmp_path / "r" / "index.html"
    html = page.read_text()
    (player,) = re.findall(r"<video [^>]*>", html)
    assert 'preload="metadata"' in player and "controls" in player
    assert f'src="{video["uri"]}"' in player
    # the page names the file and its size; the full path only as a link's target
    text = page_text(browser.dump_dom(page))
    assert str(dest) not in text and str(tmp_path) not in text
    name = video["uri"].rsplit("/", 1)[1]
    assert re.search(rf"{re.escape(name)} \(\d+\.\d (kB|MB)\)", text)
    # the player loads the video's metadata and shows its first frame (posters made grey;
    # a <video> delays the load event Chromium's screenshot waits for until it has a frame)
    grey_out_pictures(tmp_path / "r")
    shot = browser.screenshot(page, tmp_path / "shot.png", width=1000, height=1200)
    assert green_pixels(shot) > 20_000


@pytest.mark.ffmpeg
@pytest.mark.s3
def test_an_s3_video_plays_from_a_presigned_url_the_policy_allows(
        s3_server: s3server.S3Server, s3_bucket: str, tmp_path: Path) -> None:
    dest = f"s3://{s3_bucket}/out"
    conform(tmp_path, dest)
    result = run_cli(["report", f"{dest}/manifests/ws/sheet-job.json", "--out",
                      str(tmp_path / "r")])
    assert result.exit_code == 0, result.stderr
    page = tmp_path / "r" / "index.html"
    html = page.read_text()
    (src,) = re.findall(r'<video [^>]*src="([^"]+)"', html)
    endpoint = s3_server.endpoint_url.rstrip("/")
    assert src.startswith(f"{endpoint}/") and "Signature=" in src
    (csp,) = [unescape(c) for c in
              re.findall(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)]
    assert f"media-src 'self' {endpoint};" in csp and "img-src 'self';" in csp
    grey_out_pictures(tmp_path / "r")
    host_port = endpoint.split("://", 1)[1]
    shot = browser.screenshot(page, tmp_path / "shot.png", width=1000, height=1200,
                              direct=host_port)
    assert green_pixels(shot) > 20_000


@pytest.mark.ffmpeg
def test_filmstrips_are_readable_and_zones_leave_the_picture_visible(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    conform(tmp_path, str(dest))
    result = run_cli(["report", str(dest / "manifests" / "ws" / "sheet-job.json"), "--out",
                      str(tmp_path / "r")])
    assert result.exit_code == 0, result.stderr
    page = tmp_path / "r" / "index.html"
    html = page.read_text()
    strip = re.findall(r'<div class="strip" style="width:364px">(.*?)</div>', html)
    assert len(strip) == 1 and strip[0].count("<img") == 5
    for name in re.findall(r'src="(pictures/[^"]+-\d\.jpg)"', html):
        with Image.open(tmp_path / "r" / name) as frame:
            assert max(frame.size) >= 200  # sharp at the page's size, not a 48 px thumbnail
    shot = browser.screenshot(page, tmp_path / "shot.png", width=1000, height=1400)
    # the vertical poster's bottom zone (TikTok: 22 %) is tinted, not painted over: the
    # green clip still reads as green under it
    assert browser.zone_pixels(shot) > 500  # the outlines are there
    assert green_pixels(shot) > 20_000


def _still_of_video(report: Path) -> Image.Image:
    """The picture in the video's card frame (the poster), as the page shows it."""
    html = (report / "index.html").read_text()
    card = re.search(r'<figure id="out-\d+" class="video">.*?</figure>', html)
    assert card is not None
    (src,) = re.findall(r'<div class="frame"[^>]*><img src="([^"]+)"', card.group())
    with Image.open(report / src) as img:
        return img.convert("RGB")


@pytest.mark.ffmpeg
def test_the_poster_is_the_cover_frame(tmp_path: Path) -> None:
    library = tmp_path / "library"
    red, blue = make_clip(tmp_path / "a.mp4", colour="0xd02020"), make_clip(
        tmp_path / "b.mp4", colour="0x2020d0")
    library.mkdir()
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(red), "-i", str(blue),
                    "-filter_complex", "[0:v]trim=0:2[a];[1:v]trim=0:1,setpts=PTS-STARTPTS[b];"
                    "[a][b]concat=n=2:v=1[v]", "-map", "[v]", "-c:v", "libx264", "-preset",
                    "ultrafast", "-pix_fmt", "yuv420p", str(library / "clip.mp4")],
                   check=True, capture_output=True)
    (tmp_path / "job.json").write_text(json.dumps(
        {"workspace_id": "ws", "id": "cover-job",
         "content": [{"media": ["clip.mp4"], "cover_image": {"video_cover_timestamp_ms": 2500}}],
         "accounts": [{"id": "tt-1", "platform": "tiktok"}]}))
    result = run_cli(["run", str(tmp_path / "job.json"), "--library", f"file://{library}/{{id}}",
                      "--dest", str(tmp_path / "out"), "--no-progress", "--report",
                      str(tmp_path / "r")])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["accounts"][0]["cover"]["timestamp_ms"] == 2500
    r, _, b = np.asarray(_still_of_video(tmp_path / "r")).reshape(-1, 3).mean(axis=0)
    assert b > 150 and r < 80  # the blue frame at 2.5 s, not the red middle of the clip


@pytest.mark.ffmpeg
def test_without_a_cover_the_poster_shows_the_subject(tmp_path: Path) -> None:
    face = Path("../shared/corpus/videos/face.mp4")
    library = tmp_path / "library"
    library.mkdir()
    # 3 s: grey, the talking head from 1.8 s to 2.4 s, grey; the middle frame (1.5 s) is grey
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "color=c=gray:s=854x480:r=30:d=1.8", "-i", str(face), "-f", "lavfi", "-i",
                    "color=c=gray:s=854x480:r=30:d=0.6", "-filter_complex",
                    "[1:v]trim=2:2.6,setpts=PTS-STARTPTS,fps=30,format=yuv420p[f];"
                    "[0:v]format=yuv420p[a];[2:v]format=yuv420p[c];[a][f][c]concat=n=3:v=1[v]",
                    "-map", "[v]", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt",
                    "yuv420p", str(library / "clip.mp4")], check=True, capture_output=True)
    (tmp_path / "job.json").write_text(json.dumps(
        {"workspace_id": "ws", "id": "face-job", "content": [{"media": ["clip.mp4"]}],
         "accounts": [{"id": "x-1", "platform": "x"}]}))
    result = run_cli(["run", str(tmp_path / "job.json"), "--library", f"file://{library}/{{id}}",
                      "--dest", str(tmp_path / "out"), "--no-progress", "--report",
                      str(tmp_path / "r")])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["accounts"][0]["cover"] is None
    poster = np.asarray(_still_of_video(tmp_path / "r")).astype(float)
    assert poster.std() > 20  # the face, not a flat grey frame


# --------------------------------------------------------------------------- the PNG sheet


def _sheet_manifest(tmp: Path, warning: str) -> tuple[dict[str, Any], Path]:
    dest = tmp / "dest"
    dest.mkdir(parents=True)
    clip = make_clip(dest / "v.mp4")
    Image.new("RGB", (400, 300), (20, 20, 200)).save(dest / "p.jpg")
    video = media_entry(clip.as_uri(), 0, kind="video", width=270, height=480,
                        duration_ms=3000, bytes=2_500_000, actions=["transcoded", "resized"],
                        warnings=[warning], sha256="a" * 64)
    photo = media_entry((dest / "p.jpg").as_uri(), 1, width=400, height=300, sha256="b" * 64)
    manifest = manifest_doc(
        account_entry("tt-1", platform="tiktok", variant="tiktok-video", media=[video],
                      warnings=[warning]),
        account_entry("tt-2", platform="tiktok", variant="tiktok-video", media=[video, photo]))
    path = dest / "m.json"
    path.write_text(json.dumps(manifest))
    return manifest, path


@pytest.mark.ffmpeg
def test_the_png_sheet_says_what_the_page_says(tmp_path: Path) -> None:
    from pipeline.presets import load_presets
    from pipeline.report import sheet
    from pipeline.report.pictures import Picture

    manifest, _ = _sheet_manifest(tmp_path, "subject_under_ui: bottom")
    pictures = {m["uri"]: Picture(still=None) for a in manifest["accounts"] for m in a["media"]}
    rows = sheet.layout(manifest, pictures, load_presets(None))
    first, second = rows
    (video,) = first.cells
    caption = " / ".join(text for text, _ in video.caption)
    for fact in ("content[0].media[0]", "270x480", "2.50 MB", "3.0 s",
                 "actions: transcoded, resized", "warning: subject_under_ui: bottom"):
        assert fact in caption, caption
    assert ("warning: subject_under_ui: bottom", sheet._WARN) in first.lines
    # the shared video is drawn once; the second account refers to it
    assert [c.ref for c in second.cells] == [True, False]
    assert "the same file as tt-1 content[0].media[0]" in second.cells[0].caption[0][0]


@pytest.mark.ffmpeg
def test_the_png_sheet_wraps_long_text_and_has_a_legend(tmp_path: Path) -> None:
    from pipeline.report import sheet

    sizes = []
    for n, words in enumerate((3, 120)):
        long = " ".join(["subject_under_ui"] * words)
        _, path = _sheet_manifest(tmp_path / str(n), long)
        out = tmp_path / str(n) / "r"
        result = run_cli(["report", str(path), "--out", str(out), "--png"])
        assert result.exit_code == 0, result.stderr
        with Image.open(out / "sheet.png") as img:
            png = np.asarray(img.convert("RGB")).astype(int)
        sizes.append(png.shape[0])
        r, g, b = png.transpose(2, 0, 1)
        amber = (abs(r - sheet._WARN[0]) < 40) & (abs(g - sheet._WARN[1]) < 40) & (b < 60)
        columns = np.nonzero(amber.any(axis=0))[0]
        assert columns.max() < sheet.WIDTH_PX - sheet.PAD_PX  # nothing runs off the edge
        legend = browser.zone_pixels(img.convert("RGB").crop((0, 0, 60, 64)))
        assert legend > 20  # the zones' key next to the title
    assert sizes[1] > sizes[0] + 5 * sheet.LINE_PX  # the long warning took more lines


def test_small_outputs_are_flagged_on_the_page_and_the_sheet(tmp_path: Path) -> None:
    from pipeline.presets import load_presets
    from pipeline.report import html, sheet
    from pipeline.report.pictures import Picture

    small = media_entry("file:///nowhere/a.jpg", 0, warnings=[
        "low_resolution: 202x360 below the recommended 1080x1920 for instagram-reels"])
    fine = media_entry("file:///nowhere/b.jpg", 1, sha256="f" * 64)
    manifest = manifest_doc(account_entry(media=[small, fine]))
    pictures = {m["uri"]: Picture(still=None) for m in (small, fine)}
    page = html.render(manifest, pictures, load_presets(None), source="m.json")
    cards = re.findall(r'<figure id="out-\d+".*?</figure>', page)
    assert ["below the recommended size" in c for c in cards] == [True, False]
    (row,) = sheet.layout(manifest, pictures, load_presets(None))
    flagged = [any(t == "below the recommended size" for t, _ in c.caption) for c in row.cells]
    assert flagged == [True, False]


@pytest.mark.ffmpeg
def test_a_video_browsers_cannot_play_says_so_instead_of_an_empty_player(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    hevc = dest / "hevc.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=s=320x240:r=24:d=1", "-c:v", "libx265", "-preset", "ultrafast",
                    "-pix_fmt", "yuv420p10le", "-tag:v", "hvc1", "-x265-params", "log-level=error",
                    str(hevc)], check=True, capture_output=True)
    h264 = make_clip(dest / "h264.mp4")
    manifest = manifest_doc(account_entry(media=[
        media_entry(hevc.as_uri(), 0, kind="video", width=320, height=240),
        media_entry(h264.as_uri(), 1, kind="video", width=270, height=480, sha256="e" * 64)]))
    (dest / "m.json").write_text(json.dumps(manifest))
    result = run_cli(["report", str(dest / "m.json"), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.stderr
    cards = re.findall(r'<figure id="out-\d+".*?</figure>',
                       (tmp_path / "r" / "index.html").read_text())
    assert "<video" not in cards[0] and "no player: HEVC 10-bit" in cards[0]
    assert "<video" in cards[1] and "no player" not in cards[1]
