"""Hostile files: each one a typed error, fast, with no output and no outside contact.

Every file here lies about what it is (by its name), is damaged, or tries to make a decoder or
ffmpeg reach something it must not (other files, the network, unbounded memory).
"""

from __future__ import annotations

import json
import shutil
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pipeline import ffmpeg, probe
from pipeline.cli import main
from pipeline.errors import CorruptMedia, FFmpegError, PipelineError, TooLarge, UnsupportedMedia
from tests.support.httpserver import LocalHTTPServer, serve_bytes

FAST_S = 5.0  # generous for a loaded CI box; each of these takes milliseconds normally


def _png_claiming(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR (CRC included) that claims a huge canvas, then nothing."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _hls(target: str) -> bytes:
    return (f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n{target}\n"
            "#EXT-X-ENDLIST\n").encode()


def _make_clip(out: Path, *, faststart: bool) -> Path:
    args = [ffmpeg.ffmpeg_exe(), "-hide_banner", "-v", "error", "-y", "-f", "lavfi",
            "-i", "testsrc2=size=320x180:rate=25:duration=2", "-c:v", "libx264",
            "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if faststart:
        args += ["-movflags", "+faststart"]
    ffmpeg.run([*args, str(out)], timeout_s=60)
    return out


@pytest.fixture(scope="module")
def half_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 2 s MP4 cut in half, with the moov at the end (lost) and at the front (kept)."""
    if not (shutil.which("ffmpeg") and shutil.which("ffprobe")):
        pytest.skip("ffmpeg not installed")
    tmp = tmp_path_factory.mktemp("half")
    out = {}
    for name, faststart in (("moov_last", False), ("moov_first", True)):
        whole = _make_clip(tmp / f"{name}.mp4", faststart=faststart)
        data = whole.read_bytes()
        cut = tmp / f"{name}-cut.mp4"
        cut.write_bytes(data[: len(data) // 2])
        out[name] = cut
    return out


def _expect(path: Path, error: type[PipelineError], code: str, **limits: int) -> PipelineError:
    started = time.monotonic()
    with pytest.raises(error) as info:
        probe.probe(path, timeout_s=30, **limits)
    assert time.monotonic() - started < FAST_S
    assert info.value.code == code
    return info.value


# --------------------------------------------------------------------------- each file


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    _expect(path, CorruptMedia, "corrupt_media")


def test_text_named_mp4(tmp_path: Path) -> None:
    path = tmp_path / "movie.mp4"
    path.write_text("this is not a movie\n" * 50)
    _expect(path, UnsupportedMedia, "unsupported_media")


@pytest.mark.ffmpeg
@pytest.mark.parametrize("variant", ["moov_last", "moov_first"])
def test_truncated_mp4(half_clips: dict[str, Path], variant: str) -> None:
    # moov_first still has its index: only the box walk notices the missing half of mdat.
    err = _expect(half_clips[variant], CorruptMedia, "corrupt_media")
    if variant == "moov_first":
        assert err.details["box"] == "mdat"


@pytest.mark.ffmpeg
def test_malformed_free_box_from_the_corpus(corpus: Path) -> None:
    _expect(corpus / "videos/sample_malformed_free_box.mp4", CorruptMedia, "corrupt_media")


def test_truncated_jpeg_from_the_corpus(corpus: Path) -> None:
    _expect(corpus / "images/truncated_jpeg.jpg", CorruptMedia, "corrupt_media")


def test_truncated_png(tmp_path: Path, corpus: Path) -> None:
    data = (corpus / "images/pil123p.png").read_bytes()
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    _expect(path, CorruptMedia, "corrupt_media")


def test_hls_playlist_named_mp4_reading_a_local_file(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(_hls("file:///etc/passwd"))
    _expect(path, UnsupportedMedia, "unsupported_media")


def test_hls_playlist_named_mp4_calling_a_local_server(tmp_path: Path,
                                                        http_server: LocalHTTPServer) -> None:
    http_server.route("/seg.ts", serve_bytes(b"\x47" * 188 * 4, content_type="video/mp2t"))
    path = tmp_path / "clip.mp4"
    path.write_bytes(_hls(http_server.url("/seg.ts")))
    _expect(path, UnsupportedMedia, "unsupported_media")
    assert sum(http_server.hits.values()) == 0


@pytest.mark.ffmpeg
@pytest.mark.parametrize("fmt", ["mp4", "mov", "mpegts", "matroska", "avi"])
def test_playlist_fed_straight_to_ffprobe_is_not_followed(
        tmp_path: Path, http_server: LocalHTTPServer, fmt: str) -> None:
    """Bypass sniffing: with our forced demuxer the playlist is just a corrupt container."""
    http_server.route("/seg.ts", serve_bytes(b"\x47" * 188 * 4, content_type="video/mp2t"))
    path = tmp_path / "clip.mp4"
    path.write_bytes(_hls(http_server.url("/seg.ts")))
    with pytest.raises(CorruptMedia):
        probe.ffprobe_json(path, fmt, timeout_s=30)
    assert sum(http_server.hits.values()) == 0


@pytest.mark.ffmpeg
def test_protocol_whitelist_holds_even_for_the_hls_demuxer(
        tmp_path: Path, http_server: LocalHTTPServer) -> None:
    """The second wall: were a playlist demuxer ever chosen, only local files are allowed."""
    http_server.route("/seg.ts", serve_bytes(b"\x47" * 188 * 4, content_type="video/mp2t"))
    path = tmp_path / "list.m3u8"
    path.write_bytes(_hls(http_server.url("/seg.ts")))
    args = [ffmpeg.ffprobe_exe(), "-v", "error", "-show_streams",
            *[a for a in ffmpeg.safe_input(path, "hls") if a != "-i"]]
    with pytest.raises(FFmpegError) as info:
        ffmpeg.run(args, timeout_s=30)
    assert "whitelist" in info.value.stderr_tail.lower()
    assert sum(http_server.hits.values()) == 0


def test_ffconcat_script_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"ffconcat version 1.0\nfile '/etc/passwd'\nfile 'http://127.0.0.1:1/x'\n")
    _expect(path, UnsupportedMedia, "unsupported_media")


@pytest.mark.ffmpeg
def test_ffconcat_script_fed_straight_to_ffprobe(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"ffconcat version 1.0\nfile '/etc/passwd'\n")
    with pytest.raises(CorruptMedia):
        probe.ffprobe_json(path, "mov", timeout_s=30)


def test_svg(tmp_path: Path) -> None:
    path = tmp_path / "logo.png"
    path.write_bytes(b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" '
                     b'width="100" height="100"><image href="file:///etc/passwd"/></svg>')
    _expect(path, UnsupportedMedia, "unsupported_media")


def test_pdf(tmp_path: Path) -> None:
    path = tmp_path / "poster.jpg"
    path.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n")
    _expect(path, UnsupportedMedia, "unsupported_media")


def test_png_header_claiming_60000_by_60000(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    path.write_bytes(_png_claiming(60000, 60000))
    _expect(path, TooLarge, "too_large")


def test_png_just_over_a_lower_pixel_limit(tmp_path: Path) -> None:
    # Below Pillow's own bomb threshold: our explicit limit must still refuse it.
    probe.setup_pillow(400_000_000)
    path = tmp_path / "wide.png"
    path.write_bytes(_png_claiming(5000, 5000))
    err = _expect(path, TooLarge, "too_large", max_pixels=20_000_000)
    assert err.details["width"] == 5000


def test_decompression_bomb_gif_from_the_corpus(corpus: Path) -> None:
    _expect(corpus / "images/decompression_bomb.gif", TooLarge, "too_large")


def test_animation_over_the_frame_limit(corpus: Path) -> None:
    err = _expect(corpus / "images/iss634.gif", TooLarge, "too_large", max_frames=10)
    assert err.details["frames"] == 42
    # and within the limit it is fine
    assert probe.probe(corpus / "images/iss634.gif", max_frames=42).image.frames == 42  # type: ignore[union-attr]


def test_apng_header_claiming_millions_of_frames(tmp_path: Path, corpus: Path) -> None:
    data = bytearray((corpus / "images/iss634.apng").read_bytes())
    at = data.index(b"acTL")
    data[at + 4:at + 8] = struct.pack(">I", 50_000_000)
    data[at + 12:at + 16] = struct.pack(">I", zlib.crc32(bytes(data[at:at + 12])) & 0xFFFFFFFF)
    path = tmp_path / "many.png"
    path.write_bytes(bytes(data))
    _expect(path, TooLarge, "too_large")


# --------------------------------------------------------------------------- through `conform run`


HOSTILE = {
    "empty.mp4": b"",
    "text.mp4": b"not a movie\n" * 10,
    "hls.mp4": _hls("file:///etc/passwd"),
    "concat.jpg": b"ffconcat version 1.0\nfile '/etc/passwd'\n",
    "logo.svg": b'<svg xmlns="http://www.w3.org/2000/svg"/>',
    "doc.pdf": b"%PDF-1.4\n%%EOF\n",
    "huge.png": _png_claiming(60000, 60000),
}
EXPECTED = {"empty.mp4": "corrupt_media", "huge.png": "too_large"}


@pytest.mark.ffmpeg
def test_hostile_files_fail_their_accounts_with_no_output(tmp_path: Path) -> None:
    library = tmp_path / "library"
    library.mkdir()
    for name, data in HOSTILE.items():
        (library / name).write_bytes(data)
    job = {"workspace_id": "ws", "id": "hostile",
           "content": [{"media": [name]} for name in HOSTILE],
           "accounts": [{"id": "x1", "platform": "x"}, {"id": "bs1", "platform": "bluesky"}]}
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(job))
    dest = tmp_path / "out"
    started = time.monotonic()
    result = CliRunner().invoke(main, [
        "run", str(job_file), "--library", f"file://{library}/{{id}}", "--dest", str(dest),
        "--workdir", str(tmp_path / "work"), "--no-progress"])
    assert time.monotonic() - started < 60
    assert result.exit_code == 1, result.output
    manifest = json.loads(result.stdout)
    assert manifest["status"] == "failed"
    for account in manifest["accounts"]:
        assert account["media"] == []
        codes = {(e["content_index"], e["code"]) for e in account["errors"]}
        for index, name in enumerate(HOSTILE):
            assert (index, EXPECTED.get(name, "unsupported_media")) in codes, (name, codes)
    assert not (dest / "assets").exists()  # nothing was produced
    assert list((tmp_path / "work").iterdir()) == []  # the job's workdir is gone


# --------------------------------------------------------------------------- oversized video frames


@pytest.fixture(scope="module")
def huge_frames(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One-frame H.264 clips larger than any platform takes: 16000x16000 (752 KB, the issue's
    case, 2.5 GB per ffmpeg once decoded) and 8208x64 (one side just over 8192)."""
    if not (shutil.which("ffmpeg") and shutil.which("ffprobe")):
        pytest.skip("ffmpeg not installed")
    tmp = tmp_path_factory.mktemp("huge-frames")
    out = {}
    for width, height in ((16000, 16000), (8208, 64)):
        path = tmp / f"frame-{width}x{height}.mp4"
        ffmpeg.run([ffmpeg.ffmpeg_exe(), "-hide_banner", "-v", "error", "-y", "-f", "lavfi",
                    "-i", f"color=c=red:s={width}x{height}:r=1:d=1", "-frames:v", "1",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                    str(path)], timeout_s=120)
        out[f"{width}x{height}"] = path
    return out


@pytest.mark.ffmpeg
@pytest.mark.parametrize("size", ["16000x16000", "8208x64"])
def test_video_frame_over_the_platform_limit(huge_frames: dict[str, Path], size: str) -> None:
    # Issue #12 item 6: the frame size is refused from the headers, before any decode.
    err = _expect(huge_frames[size], TooLarge, "too_large")
    width, height = map(int, size.split("x"))
    assert err.details["width"] == width and err.details["height"] == height
    assert err.details["max_side_px"] == 8192


@pytest.mark.ffmpeg
def test_video_frame_limit_is_a_setting(huge_frames: dict[str, Path]) -> None:
    info = probe.probe(huge_frames["8208x64"], timeout_s=30, max_video_side_px=8208)
    assert (info.width, info.height) == (8208, 64)
    _expect(huge_frames["8208x64"], TooLarge, "too_large", max_video_side_px=8208,
            max_video_pixels=8208 * 64 - 1)


@pytest.mark.ffmpeg
def test_huge_video_frame_fails_its_job_without_running_ffmpeg(
        huge_frames: dict[str, Path], tmp_path: Path, use_ffmpeg: Any) -> None:
    # ffprobe reads the headers; ffmpeg (which would decode 256 M pixels) must never start.
    marker = tmp_path / "ffmpeg-ran"
    fake = tmp_path / "ffmpeg"
    fake.write_text(f'#!/bin/sh\necho "$@" >> "{marker}"\nexit 1\n')
    fake.chmod(0o755)
    use_ffmpeg(fake)
    library = tmp_path / "library"
    library.mkdir()
    shutil.copy(huge_frames["16000x16000"], library / "huge.mp4")
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps({
        "workspace_id": "ws", "id": "huge-video", "content": [{"media": ["huge.mp4"]}],
        "accounts": [{"id": "yt", "platform": "youtube"}]}))
    dest = tmp_path / "out"
    started = time.monotonic()
    result = CliRunner().invoke(main, [
        "run", str(job_file), "--library", f"file://{library}/{{id}}", "--dest", str(dest),
        "--workdir", str(tmp_path / "work"), "--no-progress"])
    assert time.monotonic() - started < 30
    assert result.exit_code == 1, result.output
    manifest = json.loads(result.stdout)
    codes = {e["code"] for a in manifest["accounts"] for e in a["errors"]}
    assert codes == {"too_large"}, manifest
    assert not marker.exists()  # no ffmpeg process was started, so nothing was decoded
    assert not (dest / "assets").exists()
