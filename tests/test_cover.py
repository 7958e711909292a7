"""Covers: the exact frame of the delivered video, thumbnails platforms accept, `conform cover`.

The clips here paint every frame one solid colour that encodes its frame number (three base-5
digits, one per RGB channel, levels 0/64/128/191/255), so the mean colour of a cover says which
frame it is, with no golden files, even after scaling, padding and JPEG. The frame a viewer
sees at a time is the last one that starts at or before it; tests read the delivered file's
frame times with ffprobe and compare.
"""

from __future__ import annotations

import functools
import io
import json
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image, ImageChops, ImageCms, ImageOps, ImageStat

from pipeline import cover
from pipeline.cli import main
from pipeline.errors import FFmpegError, ThumbnailInvalid, UnsupportedMedia, ValidationFailed
from pipeline.job import parse_job
from pipeline.models import CoverChoice, MediaInfo, MediaRef
from pipeline.plan import CoverTarget, plan_cover
from pipeline.presets import load_presets
from pipeline.probe import probe, setup_pillow
from pipeline.runner import process
from pipeline.settings import Settings
from pipeline.validate import check_account
from tests.factories import image_info, video_info

PRESETS = load_presets()
LEVEL = 255 / 4
WHITE = (255, 255, 255)


# --------------------------------------------------------------------------- helpers


def _ffmpeg(*args: str) -> None:
    proc = subprocess.run(["ffmpeg", "-hide_banner", "-v", "error", "-y", *args],
                          capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]


def make_indexed_clip(out: Path, *, width: int = 320, height: int = 180, seconds: float = 3.0,
                      fps: int = 30, marker: bool = False, black_until_s: float | None = None,
                      audio_s: float | None = None, rotate: int | None = None) -> Path:
    """A clip whose frame N is one solid colour encoding N (see the module docstring).

    ``marker``: only the left half carries the colour, the right half is white, so a cover
    shows which way the picture was turned. ``black_until_s``: black frames until then.
    ``audio_s``: a sine track of that length (longer than the video: the picture ends first).
    ``rotate``: a display-matrix rotation written on remux (the pixels stay as they are).
    """
    exprs = []
    for channel, div in (("r", 1), ("g", 5), ("b", 25)):
        e = f"{LEVEL}*mod(floor((N+1)/{div})\\,5)"
        if black_until_s is not None:
            e = f"if(lt(T\\,{black_until_s})\\,0\\,{e})"
        if marker:
            e = f"if(lt(X\\,W/2)\\,{e}\\,255)"
        exprs.append(f"{channel}='{e}'")
    # geq evaluates per pixel: paint an 8x8 picture and blow it up (nearest neighbour keeps
    # the solid colours and the half split exact).
    graph = (f"color=c=black:s=8x8:r={fps}:d={seconds},format=gbrp,geq={':'.join(exprs)},"
             f"scale={width}:{height}:flags=neighbor,setsar=1")
    args = ["-f", "lavfi", "-i", graph]
    if audio_s is not None:
        args += ["-f", "lavfi", "-i", f"sine=f=440:d={audio_s}:r=48000", "-c:a", "aac", "-ac", "2"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", str(fps),
             "-movflags", "+faststart"]
    if rotate is None:
        _ffmpeg(*args, str(out))
        return out
    plain = out.with_name("plain-" + out.name)
    _ffmpeg(*args, str(plain))
    _ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:v:0", f"rotate={rotate}", str(out))
    plain.unlink()
    return out


def mean_rgb(img: Image.Image, box: tuple[float, float, float, float] = (0.3, 0.3, 0.7, 0.7)
             ) -> tuple[float, float, float]:
    """Mean colour of a region given as fractions of the image (left, top, right, bottom)."""
    w, h = img.size
    region = img.convert("RGB").crop((round(box[0] * w), round(box[1] * h),
                                      round(box[2] * w), round(box[3] * h)))
    r, g, b = ImageStat.Stat(region).mean
    return r, g, b


def index_of(colour: tuple[float, float, float]) -> int:
    """The frame number a solid index colour encodes; fails on a colour that is not one."""
    digits = [round(v / LEVEL) for v in colour]
    assert all(abs(v - d * LEVEL) < 24 for v, d in zip(colour, digits, strict=True)), (
        f"{colour} is not an index colour")
    return digits[0] + 5 * digits[1] + 25 * digits[2] - 1


