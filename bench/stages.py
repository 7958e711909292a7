"""Per-stage CPU of a conform run: every ffmpeg and ffprobe call it makes, with its CPU seconds.

conform finds ffmpeg and ffprobe on PATH (``pipeline.ffmpeg.ffmpeg_exe``), so a folder of two
small shims placed first on PATH sees every call without touching the pipeline: each shim forks
the real binary, waits for it with ``wait4`` (CPU of the call and anything it started) and
appends one JSON line (argv, CPU, wall) to the file named by ``BENCH_STAGE_LOG``. What is left
of the run's CPU after the calls is Python (conform's own work: planning, Pillow, OpenCV face
checks, hashing) plus the shims' start-up (a ``python -S`` each, a few ms, counted and shown).

``purpose`` names a call from its argv, the way a reader of the table would: the probe's
stream JSON, the probe's packet scan, the decode check, the loudness pass, an encode (with its
frame size, fps, preset and CRF), a frame sample for the face/framing checks, and so on.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOG_ENV = "BENCH_STAGE_LOG"

_SHIM = '''#!{python} -S
import json, os, signal, sys, time
real = {real!r}
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(real, [real, *sys.argv[1:]])
_, status, ru = os.wait4(pid, 0)
log = os.environ.get({log_env!r})
if log:
    line = json.dumps({{"tool": {tool!r}, "argv": sys.argv[1:], "user_s": ru.ru_utime,
                       "sys_s": ru.ru_stime, "wall_s": time.perf_counter() - t0,
                       "rc": os.waitstatus_to_exitcode(status)}})
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(line + "\\n")
code = os.waitstatus_to_exitcode(status)
if code < 0:
    signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
sys.exit(code)
'''


def make_shims(folder: Path) -> Path:
    """Write ``ffmpeg`` and ``ffprobe`` shims into ``folder``; returns it (put it first on
    PATH, with ``FFMPEG_PATH``/``FFPROBE_PATH`` unset)."""
    folder.mkdir(parents=True, exist_ok=True)
    for tool in ("ffmpeg", "ffprobe"):
        real = os.environ.get(f"{tool.upper()}_PATH") or shutil.which(tool)
        if not real:
            raise FileNotFoundError(f"{tool} is not on PATH")
        shim = folder / tool
        shim.write_text(_SHIM.format(python=sys.executable, real=str(Path(real).resolve()),
                                     log_env=LOG_ENV, tool=tool))
        shim.chmod(shim.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return folder


def shim_env(folder: Path, log: Path) -> dict[str, str]:
    """Environment entries that route a child's ffmpeg/ffprobe calls through the shims."""
    return {"PATH": f"{folder}{os.pathsep}{os.environ.get('PATH', '')}", LOG_ENV: str(log),
            "FFMPEG_PATH": "", "FFPROBE_PATH": ""}


@dataclass(frozen=True)
class Call:
    """One logged ffmpeg/ffprobe call."""

    tool: str
    purpose: str
    cpu_s: float
    wall_s: float


