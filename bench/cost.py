"""``cost``: CPU seconds and encodes per post, before issue 26 (fewer encodes) and after.

The same mix of posts as before (``bench.posts``: phone 1080p, 4K60 portrait and HDR10 clips
to six typical accounts; photos and a carousel to five) goes through ``conform batch
--workers 1`` twice in one run, on the same machine: once with the code of ``--before``
(default: main just before issue 26, extracted with ``git archive`` into the bench's temp
folder and run from there) and once with this checkout. Each side's CPU seconds are its whole
process tree's (``wait4``); the encodes per post are what ``conform plan --json`` says.

Every output of the after side is read back from its file: a video is probed and held to the
video rules of its account's variant (``pipeline.rules``, the verifier's), SDR BT.709 tags for
an encode; a picture must open at its manifest size. No account may receive less than its
platform displays: the after file must be at least the before file fitted into the player's
largest size (``display_long_side`` x ``display_short_side`` in the preset; without one, the
before file's own size).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from . import posts as mix  # the posts and the naive side (module: imported either way round)
from .measure import BenchError, run_process
from .scenarios import Ctx, Row, _judge, _quick_note

# main just before issue 26: every account's own encode, a tone map per output.
BEFORE_REV = "d2cf181"
GOAL = 0.6  # CPU per video post, after / before
DISPLAY_SLACK_PX = 2


def _before_tree(ctx: Ctx) -> Path | None:
    """The ``before`` code, extracted once into the temp folder; None when git cannot."""
    tree = ctx.root / f"before-{ctx.before}"
    if (tree / "pipeline").is_dir():
        return tree
    tree.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ctx.repo), "archive", ctx.before],
                             capture_output=True, check=False)
    if archive.returncode != 0:
        return None
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


def _conform(ctx: Ctx, tree: Path, *args: str) -> Any:
    """``python -m pipeline ARGS`` with the code of ``tree``."""
    return run_process([sys.executable, "-m", "pipeline", *args],
                       env=ctx.env(PYTHONPATH=str(tree)), cwd=tree, check=False)


def _batch(ctx: Ctx, tree: Path, posts: list[dict[str, Any]], lib: Path,
           name: str) -> tuple[float, list[dict[str, Any]]]:
    """CPU seconds of one ``conform batch`` over ``posts``, and its manifests."""
    source = ctx.dir("jobs") / f"{name}.jsonl"
    source.write_text("".join(json.dumps(p) + "\n" for p in posts))
    run = _conform(ctx, tree, "batch", str(source), "--workers", "1", "--library",
                   f"file://{lib}/{{id}}", "--dest", str(ctx.root / f"dest-{name}"),
                   "--no-progress", "--force")
    if run.returncode not in (0, 1):
        raise BenchError(f"conform batch ({name}) exited {run.returncode}")
    return run.cpu_s, [json.loads(line) for line in run.stdout.decode().splitlines() if line]


def _encodes(ctx: Ctx, tree: Path, post: dict[str, Any], lib: Path) -> int:
    """How many encodes ``conform plan`` plans for one post."""
    job = ctx.dir("jobs") / f"plan-{post['id']}.json"
    job.write_text(json.dumps(post))
    run = _conform(ctx, tree, "plan", str(job), "--library", f"file://{lib}/{{id}}", "--json")
    if run.returncode != 0:
        raise BenchError(f"conform plan {post['id']} exited {run.returncode}")
    return int(json.loads(run.stdout)["encodes"])


def _file(uri: str) -> Path:
    return Path(uri.removeprefix("file://"))


def _video_problems(manifests: list[dict[str, Any]]) -> list[str]:
    """Every video output probed from its file and held to its account's variant's rules."""
    from pipeline import rules
    from pipeline.presets import load_presets
    from pipeline.probe import probe

    presets = load_presets()
    problems: list[str] = []
    for manifest in manifests:
        for account in manifest.get("accounts", []):
            found = presets.find_variant(account.get("variant") or "")
            for m in account.get("media", []):
                if m["kind"] != "video" or found is None or found[1].video is None:
                    continue
                spec = found[1].video
                info = probe(_file(m["uri"]))
                encoded = "transcoded" in m["actions"]
                issues = rules.video_stream_problems(info, spec, max_bytes=spec.max_bytes,
                                                     tolerance=rules.OUTPUT, encoded=encoded)
                v = info.video
                if encoded and v is not None and (v.color_primaries, v.color_transfer,
                                                  v.color_space) != ("bt709",) * 3:
                    issues.append("not tagged BT.709")
                problems += [f"{account['account_id']} {_file(m['uri']).name}: {p}"
                             for p in issues]
    return problems


def _display_floor(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[str]:
    """Accounts whose after video is smaller than the before one fitted into their player."""
    from pipeline.presets import load_presets

    presets = load_presets()
    sizes = {(m["job_id"], a["account_id"], x["content_index"], x["media_index"]):
             (x["width"], x["height"]) for m in before for a in m.get("accounts", [])
             for x in a.get("media", []) if x["kind"] == "video"}
    problems: list[str] = []
    for manifest in after:
        for account in manifest.get("accounts", []):
            found = presets.find_variant(account.get("variant") or "")
            spec = found[1].video if found else None
            for x in account.get("media", []):
                was = sizes.get((manifest["job_id"], account["account_id"], x["content_index"],
                                 x["media_index"]))
                if x["kind"] != "video" or was is None or spec is None:
                    continue
                w, h = _probed_size(_file(x["uri"]))
                need = _fitted(was, spec.display_long_side, spec.display_short_side)
                if w + DISPLAY_SLACK_PX < need[0] or h + DISPLAY_SLACK_PX < need[1]:
                    problems.append(f"{manifest['job_id']} {account['account_id']}: {w}x{h} "
                                    f"below {need[0]}x{need[1]}")
    return problems


def _probed_size(path: Path) -> tuple[int, int]:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream=width,height", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    stream = json.loads(out)["streams"][0]
    return int(stream["width"]), int(stream["height"])


def _fitted(size: tuple[int, int], long_side: int | None,
            short_side: int | None) -> tuple[int, int]:
    """``size`` fitted into the player's box (never up); the size itself without one."""
    w, h = size
    if long_side is None or short_side is None:
        return w, h
    box = (long_side, short_side) if w >= h else (short_side, long_side)
    scale = min(1.0, box[0] / w, box[1] / h)
    return int(w * scale), int(h * scale)


