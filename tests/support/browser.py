"""Headless Chromium for the preview-sheet tests: a screenshot and the DOM of a local page.

``scripts/setup test`` installs Debian's ``chromium`` when it is missing; the tests skip with
the reason only when it is still not there (the install failed). One page load is one
Chromium start (about 1-2 s), so tests load each page once per module.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from PIL import Image, ImageChops

# No network at all, no profile, no background services: the page must render from the folder.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]


def chromium() -> str:
    """The chromium binary, or skip the test saying why."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("chromium is not installed and `scripts/setup test` could not install it "
                    "(apt-get install chromium failed): the browser tests need it")
    return found


def _run(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, timeout=120, check=True)


def screenshot(page: Path, out: Path, *, width: int = 1280, height: int = 2000) -> Image.Image:
    """Render ``page`` at ``width`` x ``height`` and return the screenshot as RGB."""
    _run([f"--screenshot={out}", f"--window-size={width},{height}", page.resolve().as_uri()])
    with Image.open(out) as img:
        return img.convert("RGB")


def dump_dom(page: Path) -> str:
    """The DOM as Chromium parsed it (what a viewer's browser builds from the page)."""
    return _run(["--dump-dom", page.resolve().as_uri()]).stdout.decode("utf-8", "replace")


def zone_pixels(img: Image.Image) -> int:
    """Pixels tinted by the safe-zone overlay colour (magenta over grey test media)."""
    r, g, b = img.split()
    red_over_green = ImageChops.subtract(r, g).point(lambda v: 255 if v > 60 else 0)
    blue_over_green = ImageChops.subtract(b, g).point(lambda v: 255 if v > 50 else 0)
    return ImageChops.multiply(red_over_green, blue_over_green).histogram()[255]
