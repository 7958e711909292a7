"""Issue #21 item 4: an animation made into a looped video (or any animated WebP) stays inside
the image memory goal, whatever its frame count.

Such an animation used to be turned into one looped APNG: every frame held in RGBA in a list,
then Pillow's APNG writer holding them all again. An 8300x2000, 18-frame GIF posted to
Pinterest (shorter than its 4 s minimum, so looped three times) peaked at 3.7 GB and died with
``MemoryError`` under a 4 GB cap. The frames are now written one at a time
(:mod:`pipeline.video.frames`) and played from a list. Each case is one whole ``conform run``
measured by its peak RSS (see :mod:`tests.test_image_memory`); the delivered MP4 is read back
with ffprobe.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pipeline import ffmpeg
from tests.test_image_memory import PEAK_MB, _conform_peak

PINTEREST = [{"id": "pin", "platform": "pinterest"}]


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """X's largest animation shape as a 1.8 s GIF, and a 2000-frame animated WebP (the
    probe's frame limit) of tiny frames at 11 ms each."""
    root = tmp_path_factory.mktemp("animations")
    frames = [Image.new("P", (8300, 2000), i) for i in range(18)]
    palette = [c for k in range(256) for c in ((k * 37) % 256, (k * 91) % 256, (k * 13) % 256)]
    for frame in frames:
        frame.putpalette(palette)
    frames[0].save(root / "wide.gif", save_all=True, append_images=frames[1:], duration=100,
                   loop=0)
    tiny = [Image.new("RGB", (48, 48), ((i * 7) % 256, (i * 3) % 256, i % 256))
            for i in range(2000)]
    tiny[0].save(root / "many.webp", save_all=True, append_images=tiny[1:], duration=11,
                 loop=0, lossless=True)
    return root


def _delivered(manifest: dict[str, Any]) -> dict[str, Any]:
    """The one delivered video, as ffprobe reads it (duration and frame count)."""
    assert manifest["status"] == "succeeded", manifest
    (account,) = manifest["accounts"]
    assert account["status"] == "ok", account["errors"]
    (medium,) = account["media"]
    path = Path(medium["uri"][len("file://"):])
    done = subprocess.run(
        ffmpeg.ffprobe_head("-v", "error", "-count_frames", "-select_streams", "v:0",
                            "-show_entries", "stream=nb_read_frames,codec_name:format=duration",
                            "-of", "json", str(path)),
        capture_output=True, check=True, timeout=120)
    info = json.loads(done.stdout)
    return {"duration": float(info["format"]["duration"]),
            "frames": int(info["streams"][0]["nb_read_frames"]),
            "codec": info["streams"][0]["codec_name"]}


def test_big_gif_looped_into_a_pinterest_video_stays_under_the_memory_goal(
        library: Path, tmp_path: Path) -> None:
    manifest, peak_mb = _conform_peak(library, "wide.gif", None, tmp_path, PINTEREST)
    print(f"wide.gif to Pinterest: peak {peak_mb:.0f} MB")  # the figure, with pytest -rP
    video = _delivered(manifest)
    # Three whole loops of 18 x 100 ms: 5.4 s (Pinterest's minimum is 4 s).
    assert video["codec"] == "h264"
    assert video["duration"] == pytest.approx(5.4, abs=0.05)
    assert peak_mb < PEAK_MB, peak_mb


def test_two_thousand_frame_webp_stays_small(library: Path, tmp_path: Path) -> None:
    """The hostile shape for this path: as many frames as the probe allows, each written to
    disk and listed; memory stays that of one frame, and the job ends well inside its
    deadline (passed to the run: running past it would fail the job)."""
    manifest, peak_mb = _conform_peak(library, "many.webp", None, tmp_path, PINTEREST,
                                      extra_args=("--job-deadline", "300"))
    print(f"many.webp to Pinterest: peak {peak_mb:.0f} MB")
    video = _delivered(manifest)
    # 2000 x 11 ms = 22 s, every frame on its own delay.
    assert video["duration"] == pytest.approx(22.0, abs=0.05)
    assert peak_mb < 400, peak_mb
