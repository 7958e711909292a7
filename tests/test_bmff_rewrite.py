"""Issue #21 items 6-8 and #23 item 3: the pass-through rewrite, attacked from inside the moov.

Every hostile file is crafted at test time from a clip ffmpeg made, by editing its box tree
(tests/support/mp4craft.py, written apart from the code under test). Every check reads the
delivered file: its bytes (no marker anywhere), ffprobe's packets (same samples, same timing),
a full decode, and two tools nobody here wrote, AtomicParsley and mp4box.js.
"""

from __future__ import annotations

import copy
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline import bmff
from tests.support.media import stream_packets
from tests.support.mp4craft import Movie, Node, box
from tests.support.mp4tools import assert_tools_accept, mp4box
from tests.test_video import file_of, media_of, run_job

pytestmark = pytest.mark.ffmpeg

XMP_UUID = bytes.fromhex("BE7ACFCB97A942E89C71999491E3AFAC")
GPS = b"<exif:GPSLatitude>48,51.5N</exif:GPSLatitude>"
XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description>' + GPS
       + b"</rdf:Description></rdf:RDF></x:xmpmeta>")
# Markers short enough for the fixed fields they hide in; none can occur in a header we write.
MARK = b"SMUGGLED"


def _trak(movie: Movie, handler: bytes) -> Node:
    return next(t for t in movie.moov.find(b"trak")
                if t.first(b"hdlr").payload[8:12] == handler)


def _entry(movie: Movie, handler: bytes) -> Node:
    return _trak(movie, handler).first(b"stsd").children[0]


def _xmp_in_avc1(m: Movie) -> bytes:
    _entry(m, b"vide").children.append(Node(b"uuid", payload=XMP_UUID + XMP))
    return b"xmpmeta"


def _free_in_entries(m: Movie) -> bytes:
    for handler in (b"vide", b"soun"):
        _entry(m, handler).children.append(
            Node(b"free", payload=MARK + b"-free-" + handler + GPS))
    return MARK + b"-free-"


def _stsd_trailer(m: Movie) -> bytes:
    _trak(m, b"vide").first(b"stsd").tail = MARK + b"-stsd-tail" + GPS
    return MARK + b"-stsd-tail"


def _second_stsd_entry(m: Movie) -> bytes:
    stsd = _trak(m, b"vide").first(b"stsd")
    second = copy.deepcopy(stsd.children[0])
    second.head = second.head[:42] + (MARK + b"-entry2").ljust(32, b"\0") + second.head[74:]
    second.children.append(Node(b"uuid", payload=XMP_UUID + XMP))
    stsd.children.append(second)
    stsd.head = stsd.head[:4] + struct.pack(">I", 2)
    return MARK + b"-entry2"


def _table_trailers(m: Movie) -> bytes:
    tail = MARK + b"-table" + GPS
    soun = _trak(m, b"soun").first(b"stbl")
    for node in soun.children:
        if node.kind in (b"sgpd", b"sbgp"):
            node.payload += tail
    # An unknown sample group carrying a payload, and its runs.
    soun.children.append(Node(b"sgpd", payload=struct.pack(">I", 1 << 24) + b"smug"
                              + struct.pack(">II", len(tail), 1) + tail))
    soun.children.append(Node(b"sbgp", payload=bytes(4) + b"smug"
                              + struct.pack(">III", 1, 1, 1) + tail))
    vide = _trak(m, b"vide").first(b"stbl")
    samples = struct.unpack(">I", vide.first(b"stsz").payload[8:12])[0]
    vide.children.append(Node(b"sdtp", payload=bytes(4) + b"\x10" * samples + tail))
    vide.children.append(Node(b"cslg", payload=bytes(4) + struct.pack(">5i", 0, -2, 2, 0, 30)
                              + tail))
    return MARK + b"-table"


def _header_reserved_fields(m: Movie) -> bytes:
    mvhd = m.moov.first(b"mvhd")
    assert mvhd.payload[0] == 0
    p = bytearray(mvhd.payload)
    p[26:36] = b"SMUGGLED-1"  # reserved after the volume
    p[72:96] = b"SMUGGLED-2".ljust(24, b"!")  # pre_defined
    mvhd.payload = bytes(p)
    tkhd = _trak(m, b"vide").first(b"tkhd")
    p = bytearray(tkhd.payload)
    p[16:20] = b"SMUG"  # reserved after the track id
    p[24:32] = b"SMUGGLED"  # reserved after the duration
    tkhd.payload = bytes(p)
    hdlr = _trak(m, b"vide").first(b"hdlr")
    hdlr.payload = hdlr.payload[:12] + b"SMUGGLED-3\0\0" + b"SMUGGLED-4 name\0"
    return b"SMUGGLED"


