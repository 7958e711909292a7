"""``python -m bench --only cost --stages``: the PATH shims log every ffmpeg/ffprobe call with
its CPU, and each call gets a readable purpose from its argv."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.stages import make_shims, purpose, read_log, shim_env, summarize


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="needs ffprobe")
def test_shim_logs_each_call_and_keeps_the_exit_code(tmp_path: Path) -> None:
    shims = make_shims(tmp_path / "shims")
    log = tmp_path / "calls.jsonl"
    env = {**os.environ, **shim_env(shims, log)}
    ok = subprocess.run(["ffprobe", "-hide_banner", "-version"], env=env, capture_output=True,
                        check=False)
    bad = subprocess.run(["ffprobe", "-v", "error", str(tmp_path / "missing.mp4")], env=env,
                         capture_output=True, check=False)
    assert ok.returncode == 0 and ok.stdout.startswith(b"ffprobe version")
    assert bad.returncode != 0
    calls = read_log(log)
    assert [c.tool for c in calls] == ["ffprobe", "ffprobe"]
    rows = summarize(calls, total_cpu=sum(c.cpu_s for c in calls) + 1.0)
    assert rows[-2][0].startswith("Python") and rows[-2][2] == pytest.approx(1.0)


def test_purpose_names_the_pipeline_calls() -> None:
    packets = ["-select_streams", "v:0", "-show_entries", "packet=pts_time,flags", "x"]
    assert purpose("ffprobe", packets) == "probe: packet scan"
    assert purpose("ffprobe", ["-show_format", "-show_streams", "x"]) == "probe: streams/format"
    shared = ["-i", "x", "-filter_complex",
              "[0:v:0]split=2[a][b];[a]scale=1080:1920:flags=lanczos[c];[c]setsar=1[d];"
              "[b]fps=fps=30:start_time=0[e];[e]scale=1280:720:flags=lanczos[f];[f]setsar=1[g]",
              "-map", "[d]", "-crf", "20", "-preset", "medium", "-vcodec", "libx264", "o1",
              "-map", "[g]", "-crf", "20", "-preset", "medium", "-vcodec", "libx264", "o2"]
    assert purpose("ffmpeg", shared) == "shared encode of 2: 1080x1920+1280x720@30 medium crf20"
    sample = ["-i", "x", "-vf", "fps=6/6.0,scale=270:480", "-frames:v", "6", "-f", "rawvideo",
              "pipe:1"]
    assert purpose("ffmpeg", sample).startswith("frame sample: fps=6/6.0")
