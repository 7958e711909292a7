"""Caption files: SRT and WebVTT in (any common encoding), clean cues out, in the format each
platform takes, timed to the video as delivered.

Pure functions on bytes and typed cues; fetching goes through :mod:`pipeline.ingest` like any
medium, storing through the one storage interface (:mod:`pipeline.outputs.sidecars`). A caption file
is untrusted text: its size is capped before it is read (the ingest cap), the cue count and a
cue's length here, and every problem is :class:`InvalidCaptions` naming the line it broke on.
"""

from __future__ import annotations

import codecs
import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import InvalidCaptions
from .presets import CaptionFormat

# A feature film's subtitles hold ~2,000 cues; more is not a caption file.
MAX_CUES = 20_000
MAX_CUE_CHARS = 2_000
# Real files stack two or three cues (speakers, a sign); a crafted one could stack thousands.
MAX_ON_SCREEN = 16
_HOUR_MS = 3_600_000

# SRT: "00:00:01,000 --> 00:00:02,500" (a "." is tolerated, as many tools write one).
_SRT_TIME = r"(\d{1,3}):([0-5]\d):([0-5]\d)[,.](\d{1,3})"
_SRT_TIMING = re.compile(rf"^\s*{_SRT_TIME}\s*-->\s*{_SRT_TIME}(?:\s.*)?$")
# WebVTT: "[hh:]mm:ss.ttt --> [hh:]mm:ss.ttt [cue settings]".
_VTT_TIME = r"(?:(\d{1,3}):)?([0-5]\d):([0-5]\d)\.(\d{3})"
_VTT_TIMING = re.compile(rf"^\s*{_VTT_TIME}[ \t]+-->[ \t]+{_VTT_TIME}(?:[ \t].*)?$")
_TAG = re.compile(r"<[^>\n]*>")                     # <i>, <font color=..>, <v Name>, <00:01.000>
_ASS_OVERRIDE = re.compile(r"\{\\[^}\n]*\}")        # {\an8}, {\i1}: SSA overrides in SRT
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True, slots=True)
class Cue:
    """One caption on screen: from ``start_ms`` to ``end_ms``, plain text (lines by ``\\n``)."""

    start_ms: int
    end_ms: int
    text: str


# --------------------------------------------------------------------------- reading