def frame_times(video: Path) -> list[float]:
    """Presentation times of every frame, relative to the file's start."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "frame=best_effort_timestamp_time:format=start_time", "-of", "json", str(video)],
        capture_output=True, check=True, text=True).stdout
    data = json.loads(out)
    start = float(data.get("format", {}).get("start_time", 0) or 0)
    return [float(f["best_effort_timestamp_time"]) - start for f in data["frames"]]


def shown_at(times: list[float], at_ms: int) -> int:
    """Index of the frame a player shows at ``at_ms``: the last starting at or before it."""
    return max(i for i, t in enumerate(times) if t <= at_ms / 1000 + 1e-6)


def file_of(uri: str) -> Path:
    assert uri.startswith("file://")
    return Path(uri[len("file://"):])


def settings_for(tmp_path: Path, library: Path, **extra: Any) -> Settings:
    (tmp_path / "work").mkdir(exist_ok=True)
    return Settings(workdir=tmp_path / "work", library=f"file://{library}/{{id}}",
                    dest=str(tmp_path / "out"), x264_preset="ultrafast").replace(**extra)


def run_job(settings: Settings, content: list[dict[str, Any]],
            accounts: list[dict[str, Any]]) -> dict[str, Any]:
    job = parse_job({"workspace_id": "w", "content": content, "accounts": accounts}, PRESETS)
    manifest = process(job, settings=settings, presets=PRESETS)
    data: dict[str, Any] = manifest.to_dict()
    return data


def account(m: dict[str, Any], account_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(a for a in m["accounts"] if a["account_id"] == account_id)
    return found


@pytest.fixture(scope="module")
def clip30(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, MediaInfo]:
    """3 s at 30 fps, 320x180: frame N starts at exactly N/30 s."""
    path = make_indexed_clip(tmp_path_factory.mktemp("clip30") / "clip.mp4")
    return path, probe(path)


# --------------------------------------------------------------------------- argv (no ffmpeg)


def test_frame_args_seek_on_the_input_side_and_select_the_frame_shown() -> None:
    args = cover.frame_args(Path("/v/delivered.mp4"), Path("/w/f.png"), at_ms=90_000,
                            lookback_ms=67.7, frame_ms=33.3, demuxer="mov")
    # -ss before -i: the demuxer seeks to the keyframe before the time (cost independent of
    # the position); -copyts keeps the file's times for the comparison in select.
    assert args.index("-ss") < args.index("-i")
    assert args[args.index("-ss") + 1] == "89.932"
    assert "-copyts" in args and args.index("-copyts") < args.index("-i")
    vf = args[args.index("-vf") + 1]
    assert vf.startswith("trim=end=90.06")  # stop decoding two frames later, not at the end
    assert "select='lte(t\\,90.000001)'" in vf
    assert args[args.index("-update") + 1] == "1"
    assert args[args.index("-fps_mode") + 1] == "passthrough"
    assert args[-1] == "/w/f.png"
    assert args[args.index("-protocol_whitelist") + 1] == "file"


def test_frame_args_cost_does_not_depend_on_position() -> None:
    """At 10 % and 90 % of a long clip the commands differ only in their times."""
    def shape(at_ms: int) -> list[str]:
        args = cover.frame_args(Path("/v.mp4"), Path("/f.png"), at_ms=at_ms, lookback_ms=70,
                                frame_ms=33.3)
        return [a if not a[:1].isdigit() else "T" for a in args[1:]
                if "trim" not in a and "select" not in a]
    assert shape(60_000) == shape(540_000)


def test_frame_args_scale_non_square_pixels_to_display_size() -> None:
    args = cover.frame_args(Path("/v.mp4"), Path("/f.png"), at_ms=0, lookback_ms=70,
                            frame_ms=33.3, scale_to=(1138, 640))
    assert "scale=1138:640:flags=bicubic,setsar=1" in args[args.index("-vf") + 1]


# --------------------------------------------------------------------------- exact frames


@pytest.mark.ffmpeg
@pytest.mark.parametrize("at_ms", [0, 1, 33, 34, 50, 1000, 1499, 1500, 1501, 2966, 2967, 2999])
def test_frame_is_the_one_shown_at_the_timestamp(clip30: tuple[Path, MediaInfo], tmp_path: Path,
                                                 at_ms: int) -> None:
    path, info = clip30
    result = cover.cover_at(path, info, at_ms, tmp_path, timeout_s=60)
    with Image.open(result.path) as im:
        assert im.format == "JPEG" and im.size == (320, 180)
        got = index_of(mean_rgb(im))
    # frame N starts at N/30 s: 33 ms still shows frame 0, 34 ms frame 1; 2966 ms frame 88
    # (frame 89 starts at 2966.67 ms); the last millisecond shows the last frame.
    assert got == shown_at(frame_times(path), at_ms)
    assert got == int(at_ms * 30 / 1000 + 1e-9)
    assert result.warnings == ()


@pytest.mark.ffmpeg
@pytest.mark.parametrize("at_ms", [-1, 3000, 10_000])
def test_timestamp_outside_the_video_is_out_of_range(clip30: tuple[Path, MediaInfo],
                                                     tmp_path: Path, at_ms: int) -> None:
    path, info = clip30
    with pytest.raises(ValidationFailed) as err:
        cover.cover_at(path, info, at_ms, tmp_path, timeout_s=60)
    assert err.value.code == "cover_timestamp_out_of_range"


@pytest.mark.ffmpeg
def test_picture_that_ends_before_the_audio(tmp_path: Path) -> None:
    """1 s of picture in a 4 s file: a player shows the last frame for a while; 2 s after the
    picture ended the time is out of range for the video track."""
    path = make_indexed_clip(tmp_path / "short-video.mp4", seconds=1.0, audio_s=4.0)
    info = probe(path)
    assert (info.duration_ms or 0) >= 3900
    result = cover.cover_at(path, info, 1500, tmp_path, timeout_s=60)
    with Image.open(result.path) as im:
        assert index_of(mean_rgb(im)) == len(frame_times(path)) - 1
    with pytest.raises(ValidationFailed) as err:
        cover.cover_at(path, info, 3500, tmp_path, timeout_s=60)
    assert err.value.code == "cover_timestamp_out_of_range"


@pytest.mark.ffmpeg
def test_picture_that_starts_after_the_audio(tmp_path: Path) -> None:
    """The picture starts 0.5 s into the file: until then a player shows the first frame."""
    video = make_indexed_clip(tmp_path / "v.mp4", seconds=2.0)
    path = tmp_path / "late.mp4"
    _ffmpeg("-itsoffset", "0.5", "-i", str(video), "-f", "lavfi", "-i", "sine=d=3:r=48000",
            "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", str(path))
    info = probe(path)
    times = frame_times(path)
    assert times[0] == pytest.approx(0.5)
    for at_ms in (0, 499, 500, 534):
        result = cover.cover_at(path, info, at_ms, tmp_path, timeout_s=60)
        with Image.open(result.path) as im:
            assert index_of(mean_rgb(im)) == (shown_at(times, at_ms) if at_ms >= 500 else 0)


@pytest.mark.ffmpeg
def test_black_frame_is_delivered_with_a_warning(tmp_path: Path) -> None:
    path = make_indexed_clip(tmp_path / "fade-in.mp4", black_until_s=1.0)
    info = probe(path)
    black = cover.cover_at(path, info, 500, tmp_path, timeout_s=60)
    assert black.path.is_file() and len(black.warnings) == 1
    with Image.open(black.path) as im:
        assert max(mean_rgb(im, (0, 0, 1, 1))) < 8
    lit = cover.cover_at(path, info, 1500, tmp_path, timeout_s=60)
    assert lit.warnings == ()


@pytest.mark.ffmpeg
def test_not_a_video_has_no_frame(tmp_path: Path) -> None:
    png = tmp_path / "still.png"
    Image.new("RGB", (64, 64), (10, 200, 10)).save(png)
    with pytest.raises(UnsupportedMedia):
        cover.cover_at(png, probe(png), 0, tmp_path, timeout_s=60)


# --------------------------------------------------------------------------- through the runner


@pytest.fixture(scope="module")
def turned_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stored 320x240 with a 90-degree display rotation: shown 240x320 (3:4), which TikTok
    gets rotated, scaled and blur-padded to 9:16. The coloured half says which way is up."""
    lib = tmp_path_factory.mktemp("turned")
    return make_indexed_clip(lib / "turned.mp4", width=320, height=240, seconds=3.5,
                             marker=True, rotate=90)


