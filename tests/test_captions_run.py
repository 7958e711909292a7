"""Captions end to end: caption files fetched like media, delivered per platform in its format
and timed to the delivered video, read back from the stored files; broken, oversized and
mislabelled caption files fail only the accounts that would carry them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image

from pipeline.captions import parse_captions
from pipeline.cli import main
from tests.support.media import build_clip

pytestmark = pytest.mark.ffmpeg

SRT = ("1\n00:00:00,500 --> 00:00:01,500\n<i>Hello</i> there\n\n"
       "2\n00:00:01,000 --> 00:00:01,800\nOverlap\n\n"
       "3\n00:00:02,500 --> 00:00:03,500\nAfter the trim\n")


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lib")
    build_clip(root / "clip.mp4", width=320, height=180, seconds=4.0)
    (root / "en.srt").write_bytes(SRT.encode("utf-16"))  # with a BOM, as Windows tools write
    (root / "broken.srt").write_text("1\n00:00:01,000 -> 00:00:02,000\nno arrow\n")
    Image.new("RGB", (64, 64)).save(root / "picture.srt", format="PNG")
    (root / "huge.srt").write_bytes(b"x" * 2_000_001)
    # 100 short cues of 300 characters each, one after another: ~31 KB of WebVTT
    (root / "long.srt").write_text("".join(
        f"{n}\n00:00:0{n * 35 // 1000},{n * 35 % 1000:03d} --> "
        f"00:00:0{(n * 35 + 30) // 1000},{(n * 35 + 30) % 1000:03d}\n{'word ' * 60}\n\n"
        for n in range(100)))
    return root


def _run(tmp_path: Path, library: Path, captions: list[dict[str, Any]],
         accounts: list[dict[str, Any]], **conform: Any) -> dict[str, Any]:
    job = {"workspace_id": "w", "id": "cap", "accounts": accounts,
           "content": [{"media": ["clip.mp4"], "captions": captions}],
           **({"conform": conform} if conform else {})}
    (tmp_path / "job.json").write_text(json.dumps(job))
    result = CliRunner().invoke(main, ["run", str(tmp_path / "job.json"), "--library",
                                       f"file://{library}/{{id}}", "--dest",
                                       str(tmp_path / "out"), "--no-progress"],
                                catch_exceptions=False)
    assert result.exit_code in (0, 1), result.output
    return {a["account_id"]: a for a in json.loads(result.stdout)["accounts"]}


def _read(track: dict[str, Any]) -> tuple[str, list[Any]]:
    data = Path(track["uri"][len("file://"):]).read_bytes()
    assert len(data) == track["bytes"]
    return parse_captions(data)


def test_each_platform_gets_its_format_timed_to_its_video(tmp_path: Path,
                                                           library: Path) -> None:
    accounts = [{"id": "yt", "platform": "youtube"}, {"id": "bsky", "platform": "bluesky"},
                {"id": "tt", "platform": "tiktok"},
                {"id": "x", "platform": "x", "conform": {"limits": {"max_duration_s": 2}}}]
    result = _run(tmp_path, library, [{"src": "en.srt", "lang": "en"}], accounts,
                  duration_policy="trim")
    assert all(a["status"] == "ok" for a in result.values()), result
    yt = result["yt"]["media"][0]["captions"]
    assert [(t["format"], t["lang"]) for t in yt] == [("srt", "en")]
    fmt, cues = _read(yt[0])
    assert fmt == "srt"
    # styling stripped, overlaps merged, UTF-16 decoded; nothing shown early or lost
    assert [(c.start_ms, c.end_ms, c.text) for c in cues] == [
        (500, 1000, "Hello there"), (1000, 1500, "Hello there\nOverlap"),
        (1500, 1800, "Overlap"), (2500, 3500, "After the trim")]
    fmt, _ = _read(result["bsky"]["media"][0]["captions"][0])
    assert fmt == "vtt"
    # X's account takes 2 s: its captions end with its video
    fmt, cues = _read(result["x"]["media"][0]["captions"][0])
    assert fmt == "srt" and max(c.end_ms for c in cues) <= 2000
    assert "After the trim" not in {c.text for c in cues}
    tt = result["tt"]["media"][0]
    assert "captions" not in tt
    assert any(w.startswith("captions_not_supported") for w in tt["warnings"])


@pytest.mark.parametrize(("src", "code", "words"), [
    ("broken.srt", "invalid_captions", "line 2"),
    ("picture.srt", "unsupported_media", "png"),
    ("huge.srt", "too_large", "cap for a caption file"),
    ("missing.srt", "media_not_found", ""),
])
def test_bad_caption_files_fail_only_the_accounts_that_carry_them(
        tmp_path: Path, library: Path, src: str, code: str, words: str) -> None:
    accounts = [{"id": "yt", "platform": "youtube"}, {"id": "tt", "platform": "tiktok"}]
    result = _run(tmp_path, library, [{"src": src, "lang": "en"}], accounts)
    assert result["yt"]["status"] == "failed"
    error = result["yt"]["errors"][0]
    assert error["code"] == code and words in error["message"]
    assert result["tt"]["status"] == "ok"  # TikTok carries none: a warning, not a failure


def test_a_track_over_the_platforms_cap_is_too_large(tmp_path: Path, library: Path) -> None:
    result = _run(tmp_path, library, [{"src": "long.srt", "lang": "en"}],
                  [{"id": "bsky", "platform": "bluesky"}, {"id": "yt", "platform": "youtube"}])
    assert result["bsky"]["errors"][0]["code"] == "too_large"
    assert "20000 bytes" in result["bsky"]["errors"][0]["message"]
    assert result["yt"]["status"] == "ok"


def test_linkedin_takes_one_track(tmp_path: Path, library: Path) -> None:
    (library / "de.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nHallo\n")
    result = _run(tmp_path, library, [{"src": "en.srt", "lang": "en"},
                                      {"src": "de.srt", "lang": "de"}],
                  [{"id": "li", "platform": "linkedin"}, {"id": "yt", "platform": "youtube"}])
    assert [t["lang"] for t in result["li"]["media"][0]["captions"]] == ["en"]
    assert any(w.startswith("captions_dropped") for w in result["li"]["media"][0]["warnings"])
    assert [t["lang"] for t in result["yt"]["media"][0]["captions"]] == ["en", "de"]
