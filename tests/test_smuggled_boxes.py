"""Issue #12 item 4: a video delivered without re-encoding must not carry the uploader's extra
bytes: an XMP ``uuid`` box with GPS, a ``free`` box holding an HTML page and a ZIP (a
polyglot), ``udta`` metadata (a ``©xyz`` location, an HTML comment) or a handler name.

Every check reads the delivered file itself: its bytes, ffprobe's packets (same samples, same
timing) and a full decode.
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest

from pipeline import bmff
from tests.support.media import (
    ffprobe_json,
    packets_from_zero,
    stream_packets,
    top_level_boxes,
)
from tests.test_video import FFmpegSpy, file_of, media_of, run_job

pytestmark = pytest.mark.ffmpeg

XMP_UUID = bytes.fromhex("BE7ACFCB97A942E89C71999491E3AFAC")
GPS = b"<exif:GPSLatitude>48,51.5N</exif:GPSLatitude><exif:GPSLongitude>2,17.7E"
HTML = b"<html><body><script>alert('smuggled-html')</script></body></html>"
COMMENT = "smuggled-comment-in-udta"
HANDLER = "smuggled-handler-name"
LOCATION = "+48.8584+002.2945/"


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("payload.txt", "smuggled-zip-entry")
    return buf.getvalue()


def _tags(path: Path) -> dict[str, str]:
    """Every container and stream tag ffprobe reads (what a viewer's tools would show)."""
    info = ffprobe_json(path)
    tags = dict(info["format"].get("tags") or {})
    for stream in info["streams"]:
        tags.update({f"{stream['index']}:{k}": v for k, v in (stream.get("tags") or {}).items()})
    return tags


def _payloads() -> list[bytes]:
    return [GPS, HTML, b"smuggled-zip-entry", b"PK\x03\x04", b"PK\x05\x06", COMMENT.encode(),
            HANDLER.encode(), b"48.8584"]


def _hostile(make_clip: Any, folder: Path, *, location: bool, container: str = "mp4") -> Path:
    """A conformant clip (moov first, no edit list) re-written by ffmpeg with a comment and a
    handler name in the moov (and a ``©xyz`` location when asked), then an XMP uuid box with
    GPS and a free box with an HTML page and a ZIP appended after the mdat."""
    base = make_clip(width=320, height=180, seconds=1.0, gop=30, edit_list=False,
                     container=container)
    src = folder / f"hostile.{container}"
    meta = ["-metadata", f"comment={COMMENT}", "-metadata:s:v:0", f"handler_name={HANDLER}"]
    if location:
        meta += ["-metadata", f"location={LOCATION}"]
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(base), "-map", "0", "-c", "copy",
                    *meta, "-movflags", "+faststart", "-use_editlist", "0", str(src)],
                   check=True, capture_output=True)
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description>' + GPS
           + b"</rdf:Description></rdf:RDF></x:xmpmeta>")
    with src.open("ab") as fh:
        fh.write(_box(b"uuid", XMP_UUID + xmp))
        fh.write(_box(b"free", HTML + _zip_bytes()))
    data = src.read_bytes()
    assert all(p in data for p in _payloads()[:6])
    assert zipfile.is_zipfile(src)  # the source really is an MP4/ZIP polyglot
    return src


def _assert_clean_and_same_samples(out: Path, src: Path) -> None:
    data = out.read_bytes()
    for payload in _payloads():
        assert payload not in data, payload
    assert b"uuid" not in data and b"udta" not in data and b"meta" not in data
    assert not zipfile.is_zipfile(out)
    tags = _tags(out)
    assert not any("location" in k for k in tags) and COMMENT not in tags.values(), tags
    for stream in ("v:0", "a:0"):
        assert stream_packets(out, stream) == stream_packets(src, stream), stream
    # It still plays: every frame decodes without an error.
    proc = subprocess.run(["ffmpeg", "-v", "error", "-xerror", "-i", str(out), "-f", "null",
                           "-"], capture_output=True, check=False)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr


