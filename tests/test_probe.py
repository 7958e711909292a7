"""Sniffing by magic bytes, probing into MediaInfo, tool-call hardening and `conform probe`."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import struct
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from pipeline import ffmpeg, probe
from pipeline.cli import main
from pipeline.errors import CorruptMedia, FFmpegTimeout, UnsupportedMedia
from tests.support.httpserver import serve_bytes

# --------------------------------------------------------------------------- helpers


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\0\0\0\0" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + b"\0\0\0\x08free" + b"\0" * 64


def _ebml(doctype: bytes) -> bytes:
    inner = b"\x42\x86\x81\x01" + b"\x42\x82" + bytes([0x80 | len(doctype)]) + doctype
    segment = b"\x18\x53\x80\x67" + b"\0" * 32
    return b"\x1a\x45\xdf\xa3" + bytes([0x80 | len(inner)]) + inner + segment


def _bmp_head() -> bytes:
    return b"BM" + struct.pack("<IHHI", 70, 0, 0, 54) + struct.pack("<I", 40) + b"\0" * 40


def _ts(packets: int = 8) -> bytes:
    return b"".join(b"\x47" + bytes([i % 256]) * 187 for i in range(packets))


def _pillow_bytes(fmt: str, size: tuple[int, int] = (32, 24), **save: object) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 60)).save(buf, format=fmt, **save)
    return buf.getvalue()


def _make(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


def _lavfi(out: Path, *extra: str, seconds: float = 1.0, audio: bool = True) -> Path:
    """A tiny synthetic clip (160x90 test pattern, optional sine) made with real ffmpeg."""
    args = [ffmpeg.ffmpeg_exe(), "-hide_banner", "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=160x90:rate=25:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}"]
    ffmpeg.run([*args, *extra, str(out)], timeout_s=60)
    return out


H264 = ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One small file per accepted video container, made once for the module."""
    if not (shutil.which("ffmpeg") and shutil.which("ffprobe")):
        pytest.skip("ffmpeg not installed")
    tmp = tmp_path_factory.mktemp("clips")
    return {
        "mp4": _lavfi(tmp / "a.mp4", *H264, "-c:a", "aac", "-b:a", "64k"),
        "mov": _lavfi(tmp / "a.mov", *H264, "-c:a", "aac"),
        "m4v": _lavfi(tmp / "a.m4v", *H264, "-c:a", "aac", "-f", "ipod"),
        "webm": _lavfi(tmp / "a.webm", "-c:v", "libvpx", "-deadline", "realtime",
                       "-cpu-used", "8", "-b:v", "200k", "-c:a", "libopus"),
        "mkv": _lavfi(tmp / "a.mkv", *H264, "-c:a", "aac"),
        "avi": _lavfi(tmp / "a.avi", "-c:v", "mpeg4", "-c:a", "mp3"),
        "ts": _lavfi(tmp / "a.ts", *H264, "-c:a", "aac", "-f", "mpegts"),
    }


