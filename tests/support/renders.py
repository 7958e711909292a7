"""Plan a clip for a preset variant and render it the way the runner does, for engine tests.

One place for the plan → render steps the fidelity, timing and decode-proof tests share, and
for reading a delivered file's frame size back with ffprobe (never from our own records).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from pipeline.plan import VideoTarget, plan_video
from pipeline.presets import VideoSpec, load_presets
from pipeline.probe import probe
from pipeline.video import render_shared, render_video

PRESETS = load_presets()


def video_spec(variant: str) -> VideoSpec:
    """The video rules of a bundled preset variant (``tiktok-video``, ...)."""
    found = PRESETS.find_variant(variant)
    assert found is not None and found[1].video is not None, variant
    return found[1].video


def planned(src: Path, variant: str, *, trim_s: float | None = None) -> VideoTarget:
    """The target the planner makes of ``src`` for ``variant`` (x264 ``veryfast``)."""
    spec = video_spec(variant)
    target, _, _ = plan_video(probe(src), spec, max_bytes=spec.max_bytes, trim_s=trim_s,
                              from_image=False, x264_preset="veryfast")
    return target


def render_plan(src: Path, variant: str, out: Path, *,
                trim_s: float | None = None) -> tuple[VideoTarget, Path]:
    """Plan ``src`` for ``variant`` and render it: the target and the delivered file."""
    info = probe(src)
    target = planned(src, variant, trim_s=trim_s)
    result = render_video(src, info.format_name, target, out,
                          duration_s=info.duration_s or 0, timeout_s=120)
    return target, result.path


def render_shared_outputs(src: Path, folder: Path,
                          variants: tuple[str, ...]) -> list[tuple[VideoTarget, Path]]:
    """One shared decode of ``src`` to each variant's planned output (``folder/<variant>.mp4``)."""
    info = probe(src)
    outputs = [(planned(src, variant), folder / f"{variant}.mp4") for variant in variants]
    render_shared(src, info.format_name, outputs, duration_s=info.duration_s or 0,
                  timeout_s=120)
    return outputs


def delivered_size(path: Path) -> tuple[int, int]:
    """The first video stream's width and height, as ffprobe reads them from the file."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream=width,height", "-of", "json", str(path)],
                         capture_output=True, check=True, text=True).stdout
    stream = json.loads(out)["streams"][0]
    return int(stream["width"]), int(stream["height"])
