"""A video variant's `quality` knob: validated in the preset, carried to the encode's CRF and
to the output key, and smaller files for "compact"."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.errors import PresetError
from pipeline.plan import target_key
from pipeline.presets import REPO_PRESETS_DIR, load_preset_file
from pipeline.video import build_args
from tests.test_video_args import OUT, SRC, opt, plan, vinfo


def _telegram(tmp: Path, quality: str | None) -> Path:
    text = (REPO_PRESETS_DIR / "telegram.toml").read_text()
    anchor = "[variants.video.video]\n"
    assert anchor in text
    if quality is not None:
        text = text.replace(anchor, f'{anchor}quality = "{quality}"\n', 1)
    folder = tmp / f"presets-{quality}"
    folder.mkdir()
    (folder / "telegram.toml").write_text(text)
    return folder


def test_quality_is_validated(tmp_path: Path) -> None:
    spec = load_preset_file(_telegram(tmp_path, "compact") / "telegram.toml")
    assert spec.variants["video"].video is not None
    assert spec.variants["video"].video.quality == "compact"
    with pytest.raises(PresetError) as info:
        load_preset_file(_telegram(tmp_path, "tiny") / "telegram.toml")
    assert "quality" in info.value.message and "unknown value 'tiny'" in info.value.message


@pytest.mark.parametrize(("quality", "crf"), [("high", "18"), ("standard", "20"),
                                              ("compact", "24")])
def test_quality_sets_the_crf_of_the_encode(quality: str, crf: str) -> None:
    t, _ = plan(vinfo(codec="vp9", fmt="webm"), quality=quality)
    assert opt(build_args(SRC, "webm", t, OUT, duration_s=10), "-crf") == crf


def test_quality_changes_the_output_key_and_standard_keeps_the_old_one() -> None:
    standard, _ = plan(vinfo(codec="vp9", fmt="webm"))
    compact, _ = plan(vinfo(codec="vp9", fmt="webm"), quality="compact")
    assert target_key("s", standard) != target_key("s", compact)
    # Made before the knob existed (no crf field in the key): the same key.
    assert target_key("s", standard) == target_key("s", dataclasses.replace(standard, crf=20))


@pytest.mark.ffmpeg
def test_compact_quality_makes_a_smaller_file(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=640x360:rate=25:duration=2", "-c:v", "mpeg4", "-q:v", "2",
                    str(lib / "clip.mp4")], check=True, capture_output=True)
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"workspace_id": "ws", "id": "q", "content": [
        {"media": ["clip.mp4"]}], "accounts": [{"id": "tg", "platform": "telegram"}]}))
    sizes = {}
    for quality in ("standard", "compact"):
        dest = tmp_path / f"out-{quality}"
        result = CliRunner().invoke(main, [
            "run", str(job), "--library", f"file://{lib}/{{id}}", "--dest", str(dest),
            "--presets", str(_telegram(tmp_path, quality)), "--workdir", str(tmp_path / "w"),
            "--no-progress"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        (video,) = list(dest.rglob("*.mp4"))
        probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0",
                                "-show_entries", "stream=codec_name", "-of", "csv=p=0",
                                str(video)], capture_output=True, text=True, check=True)
        assert probe.stdout.strip() == "h264"
        sizes[quality] = video.stat().st_size
        shutil.rmtree(dest)
    assert sizes["compact"] < sizes["standard"] * 0.85