# --------------------------------------------------------------------------- sniffing


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xff\xd8\xff\xe0\0\x10JFIF\0" + b"\0" * 32, "jpeg"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 32, "png"),
        (b"GIF89a" + b"\0" * 32, "gif"),
        (b"GIF87a" + b"\0" * 32, "gif"),
        (b"RIFF\0\0\0\0WEBPVP8 " + b"\0" * 32, "webp"),
        (b"RIFF\0\0\0\0AVI LIST" + b"\0" * 32, "avi"),
        (_bmp_head(), "bmp"),
        (b"II*\0" + b"\0" * 32, "tiff"),
        (b"MM\0*" + b"\0" * 32, "tiff"),
        (_ebml(b"webm"), "webm"),
        (_ebml(b"matroska"), "matroska"),
        (_ftyp(b"heic", b"mif1", b"heic"), "heif"),
        (_ftyp(b"heix", b"mif1", b"heix"), "heif"),
        (_ftyp(b"mif1", b"mif1", b"heic"), "heif"),
        (_ftyp(b"avif", b"avif", b"mif1", b"miaf"), "avif"),
        (_ftyp(b"mif1", b"mif1", b"avif", b"miaf"), "avif"),
        (_ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41"), "mp4"),
        (_ftyp(b"mp42", b"mp42", b"isom"), "mp4"),
        (_ftyp(b"M4V ", b"M4V ", b"M4A ", b"mp42", b"isom"), "mp4"),
        (_ftyp(b"mp42", b"mp42", b"mif1"), "mp4"),  # a movie that also lists mif1
        (_ftyp(b"qt  ", b"qt  "), "mov"),
        (struct.pack(">I", 16) + b"wide" + b"\0" * 32, "mov"),
        (_ts(), "mpegts"),
    ],
)
def test_sniff_accepts_by_magic_bytes(tmp_path: Path, data: bytes, expected: str) -> None:
    # The name always lies: only the bytes count.
    assert probe.sniff(_make(tmp_path, "upload.txt", data)) == expected


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', id="svg"),
        pytest.param(b"<svg width='10' height='10'></svg>", id="svg-bare"),
        pytest.param(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", id="pdf"),
        pytest.param(b"hello, this is plain text\n" * 20, id="text"),
        pytest.param(b"#EXTM3U\n#EXT-X-VERSION:3\n#EXTINF:1,\nfile:///etc/passwd\n", id="m3u8"),
        pytest.param(b"ffconcat version 1.0\nfile '/etc/passwd'\n", id="ffconcat"),
        pytest.param(b"<!doctype html><html><body>not a video</body></html>", id="html"),
        pytest.param(b"PK\x03\x04" + b"\0" * 64, id="zip"),
        pytest.param(b"BMP is not a bitmap, it is text" * 4, id="text-starting-BM"),
        pytest.param(b"G" + b"x" * 400, id="text-starting-G"),
        pytest.param(b"\x00\x00\x01\x00\x01\x00" + b"\0" * 64, id="ico"),
        pytest.param(b"8BPS\x00\x01" + b"\0" * 64, id="psd"),
        pytest.param(b"\x1a\x45\xdf", id="ebml-cut"),
    ],
)
def test_sniff_refuses_everything_else(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(UnsupportedMedia) as info:
        probe.sniff(_make(tmp_path, "clip.mp4", data))
    assert info.value.code == "unsupported_media"


def test_sniff_empty_file_is_corrupt(tmp_path: Path) -> None:
    with pytest.raises(CorruptMedia):
        probe.sniff(_make(tmp_path, "empty.jpg", b""))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("images/200MP.heic", "heif"),
        ("images/cat.hif", "heif"),
        ("images/rot1mir0.avif", "avif"),
        ("images/iss634.apng", "png"),
        ("images/hopper_orientation_6.webp", "webp"),
        ("videos/dolbyVision-hdr.MOV", "mov"),
        ("videos/sample_fragmented_seekable_multiple_sidx.mp4", "mp4"),
        ("videos/bear-vp9-odd-dimensions.webm", "webm"),
        # named .webm, but its EBML DocType says matroska: the bytes win
        ("videos/roadtrip-vp92-10bit.webm", "matroska"),
        ("videos/bt601-525_480_interlaced_tff.mkv", "matroska"),
    ],
)
def test_sniff_corpus(corpus: Path, name: str, expected: str) -> None:
    assert probe.sniff(corpus / name) == expected


@pytest.mark.parametrize(
    ("fmt", "save", "pil_format"),
    [
        ("jpeg", {}, "JPEG"), ("png", {}, "PNG"), ("webp", {}, "WEBP"), ("gif", {}, "GIF"),
        ("tiff", {}, "TIFF"), ("bmp", {}, "BMP"), ("avif", {}, "AVIF"),
    ],
)
def test_probe_generated_images(tmp_path: Path, fmt: str, save: dict[str, object],
                                pil_format: str) -> None:
    path = _make(tmp_path, "x.bin", _pillow_bytes(pil_format, **save))
    info = probe.probe(path)
    assert (info.kind, info.format_name, info.width, info.height) == ("image", fmt, 32, 24)
    assert info.image is not None and info.image.frames == 1