@pytest.mark.parametrize(("platform", "container"), [("x", "mp4"), ("youtube", "mov")])
def test_passthrough_delivers_no_smuggled_bytes(make_clip: Any, tmp_path: Path, platform: str,
                                                container: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    src = _hostile(make_clip, tmp_path, location=False, container=container)
    spy = FFmpegSpy(monkeypatch)
    m = run_job(tmp_path, {f"clip.{container}": src}, [{"id": "a", "platform": platform}])
    entry = media_of(m, "a")[0]
    assert entry["actions"] == ["passed_through"]
    assert spy.writes() == []  # a container rewrite (and its decode proof), not a remux
    out = file_of(entry)
    assert out.suffix == f".{container}"
    assert top_level_boxes(out) == [b"ftyp", b"moov", b"mdat"]
    _assert_clean_and_same_samples(out, src)


def test_remux_delivers_no_location_or_smuggled_bytes(make_clip: Any, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # A location tag makes the planner re-mux (-map_metadata -1) rather than pass through.
    src = _hostile(make_clip, tmp_path, location=True)
    assert any("location" in k for k in _tags(src))
    spy = FFmpegSpy(monkeypatch)
    m = run_job(tmp_path, {"clip.mp4": src}, [{"id": "x", "platform": "x"}])
    entry = media_of(m, "x")[0]
    assert entry["actions"][0] == "remuxed" and "stripped_metadata" in entry["actions"]
    assert spy.encodes() == []  # a stream copy
    out = file_of(entry)
    data = out.read_bytes()
    for payload in _payloads():
        assert payload not in data, payload
    assert not zipfile.is_zipfile(out) and not any("location" in k for k in _tags(out))
    # the same samples, shown from 0 (negative composition offsets, as every remux)
    assert packets_from_zero(out, "v:0") == packets_from_zero(src, "v:0")
    assert float(stream_packets(out, "v:0")[0]["pts_time"]) == 0.0


def test_strip_boxes_refuses_a_fragmented_mp4(make_clip: Any, tmp_path: Path) -> None:
    base = make_clip(width=320, height=180, seconds=1.0, gop=30, edit_list=False)
    frag = tmp_path / "frag.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(base), "-c", "copy", "-movflags",
                    "frag_keyframe+empty_moov", str(frag)], check=True, capture_output=True)
    with pytest.raises(bmff.UnsupportedLayout):
        bmff.strip_boxes(frag, tmp_path / "out.mp4")
    assert not list(tmp_path.glob("*out.mp4*"))  # nothing half-written


def test_strip_boxes_refuses_chunks_outside_the_mdat(make_clip: Any, tmp_path: Path) -> None:
    src = tmp_path / "bad.mp4"
    shutil.copy(make_clip(width=320, height=180, seconds=1.0, gop=30, edit_list=False), src)
    data = bytearray(src.read_bytes())
    at = data.index(b"stco")
    struct.pack_into(">I", data, at + 12, 16)  # first chunk now points into the ftyp
    src.write_bytes(bytes(data))
    with pytest.raises(bmff.UnsupportedLayout):
        bmff.strip_boxes(src, tmp_path / "out.mp4")


def test_fragmented_passthrough_is_remuxed_instead(make_clip: Any, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    base = make_clip(width=320, height=180, seconds=1.0, gop=30, edit_list=False)
    frag = tmp_path / "frag.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(base), "-c", "copy", "-movflags",
                    "frag_keyframe+empty_moov", "-use_editlist", "0", str(frag)],
                   check=True, capture_output=True)
    with frag.open("ab") as fh:
        fh.write(_box(b"free", HTML + _zip_bytes()))
    spy = FFmpegSpy(monkeypatch)
    m = run_job(tmp_path, {"clip.mp4": frag}, [{"id": "x", "platform": "x"}])
    entry = media_of(m, "x")[0]
    assert entry["actions"] == ["remuxed"]
    assert spy.encodes() == []
    out = file_of(entry)
    assert b"moof" not in top_level_boxes(out)
    assert HTML not in out.read_bytes() and not zipfile.is_zipfile(out)
    assert packets_from_zero(out, "v:0") == packets_from_zero(frag, "v:0")