def _entry_fields(m: Movie) -> bytes:
    avc1 = _entry(m, b"vide")
    avc1.head = avc1.head[:42] + (MARK + b"-name").ljust(32, b"\0") + avc1.head[74:]
    for child in avc1.children:
        if child.kind in (b"avcC", b"pasp", b"btrt"):
            child.payload += MARK + b"-config" + GPS
    avc1.children.append(Node(b"colr", payload=b"prof" + MARK + b"-icc" + GPS))
    mp4a = _entry(m, b"soun")
    mp4a.head = mp4a.head[:12] + b"SMUG" + mp4a.head[16:]  # vendor
    mp4a.first(b"esds").payload += MARK + b"-config" + GPS
    return MARK


CASES: dict[str, Callable[[Movie], bytes]] = {
    "xmp_uuid_in_avc1": _xmp_in_avc1,
    "free_in_sample_entries": _free_in_entries,
    "bytes_after_stsd_entries": _stsd_trailer,
    "second_stsd_entry": _second_stsd_entry,
    "sgpd_sbgp_sdtp_cslg_trailers": _table_trailers,
    "reserved_header_fields": _header_reserved_fields,
    "sample_entry_fields": _entry_fields,
}


def _base(make_clip: Any) -> Path:
    path: Path = make_clip(width=320, height=180, seconds=1.0, gop=30, edit_list=False)
    return path


def _hostile(base: Path, folder: Path, edits: list[Callable[[Movie], bytes]]) -> tuple[Path,
                                                                                    list[bytes]]:
    movie = Movie(base.read_bytes())
    markers = [edit(movie) for edit in edits]
    out = folder / "hostile.mp4"
    out.write_bytes(movie.to_bytes())
    data = out.read_bytes()
    assert all(marker in data for marker in markers)
    # ffmpeg still reads the hostile source as the same clip (the edits are all legal-looking)
    assert stream_packets(out, "v:0") == stream_packets(base, "v:0")
    return out, markers


def _assert_clean(out: Path, base: Path, markers: list[bytes]) -> None:
    data = out.read_bytes()
    for marker in [*markers, b"xmpmeta", b"GPSLatitude", b"SMUG", b"uuid", b"free"]:
        assert marker not in data, marker
    for stream in ("v:0", "a:0"):
        assert stream_packets(out, stream) == stream_packets(base, stream), stream
    proc = subprocess.run(["ffmpeg", "-v", "error", "-xerror", "-i", str(out), "-f", "null",
                           "-"], capture_output=True, check=False)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    seen, reference = assert_tools_accept(out), mp4box(base)
    assert seen["samples"] == reference["samples"]  # same bytes, same timing, per mp4box.js


@pytest.mark.parametrize("case", sorted(CASES))
def test_rewrite_keeps_nothing_hidden_inside_the_moov(make_clip: Any, tmp_path: Path,
                                                      case: str) -> None:
    base = _base(make_clip)
    src, markers = _hostile(base, tmp_path, [CASES[case]])
    out = tmp_path / "out.mp4"
    bmff.strip_boxes(src, out)
    _assert_clean(out, base, markers)


def test_passthrough_job_delivers_none_of_it(make_clip: Any, tmp_path: Path) -> None:
    base = _base(make_clip)
    src, markers = _hostile(base, tmp_path, list(CASES.values()))
    m = run_job(tmp_path, {"clip.mp4": src}, [{"id": "x", "platform": "x"}])
    entry = media_of(m, "x")[0]
    assert entry["actions"] == ["passed_through"]
    _assert_clean(file_of(entry), base, markers)


def test_rewrite_of_a_quicktime_movie_keeps_its_brand(make_clip: Any, tmp_path: Path) -> None:
    base = make_clip(width=320, height=180, seconds=1.0, gop=30, edit_list=False,
                     container="mov")
    movie = Movie(base.read_bytes())
    _free_in_entries(movie)
    src = tmp_path / "hostile.mov"
    src.write_bytes(movie.to_bytes())
    out = tmp_path / "out.mov"
    bmff.strip_boxes(src, out)
    assert MARK not in out.read_bytes()
    seen = assert_tools_accept(out)
    assert seen["ftyp_major"] == "qt  " and seen["samples"] == mp4box(base)["samples"]