def test_probe_generated_heic(tmp_path: Path) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    path = _make(tmp_path, "photo.jpg", _pillow_bytes("HEIF", (64, 48)))
    assert probe.sniff(path) == "heif"
    info = probe.probe(path)
    assert (info.kind, info.format_name, info.width, info.height) == ("image", "heif", 64, 48)


@pytest.mark.ffmpeg
@pytest.mark.parametrize(
    ("clip", "fmt"),
    [("mp4", "mp4"), ("mov", "mov"), ("m4v", "mp4"), ("webm", "webm"), ("mkv", "matroska"),
     ("avi", "avi"), ("ts", "mpegts")],
)
def test_probe_every_video_container(clips: dict[str, Path], clip: str, fmt: str) -> None:
    info = probe.probe(clips[clip])
    assert info.kind == "video" and info.format_name == fmt
    assert (info.width, info.height) == (160, 90)
    assert info.duration_s == pytest.approx(1.0, abs=0.1)
    assert info.audio is not None and info.audio.channels == 1


@pytest.mark.ffmpeg
def test_m4v_brand_is_sniffed_as_mp4(clips: dict[str, Path]) -> None:
    head = clips["m4v"].read_bytes()[:12]
    assert head[4:12] == b"ftypM4V "
    assert probe.sniff(clips["m4v"]) == "mp4"


# --------------------------------------------------------------------------- MediaInfo facts


@pytest.mark.ffmpeg
def test_video_facts(clips: dict[str, Path]) -> None:
    info = probe.probe(clips["mp4"])
    v, a = info.video, info.audio
    assert v is not None and a is not None
    assert (v.codec, v.pix_fmt, v.bit_depth) == ("h264", "yuv420p", 8)
    assert v.profile  # e.g. "Constrained Baseline" for ultrafast
    assert (v.width, v.height, v.display_width, v.display_height) == (160, 90, 160, 90)
    assert v.sar == 1 and v.rotation_deg == 0
    assert v.fps == 25 and v.fps_real == 25 and v.vfr is False
    assert v.hdr is False
    assert info.bitrate_kbps and v.bitrate_kbps and a.bitrate_kbps
    assert (a.codec, a.profile, a.channels, a.sample_rate_hz) == ("aac", "LC", 1, 44100)
    assert info.moov_first is False  # no +faststart asked for


@pytest.mark.parametrize(
    ("name", "checks"),
    [
        ("videos/hlg10-color-test.mp4",
         {"hdr": True, "color_transfer": "arib-std-b67", "color_primaries": "bt2020",
          "bit_depth": 10, "codec": "hevc", "profile": "Main 10"}),
        ("videos/hdr10-av1.mp4", {"hdr": True, "color_transfer": "smpte2084", "codec": "av1"}),
        ("videos/sample_android_slow_motion.mp4", {"vfr": True}),
        ("videos/portrait_4k60.mp4",
         {"rotation_deg": 90, "width": 3840, "height": 2160, "display_width": 2160,
          "display_height": 3840}),
        ("videos/bbb_800x640_768kbps_30fps_avc_2b_firstpts_10_sec.mp4",
         {"display_width": 1136, "display_height": 640}),
    ],
)
@pytest.mark.ffmpeg
def test_video_facts_from_real_files(corpus: Path, name: str, checks: dict[str, object]) -> None:
    info = probe.probe(corpus / name)
    assert info.video is not None
    for key, value in checks.items():
        assert getattr(info.video, key) == value, key


@pytest.mark.ffmpeg
def test_sample_aspect_ratio(corpus: Path) -> None:
    info = probe.probe(corpus / "videos/bbb_800x640_768kbps_30fps_avc_2b_firstpts_10_sec.mp4")
    assert info.video is not None and info.video.sar == pytest.approx(1137 / 800)
    assert info.duration_s == pytest.approx(4.0, abs=0.1)  # not the 14 s the container claims


def test_image_facts_orientation_and_stored_size(corpus: Path) -> None:
    info = probe.probe(corpus / "images/Landscape_6.jpg")
    assert info.image is not None
    assert info.image.exif_orientation == 6
    assert (info.image.stored_width, info.image.stored_height) == (1200, 1800)
    assert (info.width, info.height) == (1800, 1200)  # as displayed


