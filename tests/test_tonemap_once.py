"""An HDR source going to several outputs is tone-mapped once, before the split (issue 26)."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.job import parse_job
from pipeline.models import MediaRef
from pipeline.plan import VideoTarget, account_preset, plan_job, rescaled, tone_map_once
from pipeline.presets import load_presets
from pipeline.validate import check_account
from pipeline.video import build_shared_args
from tests.factories import video_info

PRESETS = load_presets()
ACCOUNTS = [{"id": "tt", "platform": "tiktok"}, {"id": "x", "platform": "x"},
            {"id": "li", "platform": "linkedin"},
            {"id": "ig", "platform": "instagram", "settings": {"post_type": "REELS"}}]


def hdr_encodes(width: int = 1920, height: int = 1080) -> list[VideoTarget]:
    info = video_info(width, height, codec="hevc", pix_fmt="yuv420p10le", hdr=True,
                      fps=Fraction(30))
    job = parse_job({"workspace_id": "w", "content": [{"media": ["v"]}], "accounts": ACCOUNTS},
                    PRESETS)
    refs = {MediaRef("library", "v"): info}
    checks = [check_account(job, a, account_preset(a, PRESETS), refs) for a in job.accounts]
    jobplan = plan_job(checks, sha_of={MediaRef("library", "v"): "sha-v"}, thumb_infos={})
    assert len(jobplan.decodes) == 1
    keys = set(jobplan.decodes[0])
    return [r.target for r in jobplan.renditions
            if r.key in keys and isinstance(r.target, VideoTarget)]


def graph_of(args: list[str]) -> str:
    return args[args.index("-filter_complex") + 1]


def test_hdr_post_graph_has_one_tone_map_at_the_largest_members_size() -> None:
    targets = hdr_encodes()
    assert len(targets) >= 2 and all(t.tonemap for t in targets)
    args = build_shared_args(Path("/m/src.mp4"), "mp4",
                             [(t, Path(f"/w/{i}.mp4")) for i, t in enumerate(targets)],
                             duration_s=10)
    graph = graph_of(args)
    assert graph.count("]tonemap=") == 1
    assert graph.index("tonemap=") < graph.index("split=")  # before the split: shared
    # X's 1280x720 is the largest picture any output needs from a 1920x1080 source.
    once = tone_map_once(targets)
    assert once is not None and (once.width, once.height) == (1280, 720)
    assert "scale=1280:720:flags=lanczos" in graph.split("tonemap=")[0]
    # every output is still tagged SDR BT.709
    assert args.count("-color_primaries") == args.count("-color_trc") == len(targets)
    assert {args[i + 1] for i, a in enumerate(args) if a in ("-color_primaries", "-color_trc",
                                                              "-colorspace")} == {"bt709"}


def test_sdr_and_smart_framed_posts_keep_their_own_colour_chain() -> None:
    targets = hdr_encodes()
    sdr = [t.__class__(**{**{f: getattr(t, f) for f in t.__dataclass_fields__},
                          "tonemap": False, "in_transfer": None}) for t in targets]
    assert tone_map_once(sdr) is None
    assert tone_map_once(targets[:1]) is None


def test_rescaled_geometry_keeps_the_crop_in_the_smaller_picture() -> None:
    t = hdr_encodes(3840, 2160)[0]
    g = rescaled(t.geometry, 1920, 1080)
    assert (g.source_width, g.source_height) == (1920, 1080)
    assert g.crop_width * 2 == t.geometry.crop_width or abs(
        g.crop_width * 2 - t.geometry.crop_width) <= 2
    assert (g.width, g.height, g.content_width, g.content_height) == (
        t.geometry.width, t.geometry.height, t.geometry.content_width,
        t.geometry.content_height)


@pytest.mark.ffmpeg
def test_hdr_post_outputs_are_tagged_sdr_after_one_tone_map(tmp_path: Path,
                                                             make_clip: Any) -> None:
    src = make_clip(width=640, height=360, seconds=3.5, fps=10, codec="hevc",
                    pix_fmt="yuv420p10le", hdr="pq")
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"workspace_id": "w", "id": "hdr",
                               "content": [{"media": [src.name]}],
                               "accounts": ACCOUNTS[:2]}))
    library = f"file://{src.parent}/{{id}}"
    planned = CliRunner().invoke(main, ["plan", str(job), "--library", library, "--json"],
                                 catch_exceptions=False)
    data = json.loads(planned.stdout)
    # both encodes in one decode: the shared graph, whose one tone map the test above checks
    assert (data["encodes"], data["decodes"]) == (2, 1)
    result = CliRunner().invoke(main, ["run", str(job), "--library", library, "--dest",
                                       str(tmp_path / "out"), "--no-progress"],
                                env={"CONFORM_X264_PRESET": "ultrafast"},
                                catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    manifest = json.loads(result.stdout)
    uris = {a["media"][0]["uri"] for a in manifest["accounts"]}
    assert len(uris) == 2
    for uri in uris:
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
             "stream=pix_fmt,color_primaries,color_transfer,color_space,color_range",
             "-of", "json", uri.removeprefix("file://")],
            capture_output=True, text=True, check=True)
        stream = json.loads(probe.stdout)["streams"][0]
        assert stream == {"pix_fmt": "yuv420p", "color_primaries": "bt709",
                          "color_transfer": "bt709", "color_space": "bt709",
                          "color_range": "tv"}
