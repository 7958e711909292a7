"""Alt text on a medium (``{"src", "alt"}``): parsed, cleaned, and carried per platform in the
manifest, cut at a word boundary to the platform's limit; an account's own limits, end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image

from pipeline.cli import main
from pipeline.errors import JobInvalid
from pipeline.job import parse_job
from pipeline.manifest import MediaEntry, with_alt
from pipeline.models import MediaRef
from pipeline.presets import load_presets
from tests.support.media import build_clip, ffprobe_json

PRESETS = load_presets()


def _item(media: list[Any]) -> Any:
    job = parse_job({"workspace_id": "w", "content": [{"media": media}],
                     "accounts": [{"id": "x", "platform": "x"}]}, PRESETS)
    return job.content[0]


def test_a_medium_may_carry_alt_text() -> None:
    item = _item(["plain-id", {"src": "lib-7", "alt": "A red kite over a hill"},
                  {"src": "https://example.com/a.jpg"}, {"id": 9}])
    assert item.media == (MediaRef("library", "plain-id"), MediaRef("library", "lib-7"),
                          MediaRef("url", "https://example.com/a.jpg"),
                          MediaRef("library", "9"))
    assert [item.alt(i) for i in range(4)] == [None, "A red kite over a hill", None, None]


def test_control_and_direction_characters_are_removed() -> None:
    item = _item([{"src": "a", "alt": "Bell\x07 \x1b[31mred\x1b[0m\u202e txet\nline\ttab"}])
    assert item.alt(0) == "Bell [31mred[0m txet line tab"


@pytest.mark.parametrize(("medium", "path"), [
    ({"src": "a", "alt": 5}, "content[0].media[0].alt"),
    ({"src": "a", "alt": "x" * 10_001}, "content[0].media[0].alt"),
    ({"src": "a", "title": "t"}, "content[0].media[0]"),
    ({"src": ["a"]}, "content[0].media[0].src"),
    ({"src": ""}, "content[0].media[0].src"),
])
def test_bad_media_objects_are_invalid_with_their_path(medium: dict[str, Any],
                                                      path: str) -> None:
    with pytest.raises(JobInvalid) as caught:
        _item([medium])
    assert path in dict(caught.value.problems)


def _entry() -> MediaEntry:
    return MediaEntry(content_index=0, media_index=0, source="a", kind="image", uri="file:///o",
                      mime="image/jpeg", bytes=1, sha256="s", width=1, height=1,
                      duration_ms=None, actions=(), warnings=())


def test_alt_text_is_cut_at_a_word_boundary() -> None:
    text = "word " * 120  # 600 characters
    cut = with_alt(_entry(), text.strip(), 500)
    assert cut.alt is not None and len(cut.alt) <= 500 and cut.alt.endswith("word")
    assert any(w.startswith("alt_text_truncated: 599 characters cut to 499")
               for w in cut.warnings)
    whole = with_alt(_entry(), "short", 500)
    assert whole.alt == "short" and whole.warnings == ()
    one_long_word = with_alt(_entry(), "x" * 600, 500)
    assert one_long_word.alt == "x" * 500


def test_a_platform_without_alt_text_gets_a_warning_not_the_text() -> None:
    entry = with_alt(_entry(), "a cat", None)
    assert entry.alt is None and entry.to_dict().get("alt") is None
    assert entry.warnings[0].startswith("alt_text_not_supported")


def _run(tmp_path: Path, job: dict[str, Any], library: Path) -> dict[str, Any]:
    (tmp_path / "job.json").write_text(json.dumps(job))
    result = CliRunner().invoke(main, ["run", str(tmp_path / "job.json"), "--library",
                                       f"file://{library}/{{id}}", "--dest",
                                       str(tmp_path / "out"), "--no-progress"],
                                catch_exceptions=False)
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_the_manifest_carries_alt_text_per_platform(tmp_path: Path) -> None:
    library = tmp_path / "lib"
    library.mkdir()
    Image.new("RGB", (640, 480), (20, 120, 200)).save(library / "p.jpg")
    alt = "A blue square " + "and more words " * 40  # ~614 characters
    job = {"workspace_id": "w", "id": "alt",
           "content": [{"media": [{"src": "p.jpg", "alt": alt}]}],
           "accounts": [{"id": p, "platform": p} for p in ("x", "pinterest", "telegram")]}
    manifest = _run(tmp_path, job, library)
    media = {a["platform"]: a["media"][0] for a in manifest["accounts"]}
    assert media["twitter"]["alt"] == " ".join(alt.split())
    assert len(media["pinterest"]["alt"]) <= 500
    assert alt.startswith(media["pinterest"]["alt"])
    assert any(w.startswith("alt_text_truncated") for w in media["pinterest"]["warnings"])
    assert "alt" not in media["telegram"]
    assert any(w.startswith("alt_text_not_supported") for w in media["telegram"]["warnings"])


@pytest.mark.ffmpeg
def test_an_account_limit_trims_its_video_read_from_the_file(tmp_path: Path) -> None:
    library = tmp_path / "lib"
    library.mkdir()
    build_clip(library / "clip.mp4", width=320, height=180, seconds=4.0)
    job = {"workspace_id": "w", "id": "limits", "content": [{"media": ["clip.mp4"]}],
           "accounts": [{"id": "short", "platform": "x",
                         "conform": {"limits": {"max_duration_s": 2}}},
                        {"id": "plain", "platform": "x"}],
           "conform": {"duration_policy": "trim"}}
    manifest = _run(tmp_path, job, library)
    uris = {a["account_id"]: a["media"][0]["uri"] for a in manifest["accounts"]}
    durations = {k: float(ffprobe_json(Path(u[len("file://"):]))["format"]["duration"])
                 for k, u in uris.items()}
    assert durations["short"] <= 2.05
    assert durations["plain"] >= 3.9