def decode_text(data: bytes) -> str:
    """The file's text: UTF-8 (with or without a BOM), UTF-16 (a BOM, or the zero bytes of
    mostly-ASCII text), else Windows-1252/Latin-1, which decodes any byte (the encoding older
    subtitle tools write when UTF-8 fails).
    """
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                          (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            return data[len(bom):].decode(encoding, errors="replace")
    head = data[:2000]
    if len(head) >= 4 and head[1::2].count(0) > len(head) // 4:
        return data.decode("utf-16-le", errors="replace")
    if len(head) >= 4 and head[0::2].count(0) > len(head) // 4:
        return data.decode("utf-16-be", errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def parse_captions(data: bytes) -> tuple[CaptionFormat, list[Cue]]:
    """Read an SRT or WebVTT file into cues, styling stripped, in time order.

    Raises:
        InvalidCaptions: neither format, a broken timing line, an end before its start, too
            many cues; the message names the line.
    """
    text = decode_text(data).replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in text:
        raise InvalidCaptions("line 1: binary data, not a caption file")
    lines = text.split("\n")
    first = lines[0].lstrip("\ufeff") if lines else ""
    if first.startswith("WEBVTT") and (len(first) == 6 or first[6] in " \t"):
        return "vtt", _checked(_vtt_cues(lines))
    return "srt", _checked(_srt_cues(lines))


def _checked(cues: list[Cue]) -> list[Cue]:
    if not cues:
        raise InvalidCaptions("line 1: no cue found (neither SRT nor WebVTT)")
    return sorted(cues, key=lambda c: (c.start_ms, c.end_ms))


def _blocks(lines: Sequence[str], start: int) -> Iterable[tuple[int, list[str]]]:
    """Runs of non-blank lines, each with its 1-based first line number."""
    block: list[str] = []
    first = 0
    for n in range(start, len(lines)):
        line = lines[n]
        if line.strip():
            if not block:
                first = n + 1
            block.append(line)
        elif block:
            yield first, block
            block = []
    if block:
        yield first, block


def _srt_cues(lines: Sequence[str]) -> list[Cue]:
    cues: list[Cue] = []
    for first, block in _blocks(lines, 0):
        at = 1 if block[0].strip().isdigit() and len(block) > 1 else 0
        match = _SRT_TIMING.match(block[at])
        if match is None:
            raise InvalidCaptions(f"line {first + at}: expected a timing line "
                                  f"'00:00:01,000 --> 00:00:02,000', got {_quote(block[at])}")
        g = match.groups()
        _add(cues, _ms(*g[:4]), _ms(*g[4:]), block[at + 1:], first + at)
    return cues


def _vtt_cues(lines: Sequence[str]) -> list[Cue]:
    cues: list[Cue] = []
    blocks = iter(_blocks(lines, 0))
    next(blocks, None)  # the header block: WEBVTT and its metadata lines
    for first, block in blocks:
        head = block[0].strip()
        if head.startswith(("NOTE", "STYLE", "REGION")) and "-->" not in head:
            continue
        at = 0 if "-->" in block[0] else 1
        if at >= len(block) or (match := _VTT_TIMING.match(block[at])) is None:
            raise InvalidCaptions(f"line {first + min(at, len(block) - 1)}: expected a timing "
                                  f"line '00:01.000 --> 00:02.000', got "
                                  f"{_quote(block[min(at, len(block) - 1)])}")
        g = match.groups()
        _add(cues, _ms(*g[:4]), _ms(*g[4:]), block[at + 1:], first + at)
    return cues


def _add(cues: list[Cue], start: int, end: int, payload: Sequence[str], line: int) -> None:
    if end < start:
        raise InvalidCaptions(f"line {line}: the cue ends before it starts")
    text = clean_text(payload)
    if len(text) > MAX_CUE_CHARS:
        raise InvalidCaptions(f"line {line}: a cue of over {MAX_CUE_CHARS} characters")
    if text and end > start:
        cues.append(Cue(start, end, text))
    if len(cues) > MAX_CUES:
        raise InvalidCaptions(f"line {line}: more than {MAX_CUES} cues")


def _ms(hours: str | None, minutes: str, seconds: str, fraction: str) -> int:
    return ((int(hours or 0) * 60 + int(minutes)) * 60 + int(seconds)) * 1000 + int(
        fraction.ljust(3, "0")[:3])


def _quote(line: str) -> str:
    return repr(line.strip()[:60])


def clean_text(lines: Iterable[str]) -> str:
    """A cue's payload as plain text: tags, SSA overrides, entities and control characters
    gone, blank lines dropped."""
    out = []
    for line in lines:
        plain = html.unescape(_ASS_OVERRIDE.sub("", _TAG.sub("", line)))
        plain = " ".join(_CONTROL.sub("", plain.replace("\u00a0", " ")).split())
        if plain:
            out.append(plain)
    return "\n".join(out)


# --------------------------------------------------------------------------- timing


def flatten(cues: Sequence[Cue]) -> list[Cue]:
    """Overlapping cues merged: while two overlap, one cue shows both texts, so no player has
    to stack them (X and LinkedIn show one at a time), and nothing is lost or shown early.

    One sweep over the cues' edges, linear in the cues times how many are on screen at once;
    that is bounded (:data:`MAX_ON_SCREEN`), so a crafted file can't make it quadratic.

    Raises:
        InvalidCaptions: more than :data:`MAX_ON_SCREEN` cues on screen at once.
    """
    events = sorted([(c.start_ms, 1, i) for i, c in enumerate(cues)]
                    + [(c.end_ms, 0, i) for i, c in enumerate(cues)])
    active: dict[int, Cue] = {}
    out: list[Cue] = []
    for n, (at, starts, i) in enumerate(events):
        if starts:
            active[i] = cues[i]
            if len(active) > MAX_ON_SCREEN:
                raise InvalidCaptions(f"cue at {_stamp(at, '.')}: more than {MAX_ON_SCREEN} "
                                      f"cues on screen at once")
        else:
            active.pop(i, None)
        end = events[n + 1][0] if n + 1 < len(events) else at
        if end > at and active:
            _extend(out, at, end, "\n".join(dict.fromkeys(c.text for c in active.values())))
    return out


def _extend(out: list[Cue], start: int, end: int, text: str) -> None:
    if out and out[-1].text == text and out[-1].end_ms == start:
        out[-1] = Cue(out[-1].start_ms, end, text)
    else:
        out.append(Cue(start, end, text))


def fit_to_video(cues: Sequence[Cue], *, source_s: float, delivered_s: float,
                 loops: int = 1) -> list[Cue]:
    """The cues of the video as delivered: repeated for each whole loop of a looped animation,
    and cut where a trim ends it (a cue running past the end is shortened, one starting after
    it dropped)."""
    period = round(source_s * 1000)
    end_ms = round(delivered_s * 1000)
    timed = [Cue(c.start_ms + k * period, c.end_ms + k * period, c.text)
             for k in range(max(1, loops)) for c in cues] if loops > 1 else list(cues)
    return [Cue(c.start_ms, min(c.end_ms, end_ms), c.text) for c in timed
            if c.start_ms < end_ms and min(c.end_ms, end_ms) > c.start_ms]


# --------------------------------------------------------------------------- writing


def render(cues: Sequence[Cue], fmt: CaptionFormat) -> bytes:
    """The cues as an SRT or WebVTT file (UTF-8, no BOM, LF line ends)."""
    if fmt == "vtt":
        body = "".join(f"{_stamp(c.start_ms, '.')} --> {_stamp(c.end_ms, '.')}\n"
                       f"{_vtt_text(c.text)}\n\n" for c in cues)
        return ("WEBVTT\n\n" + body).encode("utf-8")
    body = "".join(f"{n}\n{_stamp(c.start_ms, ',')} --> {_stamp(c.end_ms, ',')}\n"
                   f"{_srt_text(c.text)}\n\n" for n, c in enumerate(cues, start=1))
    return body.encode("utf-8")


def _stamp(ms: int, sep: str) -> str:
    hours, rest = divmod(ms, _HOUR_MS)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{sep}{millis:03d}"


def _vtt_text(text: str) -> str:
    # In a WebVTT payload "&" and "<" start markup and "-->" ends nothing but is forbidden.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace("-->", "--&gt;")


def _srt_text(text: str) -> str:
    # SRT has no escapes; players read "<i>" as markup, so a literal "<" gets a look-alike.
    return text.replace("<", "\u2039").replace(">", "\u203a")