def cost(ctx: Ctx) -> list[Row]:
    """CPU and encodes per post, before issue 26 and after, in one run."""
    if not mix.CORPUS.is_dir():
        raise BenchError(f"the corpus is not at {mix.CORPUS}")
    lib = ctx.dir("lib-cost")
    posts = mix._posts(ctx, lib)
    if ctx.stages:
        from .stages import profile_posts

        return profile_posts(ctx, lib, posts, mix._naive)
    videos = [p for p in posts if p["id"].startswith("cost-phone")]
    photos = [p for p in posts if p not in videos]
    before = _before_tree(ctx)
    if before is None and ctx.profile.judge:
        raise BenchError(f"cannot extract {ctx.before} with git archive (a full clone is "
                         "needed for the before side)")
    sides = {"after": ctx.repo, **({"before": before} if before else {})}
    cpu: dict[str, dict[str, float]] = {}
    encodes: dict[str, list[int]] = {}
    manifests: dict[str, list[dict[str, Any]]] = {}
    for side, tree in sides.items():
        ctx.log(f"cost: {side}: {len(videos)} video posts, {len(photos)} photo posts")
        encodes[side] = [_encodes(ctx, tree, p, lib) for p in videos]
        video_cpu, video_manifests = _batch(ctx, tree, videos, lib, f"{side}-videos")
        photo_cpu, photo_manifests = _batch(ctx, tree, photos, lib, f"{side}-photos")
        cpu[side] = {"video": video_cpu, "photo": photo_cpu}
        manifests[side] = video_manifests + photo_manifests
    problems = mix._check_outputs(manifests["after"]) + _video_problems(manifests["after"])
    if "before" in manifests:
        problems += _display_floor(manifests["before"], manifests["after"])
    return _rows(ctx, videos, photos, cpu, encodes, problems)


def _rows(ctx: Ctx, videos: list[dict[str, Any]], photos: list[dict[str, Any]],
          cpu: dict[str, dict[str, float]], encodes: dict[str, list[int]],
          problems: list[str]) -> list[Row]:
    nv, np_ = max(1, len(videos)), max(1, len(photos))
    after = cpu["after"]
    notes = _quick_note(ctx) + problems[:5]
    details = {"cpu_s": cpu, "encodes_per_video_post": encodes, "problems": problems,
               "video_posts": [p["id"] for p in videos], "before_rev": ctx.before}
    checked = "all pass" if not problems else f"{len(problems)} problem(s)"
    if "before" not in cpu:
        notes.append(f"before side skipped: {ctx.before} could not be extracted")
        return [Row("cost", "CPU per video post, after / before issue 26",
                    f"after only: {after['video'] / nv:.1f} CPU-s/video post, "
                    f"{after['photo'] / np_:.1f} CPU-s/photo post; outputs: {checked}",
                    None, "x", f"<= {GOAL}", None, details, notes)]
    before = cpu["before"]
    ratio = after["video"] / before["video"] if before["video"] else float("inf")
    per_post = ", ".join(f"{p['id'].removeprefix('cost-')} {b}->{a}" for p, b, a in zip(
        videos, encodes["before"], encodes["after"], strict=True))
    return [
        Row("cost", "CPU per video post, after / before issue 26",
            f"{len(videos)} video posts to {len(videos[0]['accounts']) if videos else 0} "
            f"accounts: {after['video'] / nv:.1f} vs {before['video'] / nv:.1f} CPU-s/post; "
            f"photo posts {after['photo'] / np_:.1f} vs {before['photo'] / np_:.1f} "
            f"CPU-s/post; every output read back: {checked}",
            round(ratio, 3), "x", f"<= {GOAL}", _judge(ctx, ratio <= GOAL and not problems),
            details, notes),
        Row("cost", "encodes per video post, after / before",
            f"{sum(encodes['after']) / nv:.2f} vs {sum(encodes['before']) / nv:.2f} "
            f"({per_post})", round(sum(encodes["after"]) / max(1, sum(encodes["before"])), 3),
            "x", "", None, details),
    ]
