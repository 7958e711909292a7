"""Small jobs, a tiny media library and fake ffmpeg binaries for the batch and worker tests.

The images are made with Pillow (each a different colour, so no two jobs share an output) and
the clip with lavfi in MPEG-4 Part 2, which every platform needs re-encoded: a video job always
runs one ffmpeg encode (the one with ``-progress pipe:1``). The fake ffmpeg wraps the real one
and only slows down or hangs that encode, writing its pid to a marker file when it starts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pipeline import ffmpeg, processes
from pipeline.settings import Settings

REPO = Path(__file__).resolve().parents[2]


# One account on every image surface: the story (blurred fill) and the feed (crop to
# 4:5..1.91:1) included.
EVERY_IMAGE_SURFACE: list[dict[str, Any]] = [
    {"id": "ig", "platform": "instagram"},
    {"id": "ig-story", "platform": "instagram", "settings": {"post_type": "STORIES"}},
    {"id": "fb", "platform": "facebook"}, {"id": "x", "platform": "x"},
    {"id": "li", "platform": "linkedin"}, {"id": "tt", "platform": "tiktok"},
    {"id": "pin", "platform": "pinterest"}, {"id": "th", "platform": "threads"},
    {"id": "tg", "platform": "telegram"}, {"id": "bs", "platform": "bluesky"},
]

def make_library(root: Path, images: int = 8, video: bool = True) -> Path:
    """``photo-<i>.jpg`` (320x240, distinct colours) and ``clip.mp4`` (320x180, 1 s) in root."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(images):
        colour = (30 + 25 * i % 200, 200 - 20 * i % 180, 60 + 40 * i % 190)
        Image.new("RGB", (320, 240), colour).save(root / f"photo-{i}.jpg", quality=90)
    if video:
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
             "testsrc2=size=320x180:rate=25:duration=1", "-f", "lavfi", "-i",
             "sine=duration=1", "-c:v", "mpeg4", "-q:v", "5", "-c:a", "aac", "-shortest",
             str(root / "clip.mp4")], check=True, capture_output=True)
    return root


def library_settings(tmp: Path, library: Path, **kw: Any) -> Settings:
    """Settings for a test: media from ``library``, outputs in tmp/out, work files in tmp/work."""
    kw.setdefault("dest", str(tmp / "out"))
    return Settings.from_env().replace(library=f"file://{library}/{{id}}",
                                       workdir=tmp / "work", **kw)


def workdir_clean(tmp: Path) -> bool:
    """No work folder of a job is left in tmp/work."""
    work = tmp / "work"
    return not work.exists() or not [p for p in work.iterdir() if p.name.startswith("conform-")]


def image_job(job_id: str, photo: str = "photo-0.jpg", platform: str = "telegram"
              ) -> dict[str, Any]:
    """A one-image, one-account job (fast: Pillow only)."""
    return {"workspace_id": "ws", "id": job_id, "content": [{"media": [photo]}],
            "accounts": [{"id": "a1", "platform": platform}]}


def video_job(job_id: str, platform: str = "telegram") -> dict[str, Any]:
    """A one-video, one-account job: one ffmpeg encode."""
    return {"workspace_id": "ws", "id": job_id, "content": [{"media": ["clip.mp4"]}],
            "accounts": [{"id": "a1", "platform": platform}]}


def write_jsonl(path: Path, lines: list[dict[str, Any] | str]) -> Path:
    """Jobs (or raw text lines) as a JSON Lines file."""
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def fake_ffmpeg(directory: Path, *, mode: str, delay_s: float = 0.0,
                marker: Path | None = None) -> Path:
    """An ffmpeg that runs the real one, except for the encode, which it slows or hangs, or
    a build without the tee muxer.

    Args:
        directory: where to write the script.
        mode: ``slow`` sleeps ``delay_s`` then runs the real encode; ``hang`` never returns
            (it becomes ``sleep``, so killing this pid kills the "encode"); ``no_tee``
            refuses ``-f tee`` as a build without that muxer does.
        delay_s: for ``slow``.
        marker: a file to which the encode appends its pid when it starts.
    """
    real = shutil.which("ffmpeg")
    assert real, "ffmpeg is needed"
    script = directory / f"ffmpeg-{mode}"
    note = f'echo $$ >> "{marker}"' if marker else ":"
    action = "exec sleep 600" if mode == "hang" else f'sleep {delay_s}; exec "{real}" "$@"'
    if mode == "no_tee":
        script.write_text("#!/bin/sh\n"
                          "# A test double: an ffmpeg built without the tee muxer.\n"
                          'case " $* " in *" -f tee "*) echo "[NULL @ 0x1] Requested output '
                          "format 'tee' is not a suitable output format\" >&2; exit 1;; esac\n"
                          f'exec "{real}" "$@"\n')
        script.chmod(0o755)
        return script
    script.write_text("#!/bin/sh\n"
                      "# A test double: only the encode (it has -progress) is slowed or hung.\n"
                      f'case " $* " in *" -progress "*) {note}; {action};; esac\n'
                      f'exec "{real}" "$@"\n')
    script.chmod(0o755)
    return script


@pytest.fixture
def use_ffmpeg(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``use_ffmpeg(path)`` points FFMPEG_PATH at a fake for this test (in-process too)."""

    def use(path: Path) -> None:
        monkeypatch.setenv("FFMPEG_PATH", str(path))
        ffmpeg.ffmpeg_exe.cache_clear()

    yield use
    monkeypatch.delenv("FFMPEG_PATH", raising=False)
    ffmpeg.ffmpeg_exe.cache_clear()
    processes.reset_stop()


def conform_cmd(*args: str) -> list[str]:
    """``python -m pipeline ARGS`` for a subprocess."""
    return [sys.executable, "-m", "pipeline", *args]


def subprocess_env(**extra: str) -> dict[str, str]:
    """The test's environment plus the repo on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def wait_for(predicate: Any, timeout_s: float = 20.0, what: str = "condition") -> None:
    """Poll until ``predicate()`` is true."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def pid_alive(pid: int) -> bool:
    """Whether a process (not a zombie) with this pid exists."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