def _coloured_half(source: Path, tmp: Path) -> str:
    """Which half ("top" or "bottom") of the upright picture carries the index colour, as
    ffmpeg's own autorotate (the reference player) shows the source."""
    png = tmp / "upright.png"
    _ffmpeg("-i", str(source), "-frames:v", "1", str(png))
    with Image.open(png) as im:
        top, bottom = mean_rgb(im, (0, 0, 1, 0.5)), mean_rgb(im, (0, 0.5, 1, 1))
    assert min(top) > 235 or min(bottom) > 235, "the source is not shown turned"
    return "bottom" if min(top) > 235 else "top"


def _assert_cover_is_delivered_frame(cov: dict[str, Any], video: dict[str, Any], at_ms: int,
                                     coloured: str) -> None:
    delivered = file_of(video["uri"])
    assert cov["timestamp_ms"] == at_ms and cov["mime"] == "image/jpeg"
    assert (cov["width"], cov["height"]) == (video["width"], video["height"])
    with Image.open(file_of(cov["uri"])) as im:
        assert im.format == "JPEG" and im.size == (video["width"], video["height"])
        assert file_of(cov["uri"]).stat().st_size == cov["bytes"]
        # Upright: the source's left (coloured) half and its white right half are now one
        # above the other, inside the centred content band of the blurred fill.
        top = mean_rgb(im, (0.3, 0.35, 0.7, 0.45))
        bottom = mean_rgb(im, (0.3, 0.55, 0.7, 0.65))
        colour, white = (top, bottom) if coloured == "top" else (bottom, top)
        assert min(white) > 235, white
        assert index_of(colour) == shown_at(frame_times(delivered), at_ms)


