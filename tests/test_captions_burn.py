"""Burned-in captions read back from the delivered pixels: the text is there during its cue
and gone after it, above the surface's bottom UI band and clear of its side bands."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.presets import load_presets
from tests.support.media import frame_rgb

pytestmark = pytest.mark.ffmpeg

BLUE = (20, 40, 160)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lib")
    # A flat blue vertical clip with sound: any bright pixel in the output is the caption.
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "color=c=0x1428a0:s=360x640:r=30:d=3", "-f", "lavfi", "-i",
                    "sine=duration=3", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
                    "-shortest", str(root / "blue.mp4")], check=True, capture_output=True)
    (root / "en.srt").write_text("1\n00:00:00,500 --> 00:00:01,500\n"
                                 "HELLO WORLD, A LONG CAPTION THAT WRAPS\n")
    return root


def _run(tmp_path: Path, library: Path, accounts: list[dict[str, Any]],
         burn_in: bool) -> dict[str, Any]:
    job = {"workspace_id": "w", "id": "burn", "accounts": accounts,
           "content": [{"media": ["blue.mp4"],
                        "captions": [{"src": "en.srt", "lang": "en", "burn_in": burn_in}]}]}
    (tmp_path / "job.json").write_text(json.dumps(job))
    result = CliRunner().invoke(main, ["run", str(tmp_path / "job.json"), "--library",
                                       f"file://{library}/{{id}}", "--dest",
                                       str(tmp_path / "out"), "--no-progress"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return {a["account_id"]: a for a in json.loads(result.stdout)["accounts"]}


def _bright(path: Path, at_s: float) -> tuple[int, int, list[tuple[int, int]]]:
    """Pixels far brighter than the blue picture: the caption's white letters."""
    w, h, raw = frame_rgb(path, at_s)
    found = [(i % w, i // w) for i in range(w * h)
             if raw[3 * i] > 150 and raw[3 * i + 1] > 150 and raw[3 * i + 2] > 150]
    return w, h, found


def test_captions_burn_in_above_the_apps_buttons(tmp_path: Path, library: Path) -> None:
    accounts = [{"id": "tt", "platform": "tiktok"}, {"id": "x", "platform": "x"}]
    result = _run(tmp_path, library, accounts, burn_in=True)
    tt = result["tt"]["media"][0]
    assert "burned_in_captions" in tt["actions"]
    assert not any(w.startswith("captions_not_supported") for w in tt["warnings"])
    assert "captions" not in tt  # burned in: no sidecar as well
    path = Path(tt["uri"][len("file://"):])
    zones = {z.edge: z.fraction
             for z in load_presets().get("tiktok").variants["video"].ui_zones}
    w, h, during = _bright(path, 1.0)
    assert len(during) > 200, "no caption drawn during its cue"
    assert max(y for _, y in during) < h * (1 - zones["bottom"])  # above the bottom UI band
    assert max(x for x, _ in during) < w * (1 - zones["right"])   # clear of the action rail
    assert min(y for _, y in during) > h / 2                      # in the lower half
    assert _bright(path, 2.5)[2] == [], "the caption stays after its cue"
    # X takes TikTok's file (captions raised above TikTok's buttons suit X too): one encode
    assert result["x"]["media"][0]["uri"] == tt["uri"]


def test_without_ui_bands_captions_sit_near_the_bottom(tmp_path: Path, library: Path) -> None:
    result = _run(tmp_path, library, [{"id": "x", "platform": "x"}], burn_in=True)
    x_path = Path(result["x"]["media"][0]["uri"][len("file://"):])
    _, xh, x_during = _bright(x_path, 1.0)
    assert len(x_during) > 200 and max(y for _, y in x_during) > xh * 0.85


def test_without_burn_in_tiktok_is_told_it_takes_no_captions(tmp_path: Path,
                                                              library: Path) -> None:
    result = _run(tmp_path, library, [{"id": "tt", "platform": "tiktok"}], burn_in=False)
    tt = result["tt"]["media"][0]
    assert any(w.startswith("captions_not_supported") for w in tt["warnings"])
    assert _bright(Path(tt["uri"][len("file://"):]), 1.0)[2] == []


def test_an_account_never_takes_captions_placed_for_another_surface() -> None:
    from pipeline.captions import Cue
    from pipeline.plan import BurnIn
    from pipeline.plan.sharing import _captions_misplaced

    cues = (Cue(0, 1000, "hi"),)
    tiktok = BurnIn("s", "en", bottom=0.22, left=0.0, right=0.16, cues=cues)
    plain = BurnIn("s", "en", bottom=0.0, left=0.0, right=0.0, cues=cues)
    assert _captions_misplaced(plain, tiktok)        # X's low captions under TikTok's buttons
    assert not _captions_misplaced(tiktok, plain)    # TikTok's raised captions suit X
    assert _captions_misplaced(None, plain) and _captions_misplaced(plain, None)
    other = BurnIn("t", "en", bottom=0.22, left=0.0, right=0.16, cues=cues)
    assert _captions_misplaced(other, tiktok)        # another text