def test_image_facts_icc_gps_frames(corpus: Path) -> None:
    adobe = probe.probe(corpus / "images/xmp_test.jpg").image
    assert adobe is not None and adobe.icc_profile == "Adobe RGB (1998)" and adobe.has_xmp
    motion = probe.probe(corpus / "images/pixel-motion-photo-shortened.jpg").image
    assert motion is not None and motion.has_gps and motion.exif_orientation == 6
    plain = probe.probe(corpus / "images/icc_profile_big.jpg").image
    assert plain is not None and not plain.has_gps and not plain.has_exif
    gif = probe.probe(corpus / "images/iss634.gif")
    assert gif.image is not None and gif.image.frames == 42 and gif.animated
    assert gif.duration_s and gif.duration_s > 1
    deep = probe.probe(corpus / "images/RGBA_16__128x128.png").image
    assert deep is not None and deep.bits == 16 and deep.has_alpha and deep.mode == "RGBA"


def test_heic_facts(corpus: Path) -> None:
    info = probe.probe(corpus / "images/pug.heic")
    assert info.format_name == "heif" and info.image is not None
    assert info.image.icc_profile == "Display P3" and info.image.has_gps


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_damaged_exif_does_not_fail_the_photo(tmp_path: Path) -> None:
    im = Image.new("RGB", (40, 30), "blue")
    buf = io.BytesIO()
    # An APP1 Exif segment with a garbage TIFF header.
    im.save(buf, format="JPEG", exif=b"Exif\x00\x00II*\x00\xff\xff\xff\x7f" + b"\x01" * 20)
    info = probe.probe(_make(tmp_path, "a.jpg", buf.getvalue()))
    assert info.image is not None and info.image.exif_orientation == 1
    assert (info.width, info.height) == (40, 30)


# --------------------------------------------------------------------------- tool hardening


