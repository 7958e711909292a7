"""Issue #21 item 13: extreme shapes are made into outputs every platform takes, never a 500.

An 8192x2 strip used to be scaled past a platform's limits and refused after it was made
(``processing_failed``, 500): X's 4 px minimum height took it to 16384x4 (over 8192), TikTok's
and Bluesky's caps to 4032x1 (the 1 px "minimum" pulled the scale up), and Instagram's 1.91:1
crop of it to 305x160 (under the 320 px minimum). A variant's size limits also bound the shapes
it can take (X: 4x4 to 8192x8192, so at most 2048:1): a strip beyond is padded (or cropped) to
the nearest shape that fits, and a side that can only be a pixel tall is one.

Outputs are checked from the delivered files, the way the platform would
(tests/support/imagecheck.py), and for the strip's own colour in them.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image

from pipeline import probe
from pipeline.cli import main
from pipeline.geometry import fit_geometry
from pipeline.plan import plan_image
from pipeline.presets import load_presets
from tests.support.imagecheck import platform_problems
from tests.support.jobkit import EVERY_IMAGE_SURFACE

PRESETS = load_presets()
RED = (220, 30, 30)
ACCOUNTS = EVERY_IMAGE_SURFACE
SHAPES = {"wide.png": (8192, 2), "tall.png": (2, 8192), "line.png": (16384, 1),
          "column.png": (1, 16384)}


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("strips")
    for name, size in SHAPES.items():
        Image.new("RGB", size, RED).save(root / name)
    return root


def _run(library: Path, media: str, fit: str | None, tmp: Path) -> dict[str, Any]:
    job: dict[str, Any] = {"workspace_id": "ws", "id": "strip", "accounts": ACCOUNTS,
                           "content": [{"media": [media]}]}
    if fit is not None:
        job["conform"] = {"fit": fit}
    (tmp / "job.json").write_text(json.dumps(job))
    result = CliRunner().invoke(main, ["run", str(tmp / "job.json"), "--library",
                                       f"file://{library}/{{id}}", "--dest", str(tmp / "out"),
                                       "--workdir", str(tmp), "--no-progress"],
                                catch_exceptions=False)
    manifest: dict[str, Any] = json.loads(result.stdout)
    return manifest


def _spec_and_cap(variant_id: str) -> tuple[Any, int]:
    found = PRESETS.find_variant(variant_id)
    assert found is not None
    preset, variant = found
    spec = variant.image
    assert spec is not None
    return spec, min(spec.max_bytes, preset.limits.max_image_bytes or spec.max_bytes)


@pytest.mark.parametrize("fit", [None, "crop", "pad", "smart"])
@pytest.mark.parametrize("media", list(SHAPES))
def test_a_strip_reaches_every_platform(library: Path, tmp_path: Path, media: str,
                                        fit: str | None) -> None:
    manifest = _run(library, media, fit, tmp_path)
    for account in manifest["accounts"]:
        assert account["status"] == "ok", (account["account_id"], account["errors"])
        (medium,) = account["media"]
        spec, cap = _spec_and_cap(account["variant"])
        path = Path(medium["uri"][len("file://"):])
        assert platform_problems(path, spec, cap) == [], (account["account_id"], medium)
        with Image.open(path) as im:
            rgb = im.convert("RGB")
        # The strip itself is in the picture, along the whole long side (a 1 px line in a
        # JPEG keeps its hue, not its exact colour: chroma is shared by 2x2 pixels).
        reds = sum(n for n, (r, g, b) in rgb.getcolors(1 << 24) or []
                   if r > g + 50 and r > b + 50)
        along = rgb.size[0] if SHAPES[media][0] > SHAPES[media][1] else rgb.size[1]
        assert reds >= along, (account["account_id"], rgb.size, reds)


def test_a_strip_wider_than_the_size_limits_allow_is_padded_to_the_widest_shape(
        library: Path) -> None:
    info = probe.probe(library / "wide.png")
    spec, cap = _spec_and_cap("twitter-image")
    target, actions, _ = plan_image(info, spec, max_bytes=cap)
    g = target.geometry
    # X takes 4x4 to 8192x8192: 2048:1 at most. The 4096:1 strip keeps its pixels, padded.
    assert (g.width, g.height) == (8192, 4)
    assert (g.content_width, g.content_height) == (8192, 2)
    assert "padded" in actions


def test_a_one_pixel_minimum_never_scales_past_a_cap() -> None:
    g = fit_geometry(8192, 2, aspect=None, fit="none", max_width=1920, max_height=1920)
    assert (g.width, g.height) == (1920, 1)
    g = fit_geometry(2, 8192, aspect=None, fit="none", max_width=1920, max_height=1920,
                     even=True)
    assert (g.width, g.height) == (2, 1920)
    # A real minimum still upscales (X's 4 px).
    g = fit_geometry(40, 2, aspect=None, fit="none", max_width=8192, max_height=8192,
                     min_width=4, min_height=4)
    assert (g.width, g.height) == (80, 4)


def test_the_instagram_crop_of_a_strip_keeps_the_minimum_width(library: Path) -> None:
    info = probe.probe(library / "wide.png")
    spec, cap = _spec_and_cap("instagram-feed-image")
    target, _, _ = plan_image(info, spec, max_bytes=cap)
    g = target.geometry
    assert g.width >= spec.min_width
    assert spec.aspect_max is not None
    assert Fraction(g.width, g.height) <= spec.aspect_max
