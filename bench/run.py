"""``python -m bench``: run the scenarios, print a table of medians and ratios, write JSON.

Usage::

    python -m bench                       # the full bench (about 15-20 minutes on 2 cores)
    python -m bench --quick               # smoke mode: toy inputs, one run, not judged
    python -m bench --only overhead,images --runs 5 --json /tmp/bench.json

Inputs are generated under a temporary folder in /tmp (``--keep`` keeps it) and removed at the
end. Exit status: 0 when every scenario ran (goals met or not; ``--check`` makes an unmet goal
exit 1), 2 when a scenario could not run.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from .measure import BenchError
from .scenarios import FULL, QUICK, SCENARIOS, Ctx, Profile, Row

REPO = Path(__file__).resolve().parent.parent
DEFAULT_JSON = REPO / "bench" / "out" / "results.json"


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def find_vipsthumbnail(install: bool) -> tuple[str | None, str]:
    """vipsthumbnail's path, installing Debian's libvips-tools when allowed and missing.

    Returns:
        (path or None, a note saying why it is missing).
    """
    found = shutil.which("vipsthumbnail")
    if found or not install:
        return found, "" if found else "vipsthumbnail not installed (quick mode never installs)"
    apt = shutil.which("apt-get")
    if apt is None:
        return None, "vipsthumbnail missing and no apt-get to install libvips-tools"
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    _log("installing libvips-tools with apt-get (for the vipsthumbnail comparison)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in ([*sudo, apt, "update", "-q"],
                [*sudo, apt, "install", "-y", "-q", "--no-install-recommends", "libvips-tools"]):
        try:
            done = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            return None, f"could not install libvips-tools: {err}"
        if done.returncode != 0:
            tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
            return None, f"could not install libvips-tools: {' '.join(tail)}"
    found = shutil.which("vipsthumbnail")
    return found, "" if found else "libvips-tools installed but vipsthumbnail not on PATH"


def _version(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, timeout=30, check=False,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).decode("utf-8", "replace").strip()
    return text.splitlines()[0] if text else None


def machine_info(vips: str | None) -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    from PIL import __version__ as pillow_version

    from pipeline.ffmpeg import ffmpeg_exe

    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gb": mem_gb,
        "os": platform.platform(), "python": platform.python_version(),
        "ffmpeg": _version([ffmpeg_exe(), "-hide_banner", "-version"]),
        "pillow": pillow_version,
        "vips": _version([vips, "--vips-version"]) if vips else None,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def render_table(rows: list[Row]) -> str:
    """A fixed-width table: scenario, check, what was measured, result, goal, met."""
    header = ("scenario", "check", "result", "goal", "met", "measured (medians)")
    body = []
    for r in rows:
        result = "-" if r.value is None else f"{r.value:g} {r.unit}"
        met = {True: "yes", False: "NO", None: "-"}[r.met]
        body.append((r.scenario, r.check, result, r.goal, met, r.measured))
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(5)]
    lines = []
    for line in [header, *body]:
        cells = [str(c).ljust(widths[i]) for i, c in enumerate(line[:5])]
        lines.append("  ".join([*cells, line[5]]).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * 18)
    return "\n".join(lines)


def render_markdown(rows: list[Row]) -> str:
    """The same table as Markdown (for BENCHMARKS.md)."""
    out = ["| scenario | check | result | goal | met | measured (medians) |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        result = "-" if r.value is None else f"{r.value:g} {r.unit}"
        met = {True: "yes", False: "**no**", None: "-"}[r.met]
        out.append(f"| {r.scenario} | {r.check} | {result} | {r.goal} | {met} | {r.measured} |")
    return "\n".join(out)


def _write_report(path: Path, profile: Profile, started: float, machine: dict[str, Any],
                  rows: list[Row], errors: dict[str, str]) -> dict[str, Any]:
    report = {
        "schema": 1,
        "profile": profile.name,
        "runs": {"encodes": profile.runs, "fanout": profile.fanout_runs,
                 "images": profile.image_runs, "covers": profile.cover_runs},
        "started": dt.datetime.fromtimestamp(time.time() - (time.monotonic() - started),
                                             dt.UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - started, 1),
        "machine": {**machine, "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "results": [r.to_dict() for r in rows],
        "errors": errors,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line flags."""
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", "--smoke", action="store_true",
                   help="tiny inputs, one run, goals not judged (the test suite runs this)")
    p.add_argument("--only", default="", help="comma-separated scenarios: " + ", ".join(SCENARIOS))
    p.add_argument("--runs", type=int, default=None, help="repetitions per measurement")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write results")
    p.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    p.add_argument("--tmp", type=Path, default=None, help="parent of the temporary folder")
    p.add_argument("--keep", action="store_true", help="keep generated inputs and outputs")
    p.add_argument("--no-install", action="store_true",
                   help="never apt-get install libvips-tools")
    p.add_argument("--check", action="store_true", help="exit 1 when a goal is not met")
    p.add_argument("--clips", default="",
                   help="comma-separated corpus clips for x264 (e.g. phone-4k60); default all")
    p.add_argument("--stages", action="store_true",
                   help="cost: log every ffmpeg/ffprobe call (purpose, CPU s) per post")
    p.add_argument("--before", default="d2cf181",
                   help="cost: the git revision to compare with (default: main before issue 26)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the bench; see the module docstring."""
    args = parse_args(argv)
    profile = QUICK if args.quick else FULL
    if args.runs:
        # The cheap scenarios (images, covers) get more repetitions than the encodes.
        n = max(1, args.runs)
        profile = dataclasses.replace(profile, runs=n, fanout_runs=min(n, profile.fanout_runs),
                                      image_runs=2 * n + 1 if n > 1 else 1,
                                      cover_runs=2 * n + 1 if n > 1 else 1)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)} (have: {', '.join(SCENARIOS)})",
              file=sys.stderr)
        return 2
    vips, vips_note = (None, "")
    if "images" in names:
        vips, vips_note = find_vipsthumbnail(install=not (args.quick or args.no_install))
    parent = args.tmp or Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="conform-bench-", dir=parent))
    ctx = Ctx(profile=profile, root=root, repo=REPO, log=_log, vipsthumbnail=vips,
              vips_note=vips_note,
              clips=tuple(c.strip() for c in args.clips.split(",") if c.strip()),
              stages=args.stages, before=args.before)
    started = time.monotonic()
    info = machine_info(vips)
    rows: list[Row] = []
    errors: dict[str, str] = {}
    _log(f"profile {profile.name}, scenarios {', '.join(names)}, temp {root}")
    try:
        for name in names:
            t0 = time.monotonic()
            try:
                rows.extend(SCENARIOS[name](ctx))
            except Exception as err:  # one broken scenario must not hide the others' numbers
                _log(f"{name} could not run: {err}")
                if not isinstance(err, BenchError):
                    traceback.print_exc(file=sys.stderr)
                errors[name] = f"{type(err).__name__}: {err}"
                first = (str(err).splitlines() or [""])[0][:200]
                rows.append(Row(name, "error", f"could not run: {first}", None, "", "", None))
            _log(f"{name} done in {time.monotonic() - t0:.0f} s")
            # Written after every scenario, so a run stopped half-way keeps what it measured.
            _write_report(args.json, profile, started, info, rows, errors)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    report = _write_report(args.json, profile, started, info, rows, errors)
    print(render_table(rows))
    if args.markdown:
        print()
        print(render_markdown(rows))
    for r in rows:
        for note in r.notes:
            print(f"  note ({r.scenario}: {r.check}): {note}")
    print(f"\n{profile.name} bench, {report['duration_s']} s; JSON: {args.json}")
    if errors:
        return 2
    if args.check and any(r.met is False for r in rows):
        return 1
    return 0
