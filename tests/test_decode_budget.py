"""Issue #12 item 5: image decode memory is bounded by bytes, not pixels alone, and shared.

A 19999x19999 PNG is under the 400 MP pixel cap, yet decoding it took 2.4 GB (8-bit RGB) or
3.8 GB (16-bit). The cost is now estimated from the header (size, mode, bit depth) and refused
over ``max_decode_bytes`` before anything decodes; every decode of the process draws on one
budget of that size, so a batch on threads cannot multiply it.

Memory is measured the way an operator would: the peak RSS of a whole ``conform`` process
(``os.wait4``), never our own estimate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from pipeline import budget, probe
from pipeline.budget import DecodeBudget, decode_cost_bytes
from pipeline.errors import TooLarge
from pipeline.image import render_image
from pipeline.plan import plan_image
from pipeline.presets import load_presets
from tests.support.bombs import zero_png
from tests.support.jobkit import conform_cmd, subprocess_env, write_jsonl

PRESETS = load_presets()
# A whole `conform run` that refuses an image from its header: Python, Pillow, boto3 loaded.
REFUSAL_PEAK_MB = 300


# Started by a small helper process, not by pytest: exec records the spawning process's
# high-water RSS as the child's, so a child of this (large) test process would report the
# test process's own peak instead of the conform run's.
_MEASURE = """
import os, subprocess, sys
with open(sys.argv[1], "wb") as out, open(sys.argv[1] + ".err", "wb") as err:
    proc = subprocess.Popen(sys.argv[2:], stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def _peak_rss_mb(args: list[str], out: Path, env: dict[str, str]) -> tuple[int, float]:
    """Run a process, return (exit code, its own peak RSS in MB)."""
    done = subprocess.run([sys.executable, "-c", _MEASURE, str(out), *args], env=env,
                          capture_output=True, text=True, check=True, timeout=600)
    code, maxrss_kb = done.stdout.split()
    return int(code), int(maxrss_kb) / 1024


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """19999x19999 all-black PNGs: 16-bit RGB (15 MB on disk, 2.4 GB inflated) and 8-bit."""
    folder = tmp_path_factory.mktemp("bombs")
    return {"rgb16": zero_png(folder / "rgb16.png", 19999, 19999, bit_depth=16),
            "rgb8": zero_png(folder / "rgb8.png", 19999, 19999, bit_depth=8)}


@pytest.mark.parametrize("kind", ["rgb16", "rgb8"])
def test_png_bomb_under_the_pixel_cap_is_refused_from_its_header(bombs: dict[str, Path],
                                                                 kind: str) -> None:
    started = time.monotonic()
    with pytest.raises(TooLarge) as info:
        probe.probe(bombs[kind])  # default limits: 400 MP, 1.25 GB of decode memory
    assert time.monotonic() - started < 5  # nothing was inflated
    err = info.value
    assert err.code == "too_large" and not err.retryable and err.http_status == 400
    assert err.details["width"] == err.details["height"] == 19999
    assert err.details["decode_bytes"] > err.details["max_decode_bytes"] == 1_250_000_000
    assert err.details["bits"] == (16 if kind == "rgb16" else 8)


def test_png_bomb_job_fails_in_low_memory(bombs: dict[str, Path], tmp_path: Path) -> None:
    library = tmp_path / "library"
    library.mkdir()
    os.link(bombs["rgb16"], library / "bomb.png")
    job = write_jsonl(tmp_path / "job.json", [{
        "workspace_id": "ws", "id": "bomb", "content": [{"media": ["bomb.png"]}],
        "accounts": [{"id": "x", "platform": "x"}]}])
    code, peak_mb = _peak_rss_mb(
        conform_cmd("run", str(job), "--library", f"file://{library}/{{id}}", "--dest",
                    str(tmp_path / "out"), "--workdir", str(tmp_path / "work"), "--no-progress"),
        tmp_path / "manifest.json", subprocess_env())
    assert code == 1
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [e["code"] for e in manifest["accounts"][0]["errors"]] == ["too_large"]
    assert peak_mb < REFUSAL_PEAK_MB, peak_mb


def test_decode_limit_is_a_setting(tmp_path: Path) -> None:
    src = Image.new("RGB", (1000, 1000), (10, 200, 30))
    src.save(tmp_path / "p.png")
    info = probe.probe(tmp_path / "p.png")
    assert info.width == 1000
    with pytest.raises(TooLarge) as err:
        probe.probe(tmp_path / "p.png", max_decode_bytes=decode_cost_bytes(
            1000, 1000, fmt="png", mode="RGB") - 1)
    assert err.value.details["decode_bytes"] == 7_000_000


def test_cost_counts_bit_depth_and_layout() -> None:
    rgb8 = decode_cost_bytes(1000, 1000, fmt="png", mode="RGB")
    assert decode_cost_bytes(1000, 1000, fmt="png", mode="RGB", bits=16) > rgb8
    assert decode_cost_bytes(1000, 1000, fmt="png", mode="I;16") > rgb8
    assert decode_cost_bytes(1000, 1000, fmt="png", mode="L") < rgb8
    assert decode_cost_bytes(1000, 1000, fmt="webp", mode="RGB") > rgb8  # libwebp's own buffer
    # The 200 MP phone HEIC still fits the default; a 19999x19999 8-bit PNG does not.
    assert decode_cost_bytes(12240, 16320, fmt="heif", mode="RGB") <= budget.MAX_DECODE_BYTES
    assert decode_cost_bytes(19999, 19999, fmt="png", mode="RGB") > budget.MAX_DECODE_BYTES


def test_big_jpeg_is_decoded_smaller_when_the_budget_needs_it(tmp_path: Path) -> None:
    # A JPEG whose full decode is over the budget is decoded at 1/2 (libjpeg's IDCT scaling)
    # and scaled up to the output size, instead of failing: the output is still right.
    src = tmp_path / "big.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait: it has to be decoded and turned
    Image.new("RGB", (2000, 1600), (200, 40, 40)).save(src, quality=95, exif=exif)
    info = probe.probe(src)
    preset, variant = PRESETS.find_variant("facebook-feed-image")
    assert variant.image is not None
    cap = min(variant.image.max_bytes, preset.limits.max_image_bytes or variant.image.max_bytes)
    target, _, _ = plan_image(info, variant.image, max_bytes=cap)
    assert not target.passthrough
    assert (target.geometry.width, target.geometry.height) == (1600, 2000)
    full = decode_cost_bytes(2000, 1600, fmt="jpeg", mode="RGB")
    probe.setup_pillow(400_000_000, full - 1)
    try:
        result = render_image(src, "jpeg", target, tmp_path / "out.jpg")
    finally:
        probe.setup_pillow(400_000_000, budget.MAX_DECODE_BYTES)
    assert "downscaled_for_memory" in result.warnings
    with Image.open(result.path) as out:
        assert out.size == (1600, 2000)
        r, g, b = out.convert("RGB").resize((1, 1)).getpixel((0, 0))  # type: ignore[misc]
        assert abs(r - 200) < 6 and abs(g - 40) < 6 and abs(b - 40) < 6


def test_budget_holds_concurrent_decodes_under_its_size() -> None:
    pool = DecodeBudget(100)
    in_use: list[int] = []
    peak = [0]
    lock = threading.Lock()

    def decode(cost: int) -> None:
        with pool.reserve(cost):
            with lock:
                in_use.append(cost)
                peak[0] = max(peak[0], sum(in_use))
            time.sleep(0.05)
            with lock:
                in_use.remove(cost)

    threads = [threading.Thread(target=decode, args=(c,)) for c in (60, 60, 30, 30, 60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert peak[0] <= 100 and pool.used_bytes == 0
    with pytest.raises(TooLarge) as err, pool.reserve(101):
        pass
    assert err.value.code == "too_large"


def test_budget_lets_a_holding_thread_through() -> None:
    # A thread keeping a decoded HEIC for its next output probes the last one meanwhile: it
    # must not wait for itself.
    pool = DecodeBudget(100)
    with pool.reserve(90), pool.reserve(50):
        assert pool.used_bytes == 140
    assert pool.used_bytes == 0


def test_batch_shares_one_decode_budget(tmp_path: Path) -> None:
    # Four 16-bit 4000x4000 PNGs (each ~160 MB by the estimate) on four threads, with a budget
    # that fits one: the batch peaks like a single job, not like four at once (~2.9x).
    library = tmp_path / "library"
    library.mkdir()
    for i in range(4):
        zero_png(library / f"p{i}.png", 4000, 4000, bit_depth=16)
    jobs = [{"workspace_id": "ws", "id": f"j{i}", "content": [{"media": [f"p{i}.png"]}],
             "accounts": [{"id": "x", "platform": "x"}]} for i in range(4)]
    env = subprocess_env(CONFORM_MAX_DECODE_BYTES="200000000")
    peaks = {}
    for name, lines in (("one", jobs[:1]), ("four", jobs)):
        source = write_jsonl(tmp_path / f"{name}.jsonl", list(lines))
        code, peaks[name] = _peak_rss_mb(
            conform_cmd("batch", str(source), "--library", f"file://{library}/{{id}}",
                        "--dest", str(tmp_path / name), "--workdir", str(tmp_path / "work"),
                        "--workers", "4"),
            tmp_path / f"{name}.out", env)
        assert code == 0, (tmp_path / f"{name}.out.err").read_text()[-2000:]
        results = [json.loads(line) for line in (tmp_path / f"{name}.out").read_text().splitlines()]
        assert [r["status"] for r in results] == ["succeeded"] * len(lines)
    assert peaks["four"] < peaks["one"] * 1.4, peaks