@pytest.mark.ffmpeg
def test_tiktok_cover_is_the_delivered_frame_after_rotation_and_padding(
        tmp_path: Path, turned_clip: Path) -> None:
    settings = settings_for(tmp_path, turned_clip.parent)
    coloured = _coloured_half(turned_clip, tmp_path)
    m = run_job(settings, [{"media": ["turned.mp4"],
                            "cover_image": {"video_cover_timestamp_ms": 1234}}],
                [{"id": "tt", "platform": "tiktok"}])
    tt = account(m, "tt")
    assert tt["status"] == "ok", tt["errors"]
    video = tt["media"][0]
    assert {"rotated", "blurred"} <= set(video["actions"])
    assert video["height"] * 9 == video["width"] * 16
    assert tt["cover"]["source"] == "video_cover_timestamp_ms"
    _assert_cover_is_delivered_frame(tt["cover"], video, 1234, coloured)

    # Re-run with another time: the video is reused from storage (not on local disk), and
    # the frame must still come from the delivered file, not from the source.
    m2 = run_job(settings, [{"media": ["turned.mp4"],
                             "cover_image": {"video_cover_timestamp_ms": 3499}}],
                 [{"id": "tt", "platform": "tiktok"}])
    tt2 = account(m2, "tt")
    assert tt2["status"] == "ok", tt2["errors"]
    assert "reused" in tt2["media"][0]["actions"]
    assert tt2["cover"]["uri"] != tt["cover"]["uri"]
    _assert_cover_is_delivered_frame(tt2["cover"], tt2["media"][0], 3499, coloured)

    # The same request again reuses the stored cover too.
    m3 = run_job(settings, [{"media": ["turned.mp4"],
                             "cover_image": {"video_cover_timestamp_ms": 3499}}],
                 [{"id": "tt", "platform": "tiktok"}])
    assert account(m3, "tt")["cover"] == tt2["cover"]


