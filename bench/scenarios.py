"""The bench scenarios: each measures the pipeline against a baseline in the same run and
returns one row per goal.

``conform`` always runs as a separate process (``python -m pipeline``), exactly as a user or a
worker runs it; baselines are the equivalent bare tools. Ratios, not absolute times, are the
results: the machines are shared and noisy, but both sides of a ratio see the same noise
(runs are interleaved).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import http.server
import json
import os
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import media
from .measure import BenchError, ProcRun, interleave, median, run_process, timed

# --------------------------------------------------------------------------- results


@dataclass
class Row:
    """One goal of one scenario: the measured number, the goal and whether it is met."""

    scenario: str
    check: str
    measured: str
    value: float | None
    unit: str
    goal: str
    met: bool | None
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Profile:
    """Input sizes and repetitions: ``full`` is the issue's, ``quick`` a smoke test."""

    name: str
    runs: int
    judge: bool                     # compare with the goals (never on toy inputs)
    x264_preset: str | None         # CONFORM_X264_PRESET for conform runs (None: default)
    overhead: tuple[int, int, int]  # width, height, seconds
    least_work: tuple[int, int, int]
    fanout: tuple[int, int, int]
    fanout_runs: int
    fanout_accounts: int | None     # None: every video variant of every platform
    photo: tuple[int, int]
    image_runs: int
    cover_clip: tuple[int, int, int]
    cover_runs: int
    big_bytes: int
    big_size: tuple[int, int]
    long_clip: tuple[int, int, int, int]  # width, height, seconds, fps
    batch_jobs: int
    batch_workers: int
    quality_clip: tuple[int, int, int]
    quality_presets: tuple[str, ...]
    framing_clip: tuple[int, int, int] = (320, 180, 3)  # width, height, seconds
    mixed_clip: tuple[int, int, int] = (320, 180, 4)  # the mixed batch's videos
    long_batch_jobs: int = 20  # the memory-over-a-long-batch scenario


FULL = Profile(
    name="full", runs=3, judge=True, x264_preset=None,
    overhead=(1920, 1080, 20), least_work=(1080, 1920, 30), fanout=(1920, 1080, 8),
    fanout_runs=1, fanout_accounts=None, photo=(6000, 4000), image_runs=7,
    cover_clip=(1280, 720, 600), cover_runs=7, big_bytes=2 * 1024**3,
    big_size=(1920, 1080), long_clip=(640, 360, 3600, 60), batch_jobs=120,
    batch_workers=2, quality_clip=(1920, 1080, 10),
    quality_presets=("veryfast", "faster", "medium", "slow"), framing_clip=(1920, 1080, 10),
    mixed_clip=(1280, 720, 4), long_batch_jobs=500,
)
QUICK = Profile(
    name="quick", runs=1, judge=False, x264_preset="ultrafast",
    overhead=(320, 180, 3), least_work=(360, 640, 4), fanout=(320, 180, 4),
    fanout_runs=1, fanout_accounts=3, photo=(1200, 800), image_runs=1,
    cover_clip=(320, 180, 20), cover_runs=1, big_bytes=8 * 1024**2,
    big_size=(320, 180), long_clip=(160, 90, 20, 60), batch_jobs=6,
    batch_workers=2, quality_clip=(320, 180, 3), quality_presets=("ultrafast", "veryfast"),
)


# --------------------------------------------------------------------------- context


@dataclass
class Ctx:
    """What every scenario needs: where to write, how to run conform, the profile."""

    profile: Profile
    root: Path
    repo: Path
    log: Callable[[str], None]
    vipsthumbnail: str | None = None
    vips_note: str = ""
    clips: tuple[str, ...] = ()  # --clips: only these corpus clips (x264); empty: all
    stages: bool = False  # --stages: log every ffmpeg/ffprobe call with its CPU (cost)
    before: str = "d2cf181"  # --before: the code cost compares with (main before issue 26)

    def dir(self, name: str) -> Path:
        """A folder under the bench's temporary root."""
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for child processes: bytecode cached (as in an installed package, but
        outside the repo), the bench's workdir, and the profile's x264 preset."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONDONTWRITEBYTECODE",) and not k.startswith("CONFORM_")}
        env["PYTHONPYCACHEPREFIX"] = str(self.root / "pycache")
        env["CONFORM_WORKDIR"] = str(self.dir("work"))
        if self.profile.x264_preset:
            env["CONFORM_X264_PRESET"] = self.profile.x264_preset
        env.update(extra)
        return env

    def conform(self, *args: str, track_rss: bool = False, check: bool = True,
                **env: str) -> ProcRun:
        """Run ``python -m pipeline ARGS`` the way a user does, and measure it."""
        return run_process([sys.executable, "-m", "pipeline", *args], env=self.env(**env),
                           cwd=self.repo, track_rss=track_rss, check=check)

    def settings(self, library: Path) -> Any:
        """The Settings a conform run in this bench sees (for planning in-process)."""
        from pipeline.settings import Settings

        return Settings.from_env(self.env()).replace(library=f"file://{library}/{{id}}")


def _job(path: Path, job_id: str, media_ids: list[str], accounts: list[dict[str, Any]],
         **extra: Any) -> Path:
    body = {"workspace_id": "bench", "id": job_id,
            "content": [{"text": "bench", "media": media_ids, **extra}], "accounts": accounts}
    path.write_text(json.dumps(body))
    return path