# --------------------------------------------------------------------------- brands (#23.3)


@pytest.mark.parametrize(("clip", "expected"), [
    ({}, ["passed_through"]),                            # the rewrite
    ({"edit_list": True}, ["remuxed"]),                   # a stream copy into a new MP4
    ({"codec": "mpeg4"}, ["transcoded"]),                 # an encode
])
def test_every_output_is_read_by_atomicparsley_and_mp4box(make_clip: Any, tmp_path: Path,
                                                          clip: dict[str, Any],
                                                          expected: list[str]) -> None:
    params = {"width": 320, "height": 180, "seconds": 1.0, "gop": 30, "edit_list": False}
    src = make_clip(**{**params, **clip})
    m = run_job(tmp_path, {"clip.mp4": src}, [{"id": "x", "platform": "x"}])
    entry = media_of(m, "x")[0]
    assert entry["actions"][:1] == expected, entry["actions"]
    out = file_of(entry)
    seen = assert_tools_accept(out)
    data = out.read_bytes()
    assert data[4:12] == b"ftypisom"
    if any(t == 1 for t in _ctts_versions(data)):
        assert "iso4" in seen["compatible"]  # negative composition offsets are declared


def _ctts_versions(data: bytes) -> list[int]:
    found, at = [], data.find(b"ctts")
    while at != -1:
        found.append(data[at + 4])
        at = data.find(b"ctts", at + 4)
    return found


def test_mp4_boxes_helper_round_trips(make_clip: Any, tmp_path: Path) -> None:
    # The crafting helper itself: an unedited tree writes back the same bytes.
    base = _base(make_clip)
    assert Movie(base.read_bytes()).to_bytes() == base.read_bytes()
    assert box(b"free", b"") == b"\0\0\0\x08free"


def test_mangled_movie_headers_fail_only_with_typed_errors(make_clip: Any,
                                                           tmp_path: Path) -> None:
    # 400 seeded mutations of the moov (bytes, sizes and counts overwritten, bytes cut): each
    # rewrite succeeds or says "not a layout I rewrite" / corrupt_media, never anything else.
    import random

    from pipeline.errors import CorruptMedia

    base = make_clip(width=320, height=180, seconds=1.0, gop=30, edit_list=False,
                     faststart=False).read_bytes()
    moov = base.index(b"moov") - 4
    rng = random.Random(21)
    src, out = tmp_path / "mangled.mp4", tmp_path / "out.mp4"
    outcomes = {"ok": 0, "refused": 0}
    for _ in range(400):
        data = bytearray(base)
        for _ in range(rng.randint(1, 6)):
            at = rng.randrange(moov, len(data) - 4)
            if rng.random() < 0.5:
                data[at] = rng.randrange(256)
            elif rng.random() < 0.8:
                value = rng.choice([0, 1, 7, 0xFFFFFFFF, rng.randrange(1 << 32)])
                struct.pack_into(">I", data, at, value)
            else:
                del data[at:at + rng.randrange(1, 16)]
        src.write_bytes(bytes(data))
        try:
            bmff.strip_boxes(src, out)
            outcomes["ok"] += 1
        except (bmff.UnsupportedLayout, CorruptMedia):
            outcomes["refused"] += 1
            assert not out.with_name(f".{out.name}.part").exists()
    assert outcomes["ok"] and outcomes["refused"], outcomes


def test_tracks_other_than_picture_and_sound_are_dropped(make_clip: Any, tmp_path: Path) -> None:
    # A timed-text track carrying a location (GPS tracks and Apple's mebx are timed metadata
    # the same way): the rewrite keeps the video and sound tracks only.
    base = _base(make_clip)
    srt = tmp_path / "gps.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:00,900\nSMUGGLED-track 48.8584N 2.2945E\n")
    src = tmp_path / "with-text.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(base), "-i", str(srt), "-map", "0",
                    "-map", "1", "-c", "copy", "-c:s", "mov_text", "-use_editlist", "0",
                    "-movflags", "+faststart", str(src)], check=True, capture_output=True)
    assert b"SMUGGLED-track" in src.read_bytes()
    out = tmp_path / "out.mp4"
    bmff.strip_boxes(src, out)
    assert b"SMUGGLED" not in out.read_bytes()
    seen = assert_tools_accept(out)
    assert sorted(t["type"] for t in seen["tracks"]) == ["audio", "video"], seen["tracks"]
    assert seen["samples"] == mp4box(base)["samples"]
