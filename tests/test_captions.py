"""Caption files: SRT and WebVTT in any common encoding, styling stripped, overlaps merged,
timed to the delivered video, written back in the platform's format; hostile files refused
with the line they broke on (no ffmpeg needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.captions import (
    MAX_CUES,
    Cue,
    decode_text,
    fit_to_video,
    flatten,
    parse_captions,
    render,
)
from pipeline.errors import InvalidCaptions

SRT = """1
00:00:01,000 --> 00:00:02,500
<i>Hello</i> <font color="red">world</font>

2
00:00:03,000 --> 00:00:04,000
{\\an8}Second &amp; last
"""

VTT = """WEBVTT Kind: captions
Language: en

NOTE a comment
that spans lines

STYLE
::cue { color: yellow }

intro
00:01.000 --> 00:02.500 align:start position:10%
<v Roger>Hello <b>world</b>

01:00:03.000 --> 01:00:04.000
<c.loud>Later</c> <00:00:03.500>on
"""


def test_srt_is_read_with_styling_stripped() -> None:
    fmt, cues = parse_captions(SRT.encode())
    assert fmt == "srt"
    assert cues == [Cue(1000, 2500, "Hello world"), Cue(3000, 4000, "Second & last")]


def test_webvtt_is_read_with_headers_notes_styles_and_settings_skipped() -> None:
    fmt, cues = parse_captions(VTT.encode())
    assert fmt == "vtt"
    assert cues == [Cue(1000, 2500, "Hello world"), Cue(3_603_000, 3_604_000, "Later on")]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le",
                                      "utf-16-be", "cp1252"])
def test_common_encodings_are_detected(encoding: str) -> None:
    text = "1\r\n00:00:01,000 --> 00:00:02,000\r\nCafé déjà vu\r\n"
    _, cues = parse_captions(text.encode(encoding))
    assert cues[0].text == "Café déjà vu"


def test_latin1_bytes_that_are_not_utf8_decode() -> None:
    assert decode_text("naïve".encode("latin-1")) == "naïve"


def test_overlapping_cues_are_merged_without_showing_anything_early() -> None:
    cues = [Cue(0, 3000, "A"), Cue(2000, 5000, "B"), Cue(5000, 6000, "B")]
    assert flatten(cues) == [Cue(0, 2000, "A"), Cue(2000, 3000, "A\nB"), Cue(3000, 6000, "B")]


def test_cues_follow_trims_and_loops() -> None:
    cues = [Cue(0, 800, "a"), Cue(900, 1500, "b")]
    trimmed = fit_to_video(cues, source_s=2.0, delivered_s=1.2)
    assert trimmed == [Cue(0, 800, "a"), Cue(900, 1200, "b")]
    looped = fit_to_video(cues, source_s=2.0, delivered_s=6.0, loops=3)
    assert [c.start_ms for c in looped] == [0, 900, 2000, 2900, 4000, 4900]


def test_written_files_read_back_the_same() -> None:
    cues = [Cue(1000, 2500, "Tom & Jerry <3"), Cue(3_600_000, 3_601_000, "a --> b")]
    srt = render(cues, "srt")
    assert srt.startswith(b"1\n00:00:01,000 --> 00:00:02,500\n")
    vtt = render(cues, "vtt")
    assert vtt.startswith(b"WEBVTT\n\n00:00:01.000 --> 00:00:02.500\nTom &amp; Jerry &lt;3\n")
    assert parse_captions(vtt)[1] == cues
    assert [c.start_ms for c in parse_captions(srt)[1]] == [1000, 3_600_000]


@pytest.mark.parametrize(("data", "line"), [
    (b"1\n00:00:01,000 -> 00:00:02,000\nbad arrow\n", "line 2"),
    (b"1\n00:00:05,000 --> 00:00:02,000\nbackwards\n", "line 2"),
    (b"WEBVTT\n\n00:01.000 --> 00:02.000\nok\n\nnot a cue\nstill not\n", "line 7"),
    (b"", "line 1"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "line 1"),
    (b"just some text\n", "line 1"),
])
def test_broken_files_name_their_line(data: bytes, line: str) -> None:
    with pytest.raises(InvalidCaptions) as caught:
        parse_captions(data)
    assert caught.value.message.startswith(line)
    assert caught.value.http_status == 400


def test_too_many_cues_are_refused() -> None:
    one = "00:00:01,000 --> 00:00:02,000\nx\n\n"
    with pytest.raises(InvalidCaptions, match="more than"):
        parse_captions((one * (MAX_CUES + 1)).encode())


def test_stacked_cues_are_refused_not_swept_quadratically() -> None:
    stacked = [Cue(i, 10_000_000, f"c{i}") for i in range(5000)]
    with pytest.raises(InvalidCaptions, match="on screen at once"):
        flatten(stacked)


def test_burned_in_text_cannot_restyle_itself(tmp_path: Path) -> None:
    from pipeline.plan import BurnIn
    from pipeline.video.burnin import write_script

    cue = parse_captions(b"1\n00:00:01,000 --> 00:00:02,000\n{\\fs400}big \\N{\\pos(0,0)}x\n"
                         b"a { b } c \\ d\n")[1][0]
    burn = BurnIn(sha256="s", lang="en", bottom=0.22, left=0.0, right=0.16, cues=(cue,))
    script = write_script(burn, 1080, 1920, tmp_path / "c.ass").read_text()
    dialogue = script.splitlines()[-1]
    assert dialogue.startswith("Dialogue: 0,0:00:01.00,0:00:02.00,Caption,")
    text = dialogue.split(",,", 2)[-1]
    assert "{" not in text and "}" not in text  # no override block survives
    assert text.count("\\N") == 1 and text.replace("\\N", "").count("\\") == 0
    style = next(line for line in script.splitlines() if line.startswith("Style: Caption"))
    fields = style.split(",")
    # 5 % of the short side; margins: the UI bands plus 3 % of clear space, in pixels
    assert fields[2] == "54" and fields[-4:] == ["33", "206", "480", "1"]
