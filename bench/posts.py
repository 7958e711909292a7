"""The cost mix of posts, the naive per-account pipeline, and memory over a long batch.

The cost mix (run by :mod:`bench.cost`) is a realistic set of posts from the real-world
corpus (``../shared/corpus``, see its SOURCES.md): phone videos (Pixel 7 1080p, a 4K60
portrait phone capture, an HDR10 HEVC clip; each looped by stream copy to a post's length),
HEIC and JPEG photos and a carousel, each to a typical set of accounts. The naive side (used by
``cost --stages``) does what schedulers do today: every account's media on its own, one ffmpeg
per video and account (scale and pad to the platform's frame, libx264 ``medium`` CRF 23, AAC),
and Pillow per image and account (orient, fit, JPEG 90) in one Python process.

``longbatch`` runs many small jobs through ``conform batch --workers 2`` and samples the
parent's RSS and open file descriptors as jobs finish; afterwards no work folder or temporary
file may be left.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from . import media
from .measure import BenchError, run_process
from .scenarios import TIKTOK, Ctx, Row, _judge, _quick_note, last_line

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"

# (name in the library, corpus file, seconds of the post: the clip is looped to it)
VIDEOS = [("phone-1080p.mp4", "videos/pixel7_videoOnly_cleaned.mp4", 6),
          ("phone-4k60.mp4", "videos/portrait_4k60.mp4", 4),
          ("phone-hdr10.mp4", "videos/hdr10-video-with-sdr-container.mp4", 5)]
PHOTOS = ["images/pug.heic", "images/cat.hif", "images/ultraHDR.jpg", "images/xmp_test.jpg",
          "images/Landscape_6.jpg"]

VIDEO_ACCOUNTS: list[dict[str, Any]] = [
    TIKTOK,
    {"id": "ig-reels", "platform": "instagram", "settings": {"post_type": "REELS"}},
    {"id": "yt-short", "platform": "youtube", "settings": {"video_type": "short"}},
    {"id": "fb-reels", "platform": "facebook", "settings": {"post_type": "REELS"}},
    {"id": "x", "platform": "x"},
    {"id": "li", "platform": "linkedin"},
]
PHOTO_ACCOUNTS: list[dict[str, Any]] = [
    {"id": "ig", "platform": "instagram"},
    {"id": "fb", "platform": "facebook"},
    {"id": "x", "platform": "x"},
    {"id": "li", "platform": "linkedin"},
    {"id": "threads", "platform": "threads"},
]
# What a naive scheduler scales each account's media to (video frame, image box).
NAIVE_VIDEO = {"tt": (1080, 1920, True), "ig-reels": (1080, 1920, True),
               "yt-short": (1080, 1920, True), "fb-reels": (1080, 1920, True),
               "x": (1280, 720, False), "li": (1920, 1080, False)}
NAIVE_IMAGE = {"ig": (1080, 1350), "fb": (2048, 2048), "x": (4096, 4096), "li": (1920, 1920),
               "threads": (1440, 1920)}

_NAIVE_PILLOW = r'''
import json, sys
from PIL import Image, ImageOps
import pillow_heif
pillow_heif.register_heif_opener()
for src, out, w, h in json.load(open(sys.argv[1])):
    with Image.open(src) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        im.thumbnail((w, h), Image.Resampling.LANCZOS)
        im.save(out, "JPEG", quality=90)
'''


def _loop(src: Path, out: Path, seconds: float, *, video_only: bool = False) -> Path:
    """The corpus clip repeated by stream copy to ``seconds`` (same codec, colour, rotation)."""
    if not out.exists():
        subprocess.run([media.ffmpeg(), "-v", "error", "-y", "-stream_loop", "-1", "-i",
                        str(src), "-t", str(seconds), "-map", "0:v:0" if video_only else "0",
                        "-c", "copy",
                        *(["-movflags", "+faststart"] if out.suffix in (".mp4", ".mov") else []),
                        str(out)], check=True, capture_output=True, stdin=subprocess.DEVNULL)
    return out


def _posts(ctx: Ctx, lib: Path) -> list[dict[str, Any]]:
    quick = not ctx.profile.judge
    posts: list[dict[str, Any]] = []
    videos = VIDEOS[:1] if quick else VIDEOS
    for name, rel, secs in videos:
        _loop(CORPUS / rel, lib / name, 3.5 if quick else secs)
        posts.append({"workspace_id": "bench", "id": f"cost-{Path(name).stem}",
                      "content": [{"media": [name]}],
                      "accounts": VIDEO_ACCOUNTS[:2] if quick else VIDEO_ACCOUNTS})
    photos = PHOTOS[2:4] if quick else PHOTOS
    for rel in photos:
        target = lib / Path(rel).name
        if not target.exists():
            target.write_bytes((CORPUS / rel).read_bytes())
        posts.append({"workspace_id": "bench", "id": f"cost-{target.stem}",
                      "content": [{"media": [target.name]}], "accounts": PHOTO_ACCOUNTS})
    carousel = [Path(p).name for p in photos[:4]]
    posts.append({"workspace_id": "bench", "id": "cost-carousel",
                  "content": [{"media": carousel}],
                  "accounts": [a for a in PHOTO_ACCOUNTS if a["id"] != "li"]})
    return posts


def _naive(ctx: Ctx, lib: Path, posts: list[dict[str, Any]], out: Path,
           calls: list[tuple[str, float]] | None = None) -> tuple[float, int]:
    """The naive pipeline; returns CPU seconds and the number of outputs (and, into
    ``calls``, each ffmpeg call's purpose and CPU seconds)."""
    out.mkdir(parents=True, exist_ok=True)
    cpu, outputs = 0.0, 0
    images: list[tuple[str, str, int, int]] = []
    for post in posts:
        for account in post["accounts"]:
            for i, name in enumerate(m for c in post["content"] for m in c["media"]):
                src = lib / name
                stem = f"{post['id']}-{account['id']}-{i}"
                if src.suffix.lower() in (".mp4", ".mov"):
                    w, h, pad = NAIVE_VIDEO[account["id"]]
                    vf = (f"scale={w}:{h}:force_original_aspect_ratio=decrease"
                          ":force_divisible_by=2")
                    if pad:
                        vf += f",pad={w}:{h}:(ow-iw)/2:(oh-ih)/2"
                    vf += ",format=yuv420p"
                    run = run_process([media.ffmpeg(), "-v", "error", "-y", "-i", str(src),
                                       "-vf", vf, "-c:v", "libx264", "-preset", "medium",
                                       "-crf", "23", "-c:a", "aac", "-b:a", "128k",
                                       "-movflags", "+faststart", str(out / f"{stem}.mp4")],
                                      env=ctx.env())
                    cpu += run.cpu_s
                    if calls is not None:
                        calls.append((f"encode {w}x{h}@src medium crf23 +aac"
                                      f"{' [pad]' if pad else ''} ({account['id']})", run.cpu_s))
                else:
                    w, h = NAIVE_IMAGE[account["id"]]
                    images.append((str(src), str(out / f"{stem}.jpg"), w, h))
                outputs += 1
    listing = out / "images.json"
    listing.write_text(json.dumps(images))
    run = run_process([sys.executable, "-c", _NAIVE_PILLOW, str(listing)], env=ctx.env())
    if calls is not None and images:
        calls.append((f"Pillow, {len(images)} image(s) (one Python)", run.cpu_s))
    return cpu + run.cpu_s, outputs


def _check_outputs(manifests: list[dict[str, Any]]) -> list[str]:
    """Every conform output re-read from its file: a video decodes as H.264, a picture opens
    as JPEG/PNG at the size the manifest says."""
    from PIL import Image

    problems: list[str] = []
    for manifest in manifests:
        if manifest.get("status") != "succeeded":
            problems.append(f"{manifest.get('job_id')}: {manifest.get('status')}")
        for account in manifest.get("accounts", []):
            for m in account.get("media", []):
                path = Path(m["uri"].removeprefix("file://"))
                if m["kind"] == "video":
                    probe = subprocess.run(
                        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                         "stream=codec_name,width,height", "-of", "json", str(path)],
                        capture_output=True, text=True, check=False)
                    streams = json.loads(probe.stdout or "{}").get("streams", [])
                    if not streams or streams[0].get("codec_name") != "h264":
                        problems.append(f"{path.name}: not H.264")
                else:
                    with Image.open(path) as im:
                        if im.format not in ("JPEG", "PNG") or im.size != (m["width"],
                                                                           m["height"]):
                            problems.append(f"{path.name}: {im.format} {im.size}")
    return problems


