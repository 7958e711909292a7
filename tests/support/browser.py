"""Headless Chromium for the preview-sheet tests: a screenshot and the DOM of a local page.

``scripts/setup test`` installs Debian's ``chromium`` when it is missing; the tests skip with
the reason only when it is still not there (the install failed). One page load is one
Chromium start (about 1-2 s), so tests load each page once per module.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
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


def _run(args: list[str], proxy_port: int | None = None,
         direct: str | None = None) -> subprocess.CompletedProcess[bytes]:
    """Chromium with ``args``; ``proxy_port`` replaces the dead proxy, ``direct`` (a
    ``host:port``) is the one server it may reach without the proxy (listed after
    ``<-loopback>``: Chromium reads the rules in order)."""
    flags = list(FLAGS)
    if proxy_port is not None:
        flags = [f"--proxy-server=127.0.0.1:{proxy_port}" if f.startswith("--proxy-server=")
                 else f for f in flags]
    if direct is not None:
        flags = [f"--proxy-bypass-list=<-loopback>;{direct}" if f.startswith("--proxy-bypass")
                 else f for f in flags]
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run([chromium(), *flags, f"--user-data-dir={profile}", *args],
                              capture_output=True, timeout=120, check=True)


def screenshot(page: Path, out: Path, *, width: int = 1280, height: int = 2000,
               proxy_port: int | None = None, direct: str | None = None) -> Image.Image:
    """Render ``page`` at ``width`` x ``height`` and return the screenshot as RGB.

    Taken at the load event, which a ``<video>`` delays until it shows its first frame (no
    ``--virtual-time-budget`` here: it lets the shot be taken before the frame is decoded).
    """
    _run([f"--screenshot={out}", f"--window-size={width},{height}",
          page.resolve().as_uri()], proxy_port, direct)
    with Image.open(out) as img:
        return img.convert("RGB")


def dump_dom(page: Path, *, proxy_port: int | None = None) -> str:
    """The DOM as Chromium parsed it (what a viewer's browser builds from the page).

    A short virtual-time budget lets timers and load handlers of a page run before the dump.
    """
    return _run(["--virtual-time-budget=3000", "--dump-dom", page.resolve().as_uri()],
                proxy_port).stdout.decode("utf-8", "replace")


# Chromium's own services (clock, component updates, sign-in) that it calls whatever the page.
_BROWSER_HOSTS = re.compile(r"^(GET|POST|CONNECT) (https?://)?([a-z0-9.-]+\.)?"
                            r"(google\.com|googleapis\.com|gstatic\.com|gvt1\.com)[:/ ]")


class RecordingProxy:
    """A loopback 'proxy' that records the first line of every request Chromium sends.

    Chromium started with ``proxy_port=proxy.port`` sends every http(s) request, loopback
    included, here (``GET http://host/path`` or ``CONNECT host:443``); each is answered with a
    502 and recorded, so ``proxy.requests`` is the page's network traffic.
    """

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.requests: list[str] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def page_requests(self) -> list[str]:
        """The requests the page made: everything but Chromium's own service calls."""
        return [r for r in self.requests if not _BROWSER_HOSTS.match(r)]

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    head = conn.recv(4096).split(b"\r\n", 1)[0]
                    self.requests.append(head.decode("latin-1"))
                    conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n"
                                 b"Connection: close\r\n\r\n")


@contextlib.contextmanager
def recording_proxy() -> Iterator[RecordingProxy]:
    """A :class:`RecordingProxy` for the ``with`` block."""
    proxy = RecordingProxy()
    proxy._thread.start()
    try:
        yield proxy
    finally:
        with contextlib.suppress(OSError):
            proxy._sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        proxy._sock.close()
        proxy._thread.join(timeout=5)


def zone_pixels(img: Image.Image) -> int:
    """Pixels tinted by the safe-zone overlay colour (magenta over grey test media)."""
    r, g, b = img.split()
    red_over_green = ImageChops.subtract(r, g).point(lambda v: 255 if v > 60 else 0)
    blue_over_green = ImageChops.subtract(b, g).point(lambda v: 255 if v > 50 else 0)
    return ImageChops.multiply(red_over_green, blue_over_green).histogram()[255]
