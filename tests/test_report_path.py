"""The preview draws smart framing's path (issue 22, item 5): per shot, the delivered window
over the source's reach, filled with the delivered frame of the shot's middle, on the page
(looked at in headless Chromium) and on the PNG sheet (read from its pixels)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from pipeline.report.path import MAX_PANELS, PANEL_PX, PATH_RGB, REACH_RGB
from tests.support import browser
from tests.test_report import account_entry, manifest_doc, media_entry, run_cli

# Two shots of a 1308 px wide reach: a still window at x=100, then a pan from 300 to 700.
SHOTS = [{"start_s": 0.0, "end_s": 1.5, "camera": "still", "window_width": 608,
          "window_height": 1080, "keys": [{"t_s": 0.0, "x": 100, "y": 0}]},
         {"start_s": 1.5, "end_s": 3.0, "camera": "pan", "window_width": 608,
          "window_height": 1080, "keys": [{"t_s": 1.5, "x": 300, "y": 0},
                                          {"t_s": 3.0, "x": 700, "y": 0}]}]
SCALE = PANEL_PX / 1308


def red_then_blue(path: Path) -> Path:
    """The delivered video: red for the first shot, blue for the second."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "color=c=0xd02020:s=270x480:r=24:d=1.5", "-f", "lavfi", "-i",
                    "color=c=0x2020d0:s=270x480:r=24:d=1.5", "-filter_complex",
                    "[0:v][1:v]concat=n=2:v=1[v]", "-map", "[v]", "-c:v", "libx264",
                    "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)],
                   check=True, capture_output=True)
    return path


def report(tmp: Path, reframe: Any) -> Path:
    clip = red_then_blue(tmp / "dest" / "video.mp4")
    entry = media_entry(clip.as_uri(), kind="video", mime="video/mp4", width=270, height=480,
                        duration_ms=3000, actions=["reframed"], reframe=reframe)
    (tmp / "dest" / "m.json").write_text(json.dumps(manifest_doc(account_entry(
        platform="tiktok", variant="tiktok-video", media=[entry]))))
    result = run_cli(["report", str(tmp / "dest" / "m.json"), "--out", str(tmp / "r"),
                      "--png"])
    assert result.exit_code == 0, result.stderr
    return tmp / "r"


def mask(pixels: npt.NDArray[np.uint8], rgb: tuple[int, int, int], tol: int = 40
         ) -> npt.NDArray[np.bool_]:
    return np.all(np.abs(pixels.astype(int) - rgb) < tol, axis=2)


def windows(pixels: npt.NDArray[np.uint8]) -> list[tuple[int, int, int, int]]:
    """The window outlines drawn: (left, top, right, bottom) of each cyan box, left to right."""
    cyan = mask(pixels, PATH_RGB, 30)
    tall = np.flatnonzero(cyan.sum(axis=0) >= 40)  # the boxes' vertical edges
    edges = np.split(tall, np.flatnonzero(np.diff(tall) > 1) + 1) if tall.size else []
    lefts, rights = [int(e[0]) for e in edges[0::2]], [int(e[-1]) for e in edges[1::2]]
    boxes = []
    for left, right in zip(lefts, rights, strict=True):
        rows = np.flatnonzero(cyan[:, left])
        boxes.append((left, int(rows[0]), right, int(rows[-1])))
    return boxes


def colour_inside(pixels: npt.NDArray[np.uint8], box: tuple[int, int, int, int]
                  ) -> npt.NDArray[np.float64]:
    left, top, right, bottom = box
    mean: npt.NDArray[np.float64] = pixels[top + 4:bottom - 3, left + 4:right - 3].reshape(
        -1, 3).mean(axis=0)
    return mean