# --------------------------------------------------------------------------- long batch


def _rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def longbatch(ctx: Ctx) -> list[Row]:
    """RSS and fds of ``conform batch --workers 2`` over many small jobs; leftovers after."""
    n = ctx.profile.long_batch_jobs
    lib = ctx.dir("lib-long")
    photos = media.small_photos(lib, min(n, 50), width=640, height=480)
    lines = [json.dumps({"workspace_id": "bench", "id": f"long-{i:04d}",
                         "content": [{"media": [photos[i % len(photos)].name]}],
                         "accounts": [{"id": "tg", "platform": "telegram"}]})
             for i in range(n)]
    source = ctx.dir("jobs") / "long.jsonl"
    source.write_text("\n".join(lines) + "\n")
    dest = ctx.root / "dest-long"
    work = ctx.dir("work")
    tmpdir = ctx.dir("tmp-long")  # conform's TMPDIR: whatever it leaves is seen here
    samples: list[tuple[int, int, int]] = []  # jobs done, RSS kB, fds
    ctx.log(f"longbatch: {n} small jobs, --workers 2, sampling RSS and fds")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "batch", str(source), "--workers", "2",
             "--library", f"file://{lib}/{{id}}", "--dest", str(dest), "--no-progress",
             "--force"], stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            env=ctx.env(TMPDIR=str(tmpdir)),
            cwd=ctx.repo)
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.1):
                rss, fds = _rss_kb(proc.pid), _fds(proc.pid)
                if rss is None or fds is None:
                    continue
                done = os.pread(out.fileno(), 1 << 24, 0).count(b"\n")
                samples.append((done, rss, fds))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.perf_counter()
        code = proc.wait(timeout=3600)
        wall = time.perf_counter() - started
        stop.set()
        sampler.join()
        out.seek(0)
        results = [json.loads(line) for line in out.read().splitlines() if line.strip()]
        err.seek(0)
        tail = err.read()[-2000:].decode("utf-8", "replace")
    if code not in (0, 1):
        raise BenchError(f"conform batch exited {code}: {last_line(tail)}")
    warm = [s for s in samples if s[0] >= n // 10] or samples
    if not warm:
        raise BenchError("no RSS sample was taken")
    first = min(warm[: max(1, len(warm) // 10)], key=lambda s: s[0])
    # Growth: the highest RSS of the last tenth of the run against the first sample after
    # the first tenth of the jobs (start-up and imports are done by then).
    last = warm[-max(1, len(warm) // 10):]
    peak_end = max(s[1] for s in last)
    growth = (peak_end - first[1]) / first[1] * 100
    fd_growth = max(s[2] for s in last) - first[2]
    left_work = [p.name for p in work.iterdir() if p.name.startswith("conform-")]
    left_tmp = sorted(p.name for p in tmpdir.iterdir())
    failed = [r for r in results if r.get("status") != "succeeded"]
    notes = _quick_note(ctx)
    if failed or len(results) != n:
        notes.append(f"{len(results)} results for {n} jobs, {len(failed)} not succeeded")
    leaks = fd_growth > 0 or bool(left_work) or bool(left_tmp)
    fds_end = max(s[2] for s in last)
    return [
        Row("longbatch", f"{n} jobs, --workers 2: RSS of conform, last tenth / first",
            f"RSS {first[1] / 1024:.0f} MB after {first[0]} jobs, at most "
            f"{peak_end / 1024:.0f} MB over the last tenth ({growth:+.1f} %); "
            f"{len(samples)} samples; {n / wall:.1f} jobs/s",
            round(peak_end / first[1], 3), "x", "< 1.10",
            _judge(ctx, growth < 10 and not failed and len(results) == n),
            {"samples": samples[:: max(1, len(samples) // 200)], "wall_s": wall}, notes),
        Row("longbatch", f"{n} jobs: open fds at the end; temp files left",
            f"open fds {first[2]} after {first[0]} jobs, {fds_end} at the end; work folders "
            f"left {len(left_work)}; files left in its TMPDIR {len(left_tmp)}",
            float(fds_end), "fds", f"<= {first[2]}, nothing left",
            _judge(ctx, not leaks), {"left_work": left_work, "left_tmp": left_tmp,
                                     "fds_first": first[2], "fds_end": fds_end},
            list(notes)),
    ]




# --------------------------------------------------------------------------- x264 settings

# (name, corpus file, what it stands for)
X264_CLIPS = [("phone-1080p", "videos/pixel7_videoOnly_cleaned.mp4", "phone 1080p, handheld"),
              ("hdr10", "videos/hdr10-video-with-sdr-container.mp4", "HDR10 HEVC (tone-mapped)"),
              ("motion-60fps", "videos/bbb_960x540_60fps_vp8.webm", "animation, fast motion"),
              ("phone-4k60", "videos/portrait_4k60.mp4", "phone 4K60 portrait")]
# (x264 preset, tune, CRF): the presets at the pipeline's CRF, and the CRFs of the `quality`
# knob ("high" 18, "compact" 24) at the default preset.
X264_CANDIDATES: list[tuple[str, str | None, int]] = [
    ("veryfast", None, 20), ("faster", None, 20), ("medium", None, 20), ("slow", None, 20),
    ("medium", None, 18), ("medium", None, 24)]


def x264(ctx: Ctx) -> list[Row]:
    """x264 presets and tunings on real clips, at Instagram Reels' settings (1080x1920 blurred
    fill, CRF capped by the 25 Mbps VBV): CPU seconds, bytes and SSIM against the same filter
    graph without encoding. One row per candidate, relative to ``medium`` on the same clips."""
    from .scenarios import _job, _planned_video_argv, _reference_graph, _ssim

    if not CORPUS.is_dir():
        raise BenchError(f"the corpus is not at {CORPUS}")
    quick = not ctx.profile.judge
    lib = ctx.dir("lib-x264")
    clips = [c for c in X264_CLIPS if c[0] in ctx.clips] if ctx.clips else (
        X264_CLIPS[:1] if quick else X264_CLIPS)
    if not clips:
        raise BenchError(f"no clip named {', '.join(ctx.clips)} "
                         f"(have: {', '.join(c[0] for c in X264_CLIPS)})")
    candidates = X264_CANDIDATES[:2] if quick else X264_CANDIDATES
    secs = 3.5
    reels = {"id": "ig-reels", "platform": "instagram", "settings": {"post_type": "REELS"}}
    table: dict[str, dict[str, dict[str, float]]] = {}
    for name, rel, _what in clips:
        # Video only: SSIM compares pictures, and the reference graph has no audio branch.
        src = _loop(CORPUS / rel, lib / f"{name}{Path(rel).suffix}", secs, video_only=True)
        job = _job(ctx.dir("jobs") / f"x264-{name}.json", f"bench-x264-{name}", [src.name],
                   [reels])
        out = ctx.dir("bare") / f"x264-{name}.mp4"
        base, _t = _planned_video_argv(ctx, job, lib, src, out, force_transcode=True)
        ref = _reference_graph(base)
        for preset, tune, crf in candidates:
            key = preset + (f"+{tune}" if tune else "") + f" crf{crf}"
            argv = list(base)
            argv[argv.index("-preset") + 1] = preset
            argv[argv.index("-crf") + 1] = str(crf)
            if tune:
                argv[argv.index("-preset"):argv.index("-preset")] = ["-tune", tune]
            run = run_process(argv, env=ctx.env())
            ssim = _ssim(out, ["-i", str(src)], ref_graph=ref)
            table.setdefault(key, {})[name] = {"cpu_s": run.cpu_s, "wall_s": run.wall_s,
                                               "bytes": out.stat().st_size, "ssim": ssim}
            ctx.log(f"x264: {name} {key}: {run.cpu_s:.1f} CPU-s, {out.stat().st_size / 1e6:.2f}"
                    f" MB, SSIM {ssim:.4f}")
    ref_key = "medium crf20" if "medium crf20" in table else next(iter(table))
    rows = []
    for key, per_clip in table.items():
        cpu = sum(v["cpu_s"] for v in per_clip.values())
        size = sum(v["bytes"] for v in per_clip.values())
        ssim = sum(v["ssim"] for v in per_clip.values()) / len(per_clip)
        base_cpu = sum(v["cpu_s"] for v in table[ref_key].values())
        base_size = sum(v["bytes"] for v in table[ref_key].values())
        base_ssim = sum(v["ssim"] for v in table[ref_key].values()) / len(per_clip)
        clips_txt = "; ".join(f"{c} {v['cpu_s']:.1f} s {v['bytes'] / 1e6:.2f} MB "
                              f"{v['ssim']:.4f}" for c, v in per_clip.items())
        rows.append(Row("x264", f"{key} vs {ref_key}",
                        f"CPU {cpu / base_cpu:.2f}x, size {size / base_size:.2f}x, SSIM "
                        f"{ssim:.4f} vs {base_ssim:.4f} ({clips_txt})",
                        round(cpu / base_cpu, 3), "x CPU", "informational", None,
                        {"clips": per_clip, "cpu_s": cpu, "bytes": size, "ssim": ssim},
                        _quick_note(ctx)))
    return rows


__all__ = ["longbatch", "x264"]