def _run_job(ctx: Ctx, job: Path, library: Path, dest: Path, *, track_rss: bool = False,
             **env: str) -> tuple[ProcRun, dict[str, Any]]:
    """``conform run`` into a fresh destination (nothing reused); returns the manifest too."""
    shutil.rmtree(dest, ignore_errors=True)
    run = ctx.conform("run", str(job), "--library", f"file://{library}/{{id}}", "--dest",
                      str(dest), "--no-progress", track_rss=track_rss, check=False, **env)
    try:
        manifest = json.loads(run.stdout)
    except json.JSONDecodeError as err:
        raise BenchError(f"conform run printed no manifest (exit {run.returncode}): "
                         f"{last_line(run.stderr_tail)}") from err
    if run.returncode not in (0, 1):
        raise BenchError(f"conform run exited {run.returncode}: {last_line(run.stderr_tail)}")
    return run, manifest


def last_line(text: str) -> str:
    """The last non-empty line of a program's stderr (the error, after any traceback)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"


def _failures(manifest: dict[str, Any]) -> list[str]:
    return [f"{a['account_id']}: {e['code']}: {e['message']}"
            for a in manifest["accounts"] for e in a["errors"]]


def _media(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for a in manifest["accounts"] for m in a["media"]]


def _human_bytes(n: float) -> str:
    return f"{n / 1024**3:.0f} GB" if n >= 1024**3 else f"{n / 1024**2:.0f} MB"


def _human_s(seconds: int) -> str:
    return f"{seconds // 3600} h" if seconds >= 3600 and seconds % 3600 == 0 else \
        f"{seconds // 60} min" if seconds >= 60 and seconds % 60 == 0 else f"{seconds} s"


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("inf")


def _fmt_s(seconds: float) -> str:
    return f"{seconds:.3f} s" if seconds < 1 else f"{seconds:.2f} s" if seconds < 10 \
        else f"{seconds:.1f} s"


def _judge(ctx: Ctx, ok: bool) -> bool | None:
    return ok if ctx.profile.judge else None


def _quick_note(ctx: Ctx) -> list[str]:
    return [] if ctx.profile.judge else ["quick mode: toy inputs, not judged against the goal"]


TIKTOK = {"id": "tt", "platform": "tiktok", "settings": {"privacy_level": "SELF_ONLY"}}
# Every video variant of the ten platforms, one account each.
ALL_VIDEO_ACCOUNTS: list[dict[str, Any]] = [
    TIKTOK,
    {"id": "x", "platform": "x"},
    {"id": "fb-feed", "platform": "facebook", "settings": {"post_type": "POST"}},
    {"id": "fb-reels", "platform": "facebook", "settings": {"post_type": "REELS"}},
    {"id": "ig-reels", "platform": "instagram", "settings": {"post_type": "REELS"}},
    {"id": "ig-story", "platform": "instagram", "settings": {"post_type": "STORIES"}},
    {"id": "li", "platform": "linkedin"},
    {"id": "yt", "platform": "youtube", "settings": {"video_type": "video"}},
    {"id": "yt-short", "platform": "youtube", "settings": {"video_type": "short"}},
    {"id": "pin", "platform": "pinterest"},
    {"id": "threads", "platform": "threads"},
    {"id": "tg", "platform": "telegram"},
    {"id": "bsky", "platform": "bluesky"},
]


# --------------------------------------------------------------------------- helpers


def _planned_video_argv(ctx: Ctx, job: Path, library: Path, src: Path, out: Path,
                        *, force_transcode: bool = False, x264_preset: str | None = None
                        ) -> tuple[list[str], Any]:
    """The exact ffmpeg argv conform runs for the job's only rendition (what a person would
    type to do the same encode by hand), without the progress pipe."""
    from pipeline import probe, runner
    from pipeline.job import parse_job_text
    from pipeline.plan import BITS_PER_PIXEL_CEILING, VideoTarget
    from pipeline.presets import load_presets
    from pipeline.video import build_args

    presets = load_presets()
    settings = ctx.settings(library)
    if x264_preset:
        settings = settings.replace(x264_preset=x264_preset)
    jobplan = runner.dry_run(parse_job_text(job.read_text(), presets), settings=settings,
                          presets=presets)
    if len(jobplan.renditions) != 1:
        raise BenchError(f"expected one rendition, the plan has {len(jobplan.renditions)}")
    target = jobplan.renditions[0].target
    if not isinstance(target, VideoTarget):
        raise BenchError("the job's only rendition is not a video")
    info = probe.probe(src)
    if force_transcode and target.action != "transcode":
        # What a pipeline without pass-through/remux does: encode anyway, with our settings.
        assert info.video is not None
        g = target.geometry
        target = dataclasses.replace(
            target, action="transcode", fps=info.video.fps,
            maxrate_kbps=int(g.width * g.height * float(info.video.fps)
                             * BITS_PER_PIXEL_CEILING / 1000),
            x264_preset=x264_preset or settings.x264_preset)
    return build_args(src, info.format_name, target, out, progress=False), target


def _ssim(a: Path, b_input: list[str], *, ref_graph: str | None = None) -> float:
    """Mean SSIM (All) of ``a`` against a reference: another file, or a source run through
    ``ref_graph`` (a filter graph whose input is ``[1:v:0]`` and output label ``[ref]``)."""
    stats = a.with_name(a.name + ".ssim.txt")
    if ref_graph:
        graph = f"{ref_graph};[0:v][ref]ssim=stats_file={stats}"
    else:
        graph = f"[0:v][1:v]ssim=stats_file={stats}"
    run_process([media.ffmpeg(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(a),
                 *b_input, "-filter_complex", graph, "-f", "null", "-"])
    values = []
    for line in stats.read_text().splitlines():
        for part in line.split():
            if part.startswith("All:"):
                values.append(float(part[4:]))
    stats.unlink()
    if not values:
        raise BenchError(f"ssim produced no values for {a.name}")
    return sum(values) / len(values)


def _reference_graph(argv: list[str]) -> str:
    """The filter graph of an encode argv, reading the source as input 1, ending in [ref]."""
    fc = argv[argv.index("-filter_complex") + 1]
    maps = [argv[i + 1] for i, a in enumerate(argv) if a == "-map" and argv[i + 1].startswith("[")]
    if not maps:
        raise BenchError("the encode argv maps no filter output")
    final = maps[0]
    return fc.replace("[0:v:0]", "[1:v:0]").replace(final, "[ref]")


# --------------------------------------------------------------------------- overhead


def overhead(ctx: Ctx) -> list[Row]:
    """One 1080p30 clip to TikTok (1080x1920 blur-pad): conform run vs the same bare ffmpeg."""
    w, h, secs = ctx.profile.overhead
    lib = ctx.dir("lib-overhead")
    src = media.clip(lib / "clip.mp4", width=w, height=h, seconds=secs)
    job = _job(ctx.dir("jobs") / "overhead.json", "bench-overhead", ["clip.mp4"], [TIKTOK])
    bare_out = ctx.dir("bare") / "overhead.mp4"
    argv, target = _planned_video_argv(ctx, job, lib, src, bare_out)
    if target.action != "transcode":
        raise BenchError(f"the overhead clip was planned as {target.action}, not an encode")
    dest = ctx.root / "dest-overhead"
    manifests: list[dict[str, Any]] = []

    def run_conform() -> float:
        run, manifest = _run_job(ctx, job, lib, dest)
        manifests.append(manifest)
        return run.wall_s

    def run_bare() -> float:
        return run_process(argv, env=ctx.env()).wall_s

    ctx.log(f"overhead: {w}x{h} {secs} s -> tiktok {target.geometry.width}x"
            f"{target.geometry.height} ({target.x264_preset}), {ctx.profile.runs} run(s) each")
    conform_s, bare_s = interleave(ctx.profile.runs, run_conform, run_bare)
    notes = _quick_note(ctx)
    failures = _failures(manifests[-1])
    out_uri = _media(manifests[-1])[0]["uri"] if not failures else None
    same = None
    if out_uri:
        same = _ssim(Path(out_uri.removeprefix("file://")), ["-i", str(bare_out)])
    ratio = _ratio(median(conform_s), median(bare_s))
    notes += [f"conform failed: {f}" for f in failures]
    if same is not None:
        notes.append(f"SSIM(conform output, bare ffmpeg output) = {same:.5f} "
                     "(x264 with threads and VBV is not bit-exact run to run: bare vs bare "
                     "differs as much)")
    return [Row("overhead", "conform run / bare ffmpeg",
                f"conform {_fmt_s(median(conform_s))} vs ffmpeg {_fmt_s(median(bare_s))}",
                round(ratio, 3), "x", "<= 1.05", _judge(ctx, ratio <= 1.05 and not failures),
                {"conform_s": conform_s, "ffmpeg_s": bare_s, "ffmpeg_argv": argv,
                 "ssim_conform_vs_ffmpeg": same, "source": f"{w}x{h} {secs} s"}, notes)]


# --------------------------------------------------------------------------- least work


def least_work(ctx: Ctx) -> list[Row]:
    """A conformant MP4 (pass-through) and MOV (remux) vs re-encoding the same clip."""
    w, h, secs = ctx.profile.least_work
    lib = ctx.dir("lib-least")
    mp4 = media.clip(lib / "vertical.mp4", width=w, height=h, seconds=secs)
    media.remux_to_mov(mp4, lib / "vertical.mov")
    jobs = ctx.dir("jobs")
    job_mp4 = _job(jobs / "pass.json", "bench-pass", ["vertical.mp4"], [TIKTOK])
    job_mov = _job(jobs / "remux.json", "bench-remux", ["vertical.mov"], [TIKTOK])
    argv, _t = _planned_video_argv(ctx, job_mp4, lib, mp4, ctx.dir("bare") / "reencode.mp4",
                                   force_transcode=True)
    actions: dict[str, list[str]] = {}

    def run(job: Path, name: str) -> Callable[[], float]:
        def go() -> float:
            proc, manifest = _run_job(ctx, job, lib, ctx.root / f"dest-{name}")
            fails = _failures(manifest)
            if fails:
                raise BenchError(f"{name}: {fails[0]}")
            actions[name] = _media(manifest)[0]["actions"]
            return proc.wall_s
        return go

    def reencode() -> float:
        return run_process(argv, env=ctx.env()).wall_s

    ctx.log(f"least work: {w}x{h} {secs} s conformant MP4/MOV vs re-encode, "
            f"{ctx.profile.runs} run(s) each")
    pass_s, remux_s, enc_s = interleave(ctx.profile.runs, run(job_mp4, "pass"),
                                        run(job_mov, "remux"), reencode)
    rows = []
    for name, times, want in (("pass-through", pass_s, "passed_through"),
                              ("remux", remux_s, "remuxed")):
        key = "pass" if name == "pass-through" else "remux"
        speedup = _ratio(median(enc_s), median(times))
        did = actions.get(key, [])
        notes = _quick_note(ctx)
        if want not in did:
            notes.append(f"expected {want!r}, conform did {did}")
        notes.append("re-encode = bare ffmpeg with the pipeline's own encode argv (video "
                     "encoded, audio copied): cheaper than a conform re-encode, so the "
                     "speed-up shown is a lower bound")
        rows.append(Row("least_work", f"{name} vs re-encode",
                        f"conform {_fmt_s(median(times))} vs re-encode {_fmt_s(median(enc_s))}",
                        round(speedup, 1), "x faster", ">= 20",
                        _judge(ctx, speedup >= 20 and want in did),
                        {"conform_s": times, "reencode_s": enc_s, "actions": did,
                         "reencode_argv": argv, "source": f"{w}x{h} {secs} s"}, notes))
    return rows


# --------------------------------------------------------------------------- fan-out


def fanout(ctx: Ctx) -> list[Row]:
    """One clip to every video variant of the ten platforms vs one encode per account.

    The clip is 4:2:2 (a pro camera's or a screen recorder's), which no platform takes as it
    is: every account needs an encode, so the naive way is exactly one encode per account and
    whatever the pipeline saves comes from sharing identical targets and decodes."""
    w, h, secs = ctx.profile.fanout
    lib = ctx.dir("lib-fanout")
    media.clip(lib / "clip.mp4", width=w, height=h, seconds=secs, pix_fmt="yuv422p")
    accounts = ALL_VIDEO_ACCOUNTS[:ctx.profile.fanout_accounts]
    jobs = ctx.dir("jobs")
    job_all = _job(jobs / "fanout.json", "bench-fanout", ["clip.mp4"], accounts)
    singles = [_job(jobs / f"naive-{a['id']}.json", f"bench-naive-{a['id']}", ["clip.mp4"], [a])
               for a in accounts]
    last: dict[str, Any] = {}

    def together() -> float:
        run, manifest = _run_job(ctx, job_all, lib, ctx.root / "dest-fanout")
        last["manifest"] = manifest
        return run.wall_s

    def naive() -> float:
        total = 0.0
        encodes = 0
        for job in singles:
            run, manifest = _run_job(ctx, job, lib, ctx.root / "dest-naive")
            total += run.wall_s
            encodes += sum(1 for m in _media(manifest) if "transcoded" in m["actions"])
        last["naive_encodes"] = encodes
        return total

    ctx.log(f"fan-out: {w}x{h} {secs} s to {len(accounts)} accounts, "
            f"{ctx.profile.fanout_runs} run(s) each")
    all_s, naive_s = interleave(ctx.profile.fanout_runs, together, naive)
    manifest = last["manifest"]
    outputs = {m["uri"]: m for m in _media(manifest)}
    encodes = sum(1 for m in outputs.values() if "transcoded" in m["actions"])
    failures = _failures(manifest)
    ratio = _ratio(median(all_s), median(naive_s))
    notes = _quick_note(ctx) + [f"failed: {f}" for f in failures]
    if ctx.profile.fanout_accounts is not None:
        notes.append(f"quick mode: {len(accounts)} of {len(ALL_VIDEO_ACCOUNTS)} variants")
    shares: dict[str, list[str]] = {}
    for a in manifest["accounts"]:
        for m in a["media"]:
            shares.setdefault(m["uri"].rsplit("/", 1)[-1], []).append(a["account_id"])
    return [Row("fanout", "all video variants / one encode per account",
                f"{len(accounts)} accounts: {encodes} encodes + "
                f"{len(outputs) - encodes} copies in {_fmt_s(median(all_s))} vs "
                f"{last.get('naive_encodes', '?')} encodes in {_fmt_s(median(naive_s))}",
                round(ratio, 3), "x", "<= 0.4", _judge(ctx, ratio <= 0.4 and not failures),
                {"together_s": all_s, "naive_s": naive_s, "encodes": encodes,
                 "outputs": len(outputs), "naive_encodes": last.get("naive_encodes"),
                 "accounts": len(accounts), "shared_outputs": shares,
                 "source": f"{w}x{h} {secs} s"}, notes)]


# --------------------------------------------------------------------------- images


_NAIVE_PILLOW = """
import sys
from PIL import Image, ImageOps
src, out, w, h, q = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
im = Image.open(src)
im.load()                                   # full 24 MP decode
im = ImageOps.exif_transpose(im)
sw, sh = im.size
if sw / sh > w / h:
    cw = round(sh * w / h); box = ((sw - cw) // 2, 0, (sw - cw) // 2 + cw, sh)
else:
    ch = round(sw * h / w); box = (0, (sh - ch) // 2, sw, (sh - ch) // 2 + ch)
im = im.crop(box).resize((w, h), Image.Resampling.LANCZOS)
im.save(out, "JPEG", quality=q, optimize=True, progressive=True, subsampling=0 if q >= 90 else 2)
"""


def images(ctx: Ctx) -> list[Row]:
    """A 24 MP EXIF-rotated camera JPEG to the Instagram feed preset vs vipsthumbnail and a
    naive Pillow script making the same size and quality."""
    pw, ph = ctx.profile.photo
    lib = ctx.dir("lib-images")
    photo = media.camera_photo(lib / "photo.jpg", width=pw, height=ph, orientation=6)
    job = _job(ctx.dir("jobs") / "image.json", "bench-image", ["photo.jpg"],
               [{"id": "ig", "platform": "instagram", "settings": {"post_type": "POST"}}])
    dest = ctx.root / "dest-image"
    _run, manifest = _run_job(ctx, job, lib, dest)  # warm-up, and the target size
    if _failures(manifest):
        raise BenchError(f"instagram feed image failed: {_failures(manifest)[0]}")
    out = _media(manifest)[0]
    w, h = out["width"], out["height"]
    quality = _preset_quality()
    bare = ctx.dir("bare")
    naive_out = bare / "naive.jpg"
    naive_argv = [sys.executable, "-c", _NAIVE_PILLOW, str(photo), str(naive_out), str(w),
                  str(h), str(quality)]
    vips_out = bare / "vips.jpg"
    vips_argv = ([ctx.vipsthumbnail, str(photo), "--size", f"{w}x{h}", "--smartcrop", "centre",
                  "-o", f"{vips_out}[Q={quality},strip,optimize_coding,interlace]"]
                 if ctx.vipsthumbnail else None)

    def conform_run() -> float:
        return _run_job(ctx, job, lib, dest)[0].wall_s

    def naive() -> float:
        return run_process(naive_argv, env=ctx.env()).wall_s

    steps = [conform_run, naive]
    if vips_argv:
        steps.append(lambda: run_process(vips_argv, env=ctx.env()).wall_s)
    ctx.log(f"images: {pw}x{ph} EXIF-rotated JPEG -> instagram feed {w}x{h} q{quality}, "
            f"{ctx.profile.image_runs} run(s) each")
    measured = interleave(ctx.profile.image_runs, *steps)
    conform_s, naive_s = measured[0], measured[1]
    vips_s = measured[2] if vips_argv else None
    stage = _image_stage_times(ctx, lib / "photo.jpg", w, h, quality)
    conform_path = Path(_media(_run_job(ctx, job, lib, dest)[1])[0]["uri"].removeprefix("file://"))
    ssim_naive = _ssim(conform_path, ["-i", str(naive_out)])
    details: dict[str, Any] = {"conform_s": conform_s, "naive_pillow_s": naive_s,
                               "vipsthumbnail_s": vips_s, "output": f"{w}x{h}",
                               "in_process": stage, "ssim_conform_vs_naive": ssim_naive}
    notes = _quick_note(ctx)
    notes.append(f"SSIM(conform, naive full-decode LANCZOS) = {ssim_naive:.4f}")
    rows = []
    if vips_s is not None:
        ssim_vips = _ssim(vips_out, ["-i", str(naive_out)])
        details["ssim_vips_vs_naive"] = ssim_vips
        r = _ratio(median(conform_s), median(vips_s))
        rows.append(Row("images", "conform / vipsthumbnail",
                        f"conform {_fmt_s(median(conform_s))} vs vips "
                        f"{_fmt_s(median(vips_s))}; image stage in-process "
                        f"{_fmt_s(stage['pipeline_s'])}",
                        round(r, 2), "x", "<= 1.5", _judge(ctx, r <= 1.5), details,
                        [*notes, f"SSIM(vips, naive) = {ssim_vips:.4f}",
                         "end to end: conform includes interpreter start-up, probe, plan, "
                         "output verification, hashing and storing; the in-process stage "
                         "time is the image engine alone"]))
    else:
        rows.append(Row("images", "conform / vipsthumbnail", "skipped", None, "x", "<= 1.5",
                        None, details, [*notes, ctx.vips_note or "vipsthumbnail not found"]))
    speed = _ratio(median(naive_s), median(conform_s))
    rows.append(Row("images", "naive Pillow / conform",
                    f"naive {_fmt_s(median(naive_s))} vs conform {_fmt_s(median(conform_s))}; "
                    f"in-process {_fmt_s(stage['naive_s'])} vs {_fmt_s(stage['pipeline_s'])}",
                    round(speed, 2), "x faster", ">= 3", _judge(ctx, speed >= 3), details, notes))
    return rows


def _preset_quality() -> int:
    from pipeline.presets import load_presets

    found = load_presets().find_variant("instagram-feed-image")
    assert found is not None and found[1].image is not None
    return found[1].image.quality


def _image_stage_times(ctx: Ctx, photo: Path, w: int, h: int, quality: int) -> dict[str, float]:
    """The image engine alone (probe + plan + render, in this process) vs the naive Pillow
    steps in this process: no interpreter start-up on either side."""
    from pipeline import probe
    from pipeline.image import render_image
    from pipeline.plan import plan_image
    from pipeline.presets import load_presets

    found = load_presets().find_variant("instagram-feed-image")
    assert found is not None and found[1].image is not None
    spec = found[1].image
    out = ctx.dir("bare") / "stage.jpg"
    naive_out = ctx.dir("bare") / "stage-naive.jpg"

    def pipeline_stage() -> None:
        info = probe.probe(photo)
        target, _a, _w = plan_image(info, spec, max_bytes=spec.max_bytes)
        render_image(photo, info.format_name, target, out)

    def naive_stage() -> None:
        ns: dict[str, Any] = {}
        code = _NAIVE_PILLOW.replace("sys.argv[1], sys.argv[2], int(sys.argv[3]), "
                                     "int(sys.argv[4]), int(sys.argv[5])",
                                     f"{str(photo)!r}, {str(naive_out)!r}, {w}, {h}, {quality}")
        exec(compile(code, "<naive>", "exec"), ns)

    runs = ctx.profile.image_runs
    pipe_s, naive_s = interleave(runs, lambda: timed(pipeline_stage), lambda: timed(naive_stage))
    return {"pipeline_s": median(pipe_s), "naive_s": median(naive_s)}


# --------------------------------------------------------------------------- covers


def covers(ctx: Ctx) -> list[Row]:
    """Cover frame at 10 % vs 90 % of a 10-minute clip (cost must not grow with the time)."""
    from pipeline import cover, probe
    from pipeline.plan import CoverTarget

    w, h, secs = ctx.profile.cover_clip
    video = media.long_clip(ctx.dir("lib-covers") / "long.mp4", width=w, height=h, seconds=secs)
    info = probe.probe(video)
    duration_ms = int((info.duration_s or secs) * 1000)
    work = ctx.dir("covers-work")
    sizes: dict[str, tuple[int, int]] = {}

    def at(fraction: float) -> Callable[[], float]:
        ms = int(duration_ms * fraction)
        target = CoverTarget("frame", ms, "jpeg", info.width, info.height, "none", 20_000_000, 1)

        def go() -> float:
            def make() -> None:
                result = cover.make_frame_cover(video, info, ms, target, work, timeout_s=120)
                sizes[f"{fraction:.0%}"] = (result.width, result.height)
            return timed(make)
        return go

    ctx.log(f"covers: {w}x{h} {secs} s clip, frame at 10 % and 90 %, "
            f"{ctx.profile.cover_runs} run(s) each")
    t10, t90 = interleave(ctx.profile.cover_runs, at(0.1), at(0.9))
    ratio = _ratio(median(t90), median(t10))
    notes = _quick_note(ctx)
    if any(s != (info.width, info.height) for s in sizes.values()):
        notes.append(f"unexpected cover sizes {sizes}")
    return [Row("covers", "frame at 90 % / at 10 %",
                f"{_fmt_s(median(t90))} vs {_fmt_s(median(t10))} "
                f"({_human_s(secs)} clip)",
                round(ratio, 2), "x", "<= 1.5", _judge(ctx, ratio <= 1.5),
                {"at_10_s": t10, "at_90_s": t90, "clip": f"{w}x{h} {secs} s"}, notes)]


# --------------------------------------------------------------------------- memory


@contextlib.contextmanager
def _http_server(folder: Path) -> Iterator[str]:
    """A plain local HTTP server for ``folder`` on 127.0.0.1 (the URL-download source)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def memory(ctx: Ctx) -> list[Row]:
    """Peak RSS of conform on a 2 GB source (transcode) and a 2 GB URL download."""
    big_dir = ctx.dir("lib-big")
    size = ctx.profile.big_bytes
    ctx.log(f"memory: making a {size / 1024**3:.2f} GiB source")
    big = media.big_clip(big_dir / "big.mp4", size_bytes=size, width=ctx.profile.big_size[0],
                         height=ctx.profile.big_size[1])
    real = big.stat().st_size
    job = _job(ctx.dir("jobs") / "big.json", "bench-big", ["big.mp4"], [TIKTOK])
    limit_mb = 300
    ctx.log("memory: conform run (transcode, x264 ultrafast)")
    run, manifest = _run_job(ctx, job, big_dir, ctx.root / "dest-big", track_rss=True,
                             CONFORM_X264_PRESET="ultrafast")
    fails = _failures(manifest)
    py_mb = (run.peak_rss_kb or 0) / 1024
    ff_mb = {k: round(v / 1024, 1) for k, v in run.child_peaks.items()}
    rows = [Row("memory", f"conform run, {_human_bytes(size)} source (transcode)",
                f"python {py_mb:.0f} MB peak; ffmpeg {ff_mb.get('ffmpeg', 0):.0f} MB; "
                f"{real / 1e9:.2f} GB in {_fmt_s(run.wall_s)}",
                round(py_mb, 1), "MB", f"< {limit_mb}", _judge(ctx, py_mb < limit_mb and not fails),
                {"source_bytes": real, "python_peak_kb": run.peak_rss_kb,
                 "children_peak_mb": ff_mb, "wall_s": run.wall_s},
                [*_quick_note(ctx), *[f"failed: {f}" for f in fails],
                 "x264 preset ultrafast for this run only (memory, not speed, is measured)",
                 "ffmpeg's own memory is reported, not judged: it depends on the frame size, "
                 "not on the file size"])]
    ctx.log("memory: conform probe of the same file over HTTP (download)")
    with _http_server(big_dir) as base:
        dl = ctx.conform("probe", f"{base}/big.mp4", "--allow-network", "127.0.0.1/32",
                         "--json", track_rss=True, check=False)
    dl_mb = (dl.peak_rss_kb or 0) / 1024
    ok = dl.returncode == 0
    notes = _quick_note(ctx)
    if not ok:
        notes.append(f"conform probe failed ({dl.returncode}): {last_line(dl.stderr_tail)}")
    rows.append(Row("memory", f"URL download of {_human_bytes(size)}",
                    f"python {dl_mb:.0f} MB peak; {real / 1e9:.2f} GB in {_fmt_s(dl.wall_s)} "
                    f"({real / 1e6 / max(dl.wall_s, 1e-6):.0f} MB/s incl. hash + probe)",
                    round(dl_mb, 1), "MB", f"< {limit_mb}", _judge(ctx, dl_mb < limit_mb and ok),
                    {"source_bytes": real, "python_peak_kb": dl.peak_rss_kb,
                     "children_peak_mb": {k: round(v / 1024, 1)
                                          for k, v in dl.child_peaks.items()},
                     "wall_s": dl.wall_s}, notes))
    media.remove(big)
    # Size is not the only way a source grows: a long video has many packets. Probing reads
    # the packet index, which must not be held in memory whole either.
    lw, lh, lsecs, lfps = ctx.profile.long_clip
    ctx.log(f"memory: conform probe of a {_human_s(lsecs)} {lfps} fps clip")
    long = media.long_clip(big_dir / "long.mp4", width=lw, height=lh, seconds=lsecs, fps=lfps)
    lp = ctx.conform("probe", str(long), "--json", track_rss=True, check=False)
    lp_mb = (lp.peak_rss_kb or 0) / 1024
    notes = _quick_note(ctx)
    if lp.returncode != 0:
        notes.append(f"conform probe failed ({lp.returncode}): {last_line(lp.stderr_tail)}")
    rows.append(Row("memory", f"probe of a {_human_s(lsecs)} {lfps} fps video",
                    f"python {lp_mb:.0f} MB peak; {lsecs * lfps} frames, "
                    f"{long.stat().st_size / 1e9:.2f} GB in {_fmt_s(lp.wall_s)}",
                    round(lp_mb, 1), "MB", f"< {limit_mb}",
                    _judge(ctx, lp_mb < limit_mb and lp.returncode == 0),
                    {"frames": lsecs * lfps, "bytes": long.stat().st_size,
                     "python_peak_kb": lp.peak_rss_kb, "wall_s": lp.wall_s}, notes))
    media.remove(long)
    return rows


# --------------------------------------------------------------------------- batch


def _batch_run(ctx: Ctx, name: str, source: Path, lib: Path, workers: int) -> ProcRun:
    dest = ctx.root / f"dest-{name}-{workers}"
    shutil.rmtree(dest, ignore_errors=True)
    ctx.log(f"batch: {name}, --workers {workers}")
    run = ctx.conform("batch", str(source), "--workers", str(workers), "--library",
                      f"file://{lib}/{{id}}", "--dest", str(dest), "--no-progress", check=False)
    shutil.rmtree(dest, ignore_errors=True)
    if run.returncode not in (0, 1):
        raise BenchError(f"conform batch exited {run.returncode}: {last_line(run.stderr_tail)}")
    return run


def _batch_rows(ctx: Ctx, name: str, label: str, source: Path, lib: Path, n: int
                ) -> list[Row]:
    """``--workers 2`` then ``--workers 1`` then ``--workers 2`` again (the better of the two
    runs with 2 workers, since another engineer's load comes and goes): CPU busy and speed-up."""
    workers = ctx.profile.batch_workers
    runs = [_batch_run(ctx, name, source, lib, workers)]
    single = _batch_run(ctx, name, source, lib, 1)
    runs.append(_batch_run(ctx, name, source, lib, workers))
    run = min(runs, key=lambda r: r.wall_s)
    results = [json.loads(line) for line in run.stdout.decode().splitlines() if line.strip()]
    cores = min(workers, os.cpu_count() or 1)
    # CPU of the whole tree: conform, its job processes (reaped by the fork server, which
    # conform waits for) and every ffmpeg.
    busy = run.cpu_s / (run.wall_s * cores) * 100
    speedup = single.wall_s / run.wall_s
    failed = [r for r in results if r.get("status") != "succeeded"]
    notes = _quick_note(ctx)
    if len(results) != n:
        notes.append(f"expected {n} result lines, got {len(results)}")
    if failed:
        notes.append(f"{len(failed)} job(s) not succeeded, e.g. {json.dumps(failed[0])[:300]}")
    machine = (run.machine_busy or 0) * 100
    if machine - busy > 15:
        notes.append(f"the machine was {machine:.0f} % busy during the run, {machine - busy:.0f} "
                     "points of it other processes'")
    ok = not failed and len(results) == n
    walls = ", ".join(f"{r.wall_s:.1f}" for r in runs)
    details = {"jobs": n, "workers": workers, "wall_s": run.wall_s, "cpu_s": run.cpu_s,
               "walls_workers_n": [r.wall_s for r in runs], "machine_busy_pct": machine,
               "results": len(results), "failed": len(failed),
               "workers_1": {"wall_s": single.wall_s, "cpu_s": single.cpu_s,
                             "machine_busy_pct": (single.machine_busy or 0) * 100}}
    return [
        Row("batch", f"{label}, --workers {workers}: CPU busy",
            f"CPU {run.cpu_s:.1f} s in {_fmt_s(run.wall_s)} on {cores} cores "
            f"({n / run.wall_s:.1f} jobs/s); machine {machine:.0f} % busy",
            round(busy, 1), "% CPU", ">= 90", _judge(ctx, busy >= 90 and ok), details, notes),
        Row("batch", f"{label}: --workers {workers} vs 1",
            f"{_fmt_s(single.wall_s)} with 1 worker (CPU {single.cpu_s:.1f} s) vs "
            f"{_fmt_s(run.wall_s)} with {workers} (runs: {walls} s)",
            round(speedup, 2), "x faster", ">= 1.75", _judge(ctx, speedup >= 1.75 and ok),
            details, list(notes)),
    ]


def batch(ctx: Ctx) -> list[Row]:
    """``conform batch`` with 2 workers against 1, in the same run: an image batch (4 MP phone
    photos, each to X, Instagram and Facebook) and a mixed batch (the same photos, and every
    fifth job a 720p phone-like clip to TikTok and Instagram Reels). How busy the two cores are
    (CPU seconds of the whole process tree over wall time x cores) and the speed-up."""
    help_run = ctx.conform("batch", "--help", check=False)
    if help_run.returncode != 0:
        return [Row("batch", "jobs/s and CPU busy", "skipped: `conform batch` is not available",
                    None, "% CPU", ">= 90", None, {}, ["conform batch is not in this build"])]
    n = ctx.profile.batch_jobs
    lib = ctx.dir("lib-batch")
    photos = media.small_photos(lib, n)
    accounts = [{"id": "x", "platform": "x"}, {"id": "ig", "platform": "instagram"},
                {"id": "fb", "platform": "facebook"}]
    jobs = ctx.dir("jobs")
    lines = [json.dumps({"workspace_id": "bench", "id": f"bench-batch-{i:04d}",
                         "content": [{"media": [p.name]}], "accounts": accounts})
             for i, p in enumerate(photos)]
    images_src = jobs / "batch-images.jsonl"
    images_src.write_text("\n".join(lines) + "\n")
    rows = _batch_rows(ctx, "images", f"{n} image jobs", images_src, lib, n)

    m = max(5, n // 4)
    w, h, secs = ctx.profile.mixed_clip
    clips = [media.clip(lib / f"clip-{k}.mp4", width=w, height=h, seconds=secs, fps=30,
                        crf=18 + k) for k in range(max(1, m // 5))]
    video_accounts = [TIKTOK, {"id": "ig-reels", "platform": "instagram",
                               "settings": {"post_type": "REELS"}}]
    mixed = []
    for i in range(m):
        if i % 5 == 4:
            body = {"workspace_id": "bench", "id": f"bench-mixed-{i:04d}",
                    "content": [{"media": [clips[(i // 5) % len(clips)].name]}],
                    "accounts": video_accounts}
        else:
            body = {"workspace_id": "bench", "id": f"bench-mixed-{i:04d}",
                    "content": [{"media": [photos[i % len(photos)].name]}],
                    "accounts": accounts}
        mixed.append(json.dumps(body))
    mixed_src = jobs / "batch-mixed.jsonl"
    mixed_src.write_text("\n".join(mixed) + "\n")
    rows += _batch_rows(ctx, "mixed", f"{m} mixed jobs ({m // 5} videos)", mixed_src, lib, m)
    return rows


# --------------------------------------------------------------------------- x264 quality


def quality(ctx: Ctx) -> list[Row]:
    """x264 presets on the TikTok target: encode time and SSIM against the unencoded
    filtered source, so a faster default is never bought with quality."""
    w, h, secs = ctx.profile.quality_clip
    lib = ctx.dir("lib-quality")
    src = media.clip(lib / "clip.mp4", width=w, height=h, seconds=secs, crf=16)
    job = _job(ctx.dir("jobs") / "quality.json", "bench-quality", ["clip.mp4"], [TIKTOK])
    rows: dict[str, dict[str, float]] = {}
    for preset in ctx.profile.quality_presets:
        out = ctx.dir("bare") / f"q-{preset}.mp4"
        argv, _t = _planned_video_argv(ctx, job, lib, src, out, x264_preset=preset)
        times = [run_process(argv, env=ctx.env()).wall_s for _ in range(ctx.profile.runs)]
        ssim = _ssim(out, ["-i", str(src)], ref_graph=_reference_graph(argv))
        rows[preset] = {"s": median(times), "ssim": ssim, "bytes": out.stat().st_size}
        ctx.log(f"quality: {preset}: {median(times):.2f} s, SSIM {ssim:.4f}")
    from pipeline.settings import Settings

    default = Settings().x264_preset
    base = rows.get(default) or next(iter(rows.values()))
    measured = "; ".join(f"{p} {v['s']:.1f} s SSIM {v['ssim']:.4f} {v['bytes'] / 1e6:.1f} MB"
                         for p, v in rows.items())
    return [Row("quality", f"x264 presets (default {default})", measured,
                round(base["ssim"], 4), "SSIM", "informational", None,
                {"presets": rows, "clip": f"{w}x{h} {secs} s"},
                ["SSIM of each encode against the same filter graph without encoding"])]


def framing(ctx: Ctx) -> list[Row]:
    """Smart framing vs blurred fill of the same 16:9 clip to TikTok (job ``conform.fit``)."""
    w, h, secs = ctx.profile.framing_clip
    lib = ctx.dir("lib-framing")
    media.clip(lib / "clip.mp4", width=w, height=h, seconds=secs)
    dest = ctx.root / "dest-framing"
    jobs = {fit: _job(ctx.dir("jobs") / f"framing-{fit}.json", f"bench-framing-{fit}",
                      ["clip.mp4"], [TIKTOK], ) for fit in ("smart", "blur")}
    for fit, path in jobs.items():  # the job's conform.fit picks the fit for both runs
        body = json.loads(path.read_text())
        body["conform"] = {"fit": fit}
        path.write_text(json.dumps(body))
    actions: dict[str, list[str]] = {}

    def run(fit: str) -> Callable[[], float]:
        def go() -> float:
            proc, manifest = _run_job(ctx, jobs[fit], lib, dest)
            actions[fit] = _media(manifest)[0]["actions"] if _media(manifest) else []
            return proc.wall_s
        return go

    ctx.log(f"framing: {w}x{h} {secs} s -> tiktok, smart vs blur, {ctx.profile.runs} run(s) each")
    smart_s, blur_s = interleave(ctx.profile.runs, run("smart"), run("blur"))
    ratio = _ratio(median(smart_s), median(blur_s))
    notes = _quick_note(ctx)
    if "reframed" not in actions.get("smart", []):
        notes.append(f"the smart run was not reframed: {actions.get('smart')}")
    return [Row("framing", "smart framing / blurred fill",
                f"smart {_fmt_s(median(smart_s))} vs blur {_fmt_s(median(blur_s))} "
                f"({w}x{h} {secs} s)", round(ratio, 3), "x", "<= 1.5",
                _judge(ctx, ratio <= 1.5), {"smart_s": smart_s, "blur_s": blur_s,
                                            "clip": f"{w}x{h} {secs} s"}, notes)]


SCENARIOS: dict[str, Callable[[Ctx], list[Row]]] = {
    "overhead": overhead,
    "least_work": least_work,
    "fanout": fanout,
    "images": images,
    "covers": covers,
    "memory": memory,
    "batch": batch,
    "quality": quality,
    "framing": framing,
}

# After SCENARIOS: they use this module's helpers (imported here, not the other way round).
from .cost import cost  # noqa: E402
from .posts import longbatch, x264  # noqa: E402

SCENARIOS.update(cost=cost, longbatch=longbatch, x264=x264)