def reach_left(pixels: npt.NDArray[np.uint8], box: tuple[int, int, int, int]) -> int:
    """Where the grey reach of a window's panel starts (left of the window, on its row)."""
    row = pixels[(box[1] + box[3]) // 2].astype(int)
    x = box[0]
    while x > 0 and row[x - 1].mean() < 200:  # grey reach or a keyframe's box, not paper
        x -= 1
    assert mask(pixels[(box[1] + box[3]) // 2:][:1, x:x + 1], REACH_RGB, 12).all()
    return x


def check_drawn_path(pixels: npt.NDArray[np.uint8]) -> None:
    """Two windows: the first red at x=100 of the reach, the second blue at x=500 (the pan's
    position at the shot's middle, 2.25 s)."""
    first, second = windows(pixels)
    red, blue = colour_inside(pixels, first), colour_inside(pixels, second)
    assert red[0] > 150 and red[2] < 80, red
    assert blue[2] > 150 and blue[0] < 80, blue
    assert abs((first[0] - reach_left(pixels, first)) - 100 * SCALE) <= 2
    assert abs((second[0] - reach_left(pixels, second)) - 500 * SCALE) <= 2
    assert abs((first[2] - first[0]) - 608 * SCALE) <= 2  # the window's width to scale


@pytest.mark.ffmpeg
def test_the_page_and_the_sheet_draw_the_window_shot_by_shot(tmp_path: Path) -> None:
    out = report(tmp_path, SHOTS)
    html = (out / "index.html").read_text()
    (drawing,) = re.findall(r'<div class="path"><img src="([^"]+)"', html)
    for said in ("shot 1: 0.00-1.50 s, still, window 608x1080 at (100, 0)",
                 "shot 2: 1.50-3.00 s, pan, window 608x1080 from (300, 0) to (700, 0) in 2 keys"):
        assert said in html
    with Image.open(out / drawing) as img:
        check_drawn_path(np.asarray(img.convert("RGB")))
    with Image.open(out / "sheet.png") as img:
        sheet = np.asarray(img.convert("RGB"))
    check_drawn_path(sheet)
    page = browser.screenshot(out / "index.html", tmp_path / "shot.png", width=1000,
                              height=1400)
    check_drawn_path(np.asarray(page))
    text = re.sub(r"<[^>]*>", " ", browser.dump_dom(out / "index.html"))
    assert "shot 2: 1.50-3.00 s, pan" in text
    assert "as far as the window reaches; the source may be wider" in text


@pytest.mark.ffmpeg
@pytest.mark.parametrize(("reframe", "said"), [
    ([{**SHOTS[0], "window_width": 10**9}], True),  # beyond any display
    ([{**SHOTS[0], "keys": [{"t_s": -1.0, "x": 0, "y": 0}]}], True),
    ([{**SHOTS[0], "end_s": -5.0}], True),
    # no keys: the manifest reader drops the whole path already (ReframeEntry.from_dict)
    ([{**SHOTS[0], "keys": []}], False),
])
def test_a_path_with_impossible_numbers_is_said_not_drawn(reframe: Any, said: bool,
                                                         tmp_path: Path) -> None:
    out = report(tmp_path, reframe)
    html = (out / "index.html").read_text()
    assert ("the reframe path is not drawn: not a path of the published shape" in html) is said
    assert "-path.png" not in html
    with Image.open(out / "sheet.png") as img:
        assert windows(np.asarray(img.convert("RGB"))) == []


@pytest.mark.ffmpeg
def test_a_path_of_many_shots_draws_a_bounded_few(tmp_path: Path) -> None:
    """500 shots of 200 keys each (a 3 MB manifest): at most MAX_PANELS are drawn (spread
    over the clip), each from at most 64 keys; the page says how many of them."""
    keys = [{"t_s": i / 100, "x": i, "y": 0} for i in range(200)]
    many = [{**SHOTS[1], "start_s": i * 0.006, "end_s": i * 0.006 + 0.006, "keys": keys}
            for i in range(500)]
    out = report(tmp_path, many)
    html = (out / "index.html").read_text()
    assert f"{MAX_PANELS} of 500 shots drawn, spread over the clip" in html
    (drawing,) = re.findall(r'<div class="path"><img src="([^"]+)"', html)
    with Image.open(out / drawing) as img:
        assert img.width <= MAX_PANELS * (PANEL_PX + 6) and img.height <= PANEL_PX + 30


def test_the_shots_text_is_escaped(tmp_path: Path) -> None:
    from pipeline.presets import load_presets
    from pipeline.report import html
    from pipeline.report.pictures import Picture

    entry = media_entry("file:///v.mp4", kind="video", width=270, height=480)
    pic = Picture(still=None, path='"><script>x</script>', path_text=("<b>shot</b>",))
    page = html.render(manifest_doc(account_entry(media=[entry])), {"file:///v.mp4": pic},
                       load_presets(None), source="m.json")
    assert "<script>" not in page and "<b>shot" not in page
    assert "&lt;b&gt;shot&lt;/b&gt;" in page