def _opt(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv and argv.index(name) + 1 < len(argv) else None


def _graph(argv: list[str]) -> str:
    return _opt(argv, "-filter_complex") or _opt(argv, "-vf") or _opt(argv, "-af") or ""


def _encode_purpose(argv: list[str]) -> str:
    """``encode 1080x1920+1280x720@60 medium crf20 [fill,tonemap]`` from an encode's argv
    (one size per output: a shared decode feeds several encoders)."""
    graph = _graph(argv)
    outputs = max(1, argv.count("-map") if "-filter_complex" in argv else 1)
    # An output's frame size is the scale or pad just before its setsar (or the overlay of
    # the blurred fill), not the fill's small helper or the content inside the frame.
    sizes = re.findall(r"(?:pad|scale)=(?:w=)?(\d+):(?:h=)?(\d+)[^;,\[]*"
                       r"(?:,|\[\w+\];\[\w+\](?:\[\w+\])?)(?:setsar|overlay)", graph)
    what = "+".join(f"{w}x{h}" for w, h in sizes) or "?"
    fps = re.search(r"fps=(?:fps=)?([\d/.]+)", graph)
    rate = fps.group(1) if fps else (_opt(argv, "-r") or "src")
    tags = [t for t, hit in (("fill", "boxblur" in graph or "gblur" in graph),
                             ("tonemap", "tonemap" in graph),
                             ("loudnorm", "loudnorm" in graph),
                             ("pass 1", _opt(argv, "-pass") == "1"),
                             ("pass 2", _opt(argv, "-pass") == "2")) if hit]
    audio = " +aac" if "aac" in argv else ""
    head = f"shared encode of {outputs}: " if outputs > 1 else "encode "
    return (f"{head}{what}@{rate} {_opt(argv, '-preset') or '?'} crf{_opt(argv, '-crf') or '?'}"
            f"{audio}{' [' + ','.join(tags) + ']' if tags else ''}")


def purpose(tool: str, argv: list[str]) -> str:
    """A short human name for one call, from its argv."""
    joined = " ".join(argv)
    if tool == "ffprobe":
        if "-show_packets" in argv or "packet=" in joined:
            audio = _opt(argv, "-select_streams") in ("a", "a:0")
            return "probe: audio packets (priming)" if audio else "probe: packet scan"
        if "-show_frames" in argv or "frame=" in joined:
            return "probe: frame read"
        return "probe: streams/format"
    if "-version" in argv or "-encoders" in argv or "-filters" in argv:
        return "ffmpeg -" + next(a for a in argv if a in ("-version", "-encoders", "-filters"))[1:]
    if "libx264" in argv:
        return _encode_purpose(argv)
    if "ebur128" in joined or ("loudnorm" in joined and "print_format" in joined):
        return "loudness analysis"
    if "-f" in argv and _opt(argv, "-f") == "null":
        graph = _graph(argv)
        return f"analysis (-f null): {graph[:40]}" if graph else "decode check (-f null)"
    if "rawvideo" in joined or "image2pipe" in joined or "-frames:v" in argv:
        return "frame sample: " + (_graph(argv)[:40] or "raw")
    if "copy" in (_opt(argv, "-c"), _opt(argv, "-c:v")):
        return "remux (stream copy)"
    return "ffmpeg: " + (_graph(argv)[:50] or joined[:50])


def read_log(log: Path) -> list[Call]:
    """The calls logged in ``log`` (missing file: none)."""
    if not log.exists():
        return []
    calls = []
    for line in log.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        entry: dict[str, Any] = json.loads(line)
        calls.append(Call(entry["tool"], purpose(entry["tool"], entry["argv"]),
                          entry["user_s"] + entry["sys_s"], entry["wall_s"]))
    return calls


def summarize(calls: list[Call], total_cpu: float, shim_overhead_s: float = 0.03
              ) -> list[tuple[str, int, float]]:
    """(purpose, calls, CPU s) grouped by purpose, most expensive first, then ``Python``
    (total minus the calls, the shims' estimated start-up included in it)."""
    groups: dict[str, list[float]] = {}
    for c in calls:
        groups.setdefault(c.purpose, []).append(c.cpu_s)
    rows = sorted(((p, len(v), sum(v)) for p, v in groups.items()), key=lambda r: -r[2])
    rest = total_cpu - sum(c.cpu_s for c in calls)
    rows.append(("Python (conform) + shims", 1, rest))
    rows.append((f"  of which shim start-up (~{shim_overhead_s * 1000:.0f} ms/call)",
                 len(calls), shim_overhead_s * len(calls)))
    return rows


def render(title: str, rows: list[tuple[str, int, float]], total: float) -> str:
    """A small text table of one post's stages."""
    out = [f"{title}: {total:.1f} CPU-s"]
    out += [f"  {cpu:7.2f} s  {n:3d}x  {p}" for p, n, cpu in rows]
    return "\n".join(out)


__all__ = ["LOG_ENV", "Call", "make_shims", "profile_posts", "purpose", "read_log", "render",
           "shim_env", "summarize"]


def _conform_post(ctx: Any, lib: Path, post: dict[str, Any], shims: Path
                  ) -> tuple[float, list[Call], dict[str, Any]]:
    """``conform run`` of one post with the shims on PATH: total CPU, its calls, manifest."""
    from .measure import BenchError

    job = ctx.dir("jobs-stages") / f"{post['id']}.json"
    job.write_text(json.dumps(post))
    log = ctx.dir("stages") / f"{post['id']}.jsonl"
    log.unlink(missing_ok=True)
    dest = ctx.root / "dest-stages" / post["id"]
    shutil.rmtree(dest, ignore_errors=True)
    run = ctx.conform("run", str(job), "--library", f"file://{lib}/{{id}}", "--dest", str(dest),
                      "--no-progress", "--force", check=False, **shim_env(shims, log))
    if run.returncode not in (0, 1):
        raise BenchError(f"conform run {post['id']} exited {run.returncode}: "
                         f"{run.stderr_tail[-300:]}")
    return run.cpu_s, read_log(log), json.loads(run.stdout or b"{}")


def profile_posts(ctx: Any, lib: Path, posts: list[dict[str, Any]], naive: Any) -> list[Any]:
    """``--stages``: each post alone through ``conform run`` (shims on PATH) and through the
    naive pipeline; prints a stage table per post and returns one row per post plus a total
    row (the ratio as in ``cost``, but with per-post process start-up on both sides)."""
    import tempfile

    from .scenarios import Row

    shims = make_shims(ctx.dir("shims"))
    rows: list[Any] = []
    totals = [0.0, 0.0]
    report: list[str] = []
    for post in posts:
        ctx.log(f"stages: {post['id']} to {len(post['accounts'])} accounts")
        cpu, calls, manifest = _conform_post(ctx, lib, post, shims)
        naive_calls: list[tuple[str, float]] = []
        with tempfile.TemporaryDirectory(dir=ctx.root) as tmp:
            naive_cpu, _n = naive(ctx, lib, [post], Path(tmp), naive_calls)
        totals[0] += cpu
        totals[1] += naive_cpu
        table = summarize(calls, cpu)
        report.append(render(f"{post['id']} conform ({manifest.get('status')})", table, cpu))
        report.append(render(f"{post['id']} naive",
                             [(p, 1, c) for p, c in naive_calls], naive_cpu))
        rows.append(Row("cost-stages", f"{post['id']}: conform / naive CPU",
                        "; ".join(f"{p} {n}x {c:.2f} s" for p, n, c in table)
                        + " | naive: " + "; ".join(f"{p} {c:.2f} s" for p, c in naive_calls),
                        round(cpu / naive_cpu, 3) if naive_cpu else None, "x", "informational",
                        None, {"conform_cpu_s": cpu, "naive_cpu_s": naive_cpu,
                               "calls": [c.__dict__ for c in calls],
                               "naive_calls": naive_calls}))
    for block in report:
        print(block, file=sys.stderr)
    rows.append(Row("cost-stages", "all posts, each run alone: conform / naive CPU",
                    f"{len(posts)} posts: conform {totals[0]:.0f} CPU-s, naive {totals[1]:.0f}",
                    round(totals[0] / totals[1], 3) if totals[1] else None, "x", "<= 0.3",
                    None, {"conform_cpu_s": totals[0], "naive_cpu_s": totals[1]}))
    return rows