def _fake_tool(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "fake-ffprobe"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return script


@pytest.fixture
def fake_ffprobe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Point FFPROBE_PATH at a script; ffprobe_exe() is cached, so clear it on both sides."""

    def install(body: str) -> Path:
        script = _fake_tool(tmp_path, body)
        monkeypatch.setenv("FFPROBE_PATH", str(script))
        ffmpeg.ffprobe_exe.cache_clear()
        return script

    yield install
    monkeypatch.delenv("FFPROBE_PATH", raising=False)
    ffmpeg.ffprobe_exe.cache_clear()


def test_ffprobe_timeout_kills_the_process(tmp_path: Path, fake_ffprobe) -> None:  # type: ignore[no-untyped-def]
    pidfile = tmp_path / "pid"
    fake_ffprobe(f'echo "stuck reading header" >&2\necho $$ > {pidfile}\nexec sleep 30\n')
    clip = _make(tmp_path, "a.mp4", _ftyp(b"isom", b"isom"))
    started = time.monotonic()
    with pytest.raises(FFmpegTimeout) as info:
        probe.probe(clip, timeout_s=1.0)
    assert time.monotonic() - started < 10
    err = info.value
    assert err.code == "processing_timeout" and not err.retryable  # the same file hangs again
    assert "stuck reading header" in err.stderr_tail
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped, not left running


def test_ffprobe_failure_carries_the_stderr_tail(tmp_path: Path, fake_ffprobe) -> None:  # type: ignore[no-untyped-def]
    fake_ffprobe('echo "moov atom not found (fake)" >&2\nexit 1\n')
    clip = _make(tmp_path, "a.mp4", _ftyp(b"isom", b"isom"))
    with pytest.raises(CorruptMedia) as info:
        probe.probe(clip)
    assert "moov atom not found (fake)" in info.value.message
    assert "moov atom not found (fake)" in str(info.value.details["stderr"])


def test_chatty_ffprobe_cannot_deadlock_the_pipes(tmp_path: Path, fake_ffprobe) -> None:  # type: ignore[no-untyped-def]
    # 4 MB of stderr is far past any pipe buffer; a reader that only waits would hang here.
    fake_ffprobe("head -c 4000000 /dev/zero | tr '\\0' e >&2\n"
                 'echo \'{"streams": [], "format": {}}\'\n')
    clip = _make(tmp_path, "a.mp4", _ftyp(b"isom", b"isom"))
    started = time.monotonic()
    with pytest.raises(CorruptMedia, match="no video stream"):
        probe.probe(clip, timeout_s=20)
    assert time.monotonic() - started < 10


def test_ffprobe_garbage_output_is_corrupt(tmp_path: Path, fake_ffprobe) -> None:  # type: ignore[no-untyped-def]
    fake_ffprobe('echo "[1, 2"\n')
    clip = _make(tmp_path, "a.mp4", _ftyp(b"isom", b"isom"))
    with pytest.raises(CorruptMedia):
        probe.probe(clip)


@pytest.mark.ffmpeg
def test_ffprobe_argv_is_locked_down(tmp_path: Path) -> None:
    path = _make(tmp_path, "-weird:name.mp4", b"x")
    argv = probe.ffprobe_argv(path, "mp4")
    assert argv[argv.index("-protocol_whitelist") + 1] == "file"
    assert argv[argv.index("-f") + 1] == "mov"
    assert argv[-1] == "file:" + str(path.resolve())
    assert "-i" not in argv
    for fmt, demuxer in [("webm", "matroska"), ("matroska", "matroska"), ("avi", "avi"),
                         ("mpegts", "mpegts"), ("mov", "mov")]:
        got = probe.ffprobe_argv(path, fmt)
        assert got[got.index("-f") + 1] == demuxer


@pytest.mark.ffmpeg
@pytest.mark.parametrize("fmt", ["hls", "concat", "jpeg", "svg", ""])
def test_ffprobe_never_guesses_a_demuxer(tmp_path: Path, fmt: str) -> None:
    with pytest.raises(UnsupportedMedia):
        probe.ffprobe_argv(_make(tmp_path, "a.mp4", b"x"), fmt)


# --------------------------------------------------------------------------- conform probe


def test_cli_probe_path_text_and_json(corpus: Path) -> None:
    runner = CliRunner()
    path = corpus / "images/Landscape_6.jpg"
    text = runner.invoke(main, ["probe", str(path)])
    assert text.exit_code == 0, text.output
    assert "1800x1200" in text.stdout and "exif_orientation=6" in text.stdout
    result = runner.invoke(main, ["probe", "--json", str(path)])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["kind"] == "image" and data["format_name"] == "jpeg"
    assert (data["width"], data["height"]) == (1800, 1200)
    assert data["image"]["exif_orientation"] == 6
    assert data["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.ffmpeg
def test_cli_probe_video_json(clips: dict[str, Path]) -> None:
    result = CliRunner().invoke(main, ["probe", "--json", str(clips["mp4"])])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["video"]["codec"] == "h264" and data["video"]["fps"] == "25/1"
    assert data["audio"]["codec"] == "aac" and data["duration_s"] == pytest.approx(1.0, abs=0.1)


def test_cli_probe_library_id(corpus: Path) -> None:
    template = f"file://{corpus}/images/{{id}}"
    result = CliRunner().invoke(main, ["probe", "--json", "--library", template, "iss634.webp"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["image"]["frames"] == 42
    bad = CliRunner().invoke(main, ["probe", "--json", "--library", template, "../SOURCES.md"])
    assert bad.exit_code == 1
    assert json.loads(bad.stdout)["error"]["code"] == "invalid_library_id"


def test_cli_probe_url_needs_the_allow_list(http_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    body = _pillow_bytes("PNG", (20, 10))
    http_server.route("/img", serve_bytes(body, content_type="text/html"))  # lying header
    url = http_server.url("/img")
    runner = CliRunner()
    refused = runner.invoke(main, ["probe", "--json", "--workdir", str(tmp_path), url])
    assert refused.exit_code == 1
    assert json.loads(refused.stdout)["error"]["code"] == "url_not_allowed"
    assert http_server.hits["/img"] == 0
    ok = runner.invoke(main, ["probe", "--json", "--workdir", str(tmp_path),
                              "--allow-network", "127.0.0.0/8", url])
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.stdout)
    assert data["format_name"] == "png" and (data["width"], data["height"]) == (20, 10)
    assert data["sha256"] == hashlib.sha256(body).hexdigest()


def test_cli_probe_errors_are_typed_not_tracebacks(tmp_path: Path) -> None:
    svg = _make(tmp_path, "x.png", b'<svg xmlns="http://www.w3.org/2000/svg"/>')
    result = CliRunner().invoke(main, ["probe", "--json", str(svg)])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # a handled error, not a traceback
    assert json.loads(result.stdout)["error"]["code"] == "unsupported_media"
    assert "error: [unsupported_media]" in result.stderr
    missing = CliRunner().invoke(main, ["probe", str(tmp_path / "nope.jpg")])
    assert missing.exit_code == 1 and "media_not_found" in missing.stderr
    scheme = CliRunner().invoke(main, ["probe", "--json", "gopher://127.0.0.1/x"])
    assert json.loads(scheme.stdout)["error"]["code"] == "url_not_allowed"


@pytest.mark.ffmpeg
def test_cli_probe_applies_the_operators_frame_and_memory_limits(
        clips: dict[str, Path], corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `conform probe` answers as a run would: the limits of the environment apply to it too
    monkeypatch.setenv("CONFORM_MAX_VIDEO_SIDE_PX", "64")
    result = CliRunner().invoke(main, ["probe", "--json", str(clips["mp4"])])
    assert result.exit_code != 0 and "too_large" in result.output
    monkeypatch.setenv("CONFORM_MAX_DECODE_BYTES", "1000")
    result = CliRunner().invoke(main, ["probe", "--json", str(corpus / "images/Landscape_6.jpg")])
    assert result.exit_code != 0 and "too_large" in result.output


def _aac_clip(path: Path, *extra: str) -> Path:
    ffmpeg.run([*ffmpeg.ffmpeg_head("-v", "error", "-y"), "-f", "lavfi", "-i",
                "testsrc2=s=64x64:r=30:d=1", "-f", "lavfi", "-i", "sine=r=48000:d=1",
                "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", *extra, str(path)],
               timeout_s=60)
    return path


@pytest.mark.ffmpeg
def test_audio_priming_is_read_only_where_an_edit_list_can_hide_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    real = ffmpeg.run

    def spy(args: list[str], **kwargs: object) -> ffmpeg.Completed:
        calls.append(args)
        return real(args, **kwargs)  # type: ignore[arg-type]

    hidden = _aac_clip(tmp_path / "hidden.mp4")  # the muxer hides the AAC priming: elst
    plain = _aac_clip(tmp_path / "plain.mp4", "-use_editlist", "0")  # as our outputs are
    monkeypatch.setattr(ffmpeg, "run", spy)
    with_list = probe.probe(hidden)
    asked = len(calls)
    without = probe.probe(plain)
    assert with_list.edit_list and not without.edit_list
    assert with_list.audio is not None and without.audio is not None
    assert with_list.audio.priming_s == pytest.approx(1024 / 48000, abs=1e-4)
    assert without.audio.priming_s == 0.0
    # the first audio packet is looked up for the edit list's file only
    assert [any("-read_intervals" in a for a in c) for c in calls] == (
        [False] * (asked - 1) + [True] + [False] * (len(calls) - asked))


@pytest.mark.ffmpeg
def test_our_own_output_is_scanned_while_its_streams_are_probed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clip = _aac_clip(tmp_path / "out.mp4", "-use_editlist", "0")
    alone = probe.probe(clip)
    scanning = threading.Event()
    real = ffmpeg.run

    def spy(args: list[str], **kwargs: object) -> ffmpeg.Completed:
        if "-show_entries" in args and "packet=pts_time,dts_time,duration_time,flags" in args:
            scanning.set()
        elif "-show_streams" in args:  # the stream probe waits until the scan has started
            scanning.wait(timeout=3)
        return real(args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ffmpeg, "run", spy)
    assert probe.probe(clip, own_output=True) == alone
    assert scanning.is_set()
    scanning.clear()
    started = time.monotonic()
    assert probe.probe(clip) == alone  # a source's scan still waits for the header checks
    assert time.monotonic() - started >= 2.9