@pytest.mark.ffmpeg
@pytest.mark.s3
def test_reused_video_is_fetched_back_from_s3_for_a_new_cover(
        tmp_path: Path, turned_clip: Path, s3_server: Any, s3_bucket: str) -> None:
    settings = settings_for(tmp_path, turned_clip.parent, dest=f"s3://{s3_bucket}/conform")
    coloured = _coloured_half(turned_clip, tmp_path)
    client = s3_server.client()

    def download(uri: str) -> Path:
        prefix = f"s3://{s3_bucket}/"
        assert uri.startswith(prefix)
        local = tmp_path / uri.rsplit("/", 2)[-2] / uri.rsplit("/", 1)[-1]
        local.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(s3_bucket, uri[len(prefix):], str(local))
        return local

    for at_ms, reused in ((600, False), (2900, True)):
        m = run_job(settings, [{"media": ["turned.mp4"],
                                "cover_image": {"video_cover_timestamp_ms": at_ms}}],
                    [{"id": "tt", "platform": "tiktok"}])
        tt = account(m, "tt")
        assert tt["status"] == "ok", tt["errors"]
        assert ("reused" in tt["media"][0]["actions"]) == reused
        video = {**tt["media"][0], "uri": "file://" + str(download(tt["media"][0]["uri"]))}
        cov = {**tt["cover"], "uri": "file://" + str(download(tt["cover"]["uri"]))}
        _assert_cover_is_delivered_frame(cov, video, at_ms, coloured)


@pytest.mark.ffmpeg
def test_black_cover_frame_warns_in_the_manifest(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    make_indexed_clip(lib / "dark.mp4", width=360, height=640, seconds=3.2, black_until_s=1.0)
    m = run_job(settings_for(tmp_path, lib),
                [{"media": ["dark.mp4"], "cover_image": {"video_cover_timestamp_ms": 400}}],
                [{"id": "tt", "platform": "tiktok"}])
    tt = account(m, "tt")
    assert tt["status"] == "ok" and tt["cover"]["timestamp_ms"] == 400
    assert file_of(tt["cover"]["uri"]).is_file()
    assert any("black" in w for w in tt["warnings"])
    assert "warnings" not in tt["cover"]


@pytest.mark.ffmpeg
def test_cover_fails_with_its_video(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    make_indexed_clip(lib / "clip.mp4", width=360, height=640, seconds=3.2)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise FFmpegError(["ffmpeg", "-i", "clip.mp4"], 1, "Conversion failed!")

    monkeypatch.setattr("pipeline.video.render_video", broken)
    m = run_job(settings_for(tmp_path, lib),
                [{"media": ["clip.mp4"], "cover_image": {"video_cover_timestamp_ms": 400}}],
                [{"id": "tt", "platform": "tiktok"}])
    tt = account(m, "tt")
    assert tt["status"] == "failed" and tt["media"] == [] and tt["cover"] is None
    # the video's own error, and the cover's (same code: not made without its video)
    assert [e["code"] for e in tt["errors"]] == ["processing_failed", "processing_failed"]
    assert tt["errors"][0].get("media_index") == 0
    assert "media_index" not in tt["errors"][1]


# --------------------------------------------------------------------------- thumbnails


# Every platform for the cheap files; the HEIC photos (a second each to decode) where they
# matter most: Display P3 into Instagram's sRGB, the irot-rotated arrow into 16:9 and 9:16.
CORPUS_CASES = [
    *((name, key) for name in ("Landscape_6.jpg", "pil_sample_cmyk.jpg", "RGBA_16__128x128.png")
      for key in ("youtube", "instagram-reels", "facebook-feed", "facebook-reels")),
    ("pug.heic", "instagram-reels"), ("pug.heic", "facebook-feed"),
    ("arrow.heic", "youtube"), ("arrow.heic", "facebook-reels"),
]
# (platform, settings, delivered video size)
THUMB_PLATFORMS = {
    "youtube": ("youtube", {}, (1920, 1080)),
    "instagram-reels": ("instagram", {"post_type": "REELS"}, (1080, 1920)),
    "facebook-feed": ("facebook", {}, (1080, 1350)),
    "facebook-reels": ("facebook", {"post_type": "REELS"}, (1080, 1920)),
}


def _choice(platform: str, settings: dict[str, str], video_size: tuple[int, int],
            thumb: MediaInfo) -> CoverChoice:
    job = parse_job({"workspace_id": "w", "content": [
        {"media": ["v"], "cover_image": {"thumbnail": "t"}}],
        "accounts": [{"id": "a", "platform": platform, "settings": settings}]}, PRESETS)
    preset = PRESETS.get(platform)
    assert preset is not None
    probed = {MediaRef("library", "v"): video_info(*video_size, duration_s=8.0),
              MediaRef("library", "t"): thumb}
    check = check_account(job, job.accounts[0], preset, probed)
    assert check.ok and check.cover is not None, check.errors
    return check.cover


@functools.cache
def _upright_rgb(src: Path) -> Image.Image:
    """The source as a viewer sees it (EXIF orientation applied, in sRGB), at most 1024 px."""
    with Image.open(src) as im:
        im.load()
        icc = im.info.get("icc_profile")
        upright = ImageOps.exif_transpose(im) or im
        upright.thumbnail((1024, 1024), Image.Resampling.BOX)
        if icc and upright.mode == "RGB":
            srgb = ImageCms.createProfile("sRGB")
            src_profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(upright, src_profile, srgb)
            assert converted is not None
            upright = converted
        if upright.mode in ("RGBA", "LA", "P", "PA", "I;16"):
            upright = upright.convert("RGBA")
            flat = Image.new("RGB", upright.size, WHITE)
            flat.paste(upright, mask=upright.getchannel("A"))
            return flat
        return upright.convert("RGB")


def _content_box(size: tuple[int, int], src: tuple[int, int]) -> tuple[int, int, int, int]:
    """Where a blur-padded source sits on a cover: fitted and centred."""
    w, h = size
    scale = min(w / src[0], h / src[1])
    cw, ch = round(src[0] * scale), round(src[1] * scale)
    return (w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch


def assert_platform_accepts(key: str, path: Path, video_size: tuple[int, int]) -> None:
    """The platform's own thumbnail rules (platform-specs.md), checked on the file."""
    size = path.stat().st_size
    with Image.open(path) as im:
        w, h = im.size
        fmt, mode = im.format, im.mode
        exif_orientation = im.getexif().get(0x0112, 1)
        icc = im.info.get("icc_profile")
    assert mode == "RGB" and exif_orientation == 1 and icc is None  # sRGB by definition
    if key == "youtube":  # JPEG/PNG, 16:9, 1280x720 max (min width 640), <= 2 MB
        assert fmt in ("JPEG", "PNG") and size <= 2_000_000
        assert 640 <= w <= 1280 and h <= 720 and abs(w / h - 16 / 9) < 0.01
    elif key == "instagram-reels":  # JPEG, 9:16, <= 8 MB, sRGB
        assert fmt == "JPEG" and size <= 8_000_000
        assert w <= 1080 and h <= 1920 and abs(w / h - 9 / 16) < 0.01
    else:  # Facebook: JPEG/PNG, <= 10 MB, the video's aspect ratio
        assert fmt in ("JPEG", "PNG") and size <= 10_000_000
        assert abs(w / h - video_size[0] / video_size[1]) < 0.01 * video_size[0] / video_size[1]


@functools.cache
def _probe_image(src: Path) -> MediaInfo:
    setup_pillow(400_000_000)
    return probe(src)


@pytest.mark.ffmpeg
@pytest.mark.parametrize(("name", "platform_key"), CORPUS_CASES)
def test_corpus_thumbnail_conforms(corpus: Path, tmp_path: Path, name: str,
                                   platform_key: str) -> None:
    src = corpus / "images" / name
    info = _probe_image(src)
    platform, settings, video_size = THUMB_PLATFORMS[platform_key]
    choice = _choice(platform, settings, video_size, info)
    target = plan_cover(choice, None, info)
    result = cover.make_thumbnail_cover(src, info, target, tmp_path)
    assert_platform_accepts(platform_key, result.path, video_size)
    assert result.mime == "image/jpeg"
    with Image.open(result.path) as out:
        assert out.size == (result.width, result.height) == (target.width, target.height)
        # Big sources fill the platform's box exactly; small ones are not blown up (except
        # to YouTube's 640 px minimum width).
        if min(info.width, info.height) >= 1920:
            assert max(out.size) == (1280 if platform == "youtube" else 1920)
        # The picture sits upright and in sRGB in the middle of the blurred fill.
        box = _content_box(out.size, (info.width, info.height))
        content = out.convert("RGB").crop(box)
    # Compared as 12x12 cell means (inside a 10 % margin), so resampling and JPEG edges do
    # not count but a turned, mirrored, inverted or colour-shifted picture does.
    ref = _upright_rgb(src).resize(content.size, Image.Resampling.BILINEAR)
    inner = (content.size[0] // 10, content.size[1] // 10,
             content.size[0] * 9 // 10, content.size[1] * 9 // 10)
    cells = [im.crop(inner).resize((12, 12), Image.Resampling.BOX) for im in (content, ref)]
    diff = ImageStat.Stat(ImageChops.difference(*cells)).mean
    assert max(diff) < 10, f"{name} -> {platform_key}: mean difference {diff}"


@pytest.mark.ffmpeg
def test_thumbnail_alpha_is_flattened_on_white_for_youtube(tmp_path: Path) -> None:
    src = tmp_path / "logo.png"
    im = Image.new("RGBA", (1600, 900), (0, 0, 0, 0))
    im.paste(Image.new("RGBA", (800, 900), (200, 30, 30, 255)), (800, 0))
    im.save(src)
    info = probe(src)
    target = plan_cover(_choice("youtube", {}, (1920, 1080), info), None, info)
    result = cover.make_thumbnail_cover(src, info, target, tmp_path)
    assert_platform_accepts("youtube", result.path, (1920, 1080))
    with Image.open(result.path) as out:
        assert out.size == (1280, 720)
        assert min(mean_rgb(out, (0.1, 0.2, 0.4, 0.8))) > 245            # transparent: white
        r, g, b = mean_rgb(out, (0.6, 0.2, 0.9, 0.8))
        assert r > 180 and g < 60 and b < 60                            # opaque: red


def test_thumbnail_shape_follows_the_preset_policy() -> None:
    """Crop as an option: the cover is filled by the picture, not by a blurred fill."""
    thumb = image_info(1600, 1600)
    blur = plan_cover(_choice("youtube", {}, (1920, 1080), thumb), None, thumb)
    assert (blur.width, blur.height, blur.fit) == (1280, 720, "blur")
    small = image_info(400, 300)
    tiny = plan_cover(_choice("youtube", {}, (1920, 1080), small), None, small)
    assert (tiny.width, tiny.height) == (640, 360)  # YouTube's minimum width, 16:9
    ig = plan_cover(_choice("instagram", {"post_type": "REELS"}, (1080, 1920), thumb), None,
                    thumb)
    assert (ig.width, ig.height, ig.format) == (1080, 1920, "jpeg")
    fb = plan_cover(_choice("facebook", {}, (1920, 1080), thumb), None, thumb)
    assert (fb.width, fb.height) == (1920, 1080)  # the video's shape; the square fits inside
    fb_small = plan_cover(_choice("facebook", {}, (1920, 1080), small), None, small)
    assert (fb_small.width, fb_small.height) == (533, 300)  # not blown up past its own height
    fb_reel = plan_cover(_choice("facebook", {"post_type": "REELS"}, (1080, 1920), thumb),
                         None, thumb)
    assert fb_reel.width * 16 == fb_reel.height * 9


@pytest.mark.ffmpeg
def test_thumbnail_crop_policy_fills_the_cover(tmp_path: Path) -> None:
    src = tmp_path / "square.png"
    im = Image.new("RGB", (1000, 1000), (20, 20, 200))
    im.paste(Image.new("RGB", (1000, 200), (250, 250, 20)), (0, 0))   # a yellow top band
    im.save(src)
    info = probe(src)
    choice = _choice("youtube", {}, (1920, 1080), info)
    crop = plan_cover(replace(choice, spec=replace(choice.spec, fit="crop")), None, info)
    assert crop.fit == "crop"
    result = cover.make_thumbnail_cover(src, info, crop, tmp_path)
    with Image.open(result.path) as out:
        # cropped to 16:9 without blowing the 1000 px wide picture up
        assert out.size == (crop.width, crop.height) == (1000, 562)
        # a centre crop of a square to 16:9 cuts the yellow top band away: all blue
        r, g, b = mean_rgb(out, (0.02, 0.02, 0.98, 0.98))
        assert b > 180 and r < 60 and g < 60


@pytest.mark.ffmpeg
def test_undecodable_thumbnail_is_thumbnail_invalid(corpus: Path, tmp_path: Path) -> None:
    src = corpus / "images" / "truncated_jpeg.jpg"
    info = image_info(64, 64)  # what a header-only probe could have said
    target = plan_cover(_choice("youtube", {}, (1920, 1080), info), None, info)
    with pytest.raises(ThumbnailInvalid):
        cover.make_thumbnail_cover(src, info, target, tmp_path)


def test_video_as_thumbnail_is_thumbnail_invalid(tmp_path: Path) -> None:
    target = CoverTarget("image", None, "jpeg", 1280, 720, "blur", 2_000_000, 640)
    with pytest.raises(ThumbnailInvalid):
        cover.make_thumbnail_cover(tmp_path / "v.mp4", video_info(), target, tmp_path)


@pytest.mark.ffmpeg
@pytest.mark.parametrize("thumbnail", ["clip.mp4", "notes.txt", "truncated.jpg"])
def test_bad_thumbnail_through_the_runner(tmp_path: Path, corpus: Path, thumbnail: str) -> None:
    """A video, text, or a cut-off JPEG as thumbnail: thumbnail_invalid for YouTube only."""
    lib = tmp_path / "lib"
    lib.mkdir()
    make_indexed_clip(lib / "clip.mp4", width=360, height=640, seconds=3.2)
    (lib / "notes.txt").write_text("this is not an image\n" * 20)
    (lib / "truncated.jpg").write_bytes((corpus / "images" / "truncated_jpeg.jpg").read_bytes())
    m = run_job(settings_for(tmp_path, lib),
                [{"media": ["clip.mp4"],
                  "cover_image": {"thumbnail": thumbnail, "video_cover_timestamp_ms": 500}}],
                [{"id": "yt", "platform": "youtube"}, {"id": "tt", "platform": "tiktok"}])
    yt, tt = account(m, "yt"), account(m, "tt")
    assert yt["status"] == "failed" and yt["cover"] is None
    assert [e["code"] for e in yt["errors"]] == ["thumbnail_invalid"]
    assert yt["errors"][0]["http_status"] == 400
    assert tt["status"] == "ok" and tt["cover"]["timestamp_ms"] == 500


# --------------------------------------------------------------------------- conform cover


@pytest.mark.ffmpeg
def test_cli_cover_writes_the_frame(clip30: tuple[Path, MediaInfo], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = clip30
    out = tmp_path / "pick.jpg"
    result = CliRunner().invoke(main, ["cover", str(path), "--at-ms", "1750", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["out"] == str(out) and data["timestamp_ms"] == 1750
    assert (data["width"], data["height"], data["mime"]) == (320, 180, "image/jpeg")
    assert data["bytes"] == out.stat().st_size and data["warnings"] == []
    with Image.open(out) as im:
        assert index_of(mean_rgb(im)) == 52  # 1750 ms * 30 fps = frame 52.5: frame 52 shows

    monkeypatch.chdir(tmp_path)
    default = CliRunner().invoke(main, ["cover", str(path), "--at-ms", "0"])
    assert default.exit_code == 0, default.stderr
    assert Path(json.loads(default.stdout)["out"]) == tmp_path / "clip-0ms.jpg"
    assert (tmp_path / "clip-0ms.jpg").is_file()


@pytest.mark.ffmpeg
def test_cli_cover_errors(clip30: tuple[Path, MediaInfo], tmp_path: Path) -> None:
    path, _ = clip30
    late = CliRunner().invoke(main, ["cover", str(path), "--at-ms", "3000",
                                     "--out", str(tmp_path / "x.jpg")])
    assert late.exit_code == 1 and late.stdout == ""
    assert "cover_timestamp_out_of_range" in late.stderr
    assert not (tmp_path / "x.jpg").exists()
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    bad = CliRunner().invoke(main, ["cover", str(text), "--at-ms", "0"])
    assert bad.exit_code == 1 and "unsupported_media" in bad.stderr
