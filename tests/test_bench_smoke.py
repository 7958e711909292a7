"""The bench must not rot: its quick mode runs here and must produce a well-formed table and
JSON. No timing is asserted (the numbers of toy inputs on a shared machine mean nothing)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.measure import BenchError, interleave, median, run_process
from bench.run import render_markdown, render_table
from bench.scenarios import SCENARIOS, Row, _reference_graph

REPO = Path(__file__).resolve().parent.parent
ROW_KEYS = {"scenario", "check", "measured", "value", "unit", "goal", "met", "details", "notes"}


def test_interleave_alternates_order_and_keeps_results_apart() -> None:
    calls: list[str] = []

    def step(name: str, value: float) -> Callable[[], float]:
        def go() -> float:
            calls.append(name)
            return value
        return go

    a, b = interleave(3, step("a", 1.0), step("b", 2.0))
    assert a == [1.0, 1.0, 1.0]
    assert b == [2.0, 2.0, 2.0]
    assert calls == ["a", "b", "b", "a", "a", "b"]


def test_median_of_nothing_is_an_error() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    with pytest.raises(BenchError):
        median([])


def test_run_process_measures_cpu_and_peak_memory_of_the_child() -> None:
    # The child allocates ~60 MB and keeps it while it spins, so a sampler cannot miss it.
    code = ("import time\nb = bytearray(60 * 1024 * 1024)\nt = time.time()\n"
            "while time.time() - t < 0.4: pass\n")
    run = run_process([sys.executable, "-c", code], track_rss=True)
    assert run.returncode == 0
    assert run.cpu_s > 0.1
    assert run.peak_rss_kb is not None and run.peak_rss_kb > 55 * 1024


def test_run_process_reports_a_failing_command() -> None:
    with pytest.raises(BenchError, match="exited 3"):
        run_process([sys.executable, "-c", "import sys; sys.exit(3)"])
    run = run_process([sys.executable, "-c", "import sys; sys.exit(3)"], check=False)
    assert run.returncode == 3


def test_reference_graph_reads_the_source_and_ends_in_ref() -> None:
    argv = ["ffmpeg", "-i", "x", "-filter_complex", "[0:v:0]scale=2:2[s0];[s0]setsar=1[s1]",
            "-map", "[s1]", "-map", "0:a:0", "out.mp4"]
    assert _reference_graph(argv) == "[1:v:0]scale=2:2[s0];[s0]setsar=1[ref]"


def test_tables_show_every_row_and_verdict() -> None:
    rows = [Row("overhead", "conform / ffmpeg", "a vs b", 1.02, "x", "<= 1.05", True),
            Row("images", "conform / vips", "skipped", None, "x", "<= 1.5", None),
            Row("covers", "90 / 10", "c vs d", 2.0, "x", "<= 1.5", False)]
    text = render_table(rows)
    assert text.splitlines()[0].split()[:5] == ["scenario", "check", "result", "goal", "met"]
    assert "1.02 x" in text and " yes " in text and " NO " in text
    md = render_markdown(rows)
    assert md.count("\n") == len(rows) + 1
    assert "| covers | 90 / 10 | 2 x | <= 1.5 | **no** |" in md


@pytest.mark.ffmpeg
def test_quick_bench_runs_every_scenario_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--no-install", "--json", str(out),
         "--tmp", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["schema"] == 1
    assert report["profile"] == "quick"
    assert report["errors"] == {}
    assert report["machine"]["cores"] >= 1
    results = report["results"]
    assert {r["scenario"] for r in results} == set(SCENARIOS)
    for r in results:
        assert set(r) == ROW_KEYS
        assert r["met"] is None  # quick mode never judges toy inputs
        if r["value"] is not None:
            assert r["value"] > 0
    by_check = {(r["scenario"], r["check"]): r for r in results}
    overhead = by_check[("overhead", "conform run / bare ffmpeg")]
    assert len(overhead["details"]["conform_s"]) == len(overhead["details"]["ffmpeg_s"]) == 1
    least = [r for r in results if r["scenario"] == "least_work"]
    assert [r["details"]["actions"][0] for r in least] == ["passed_through", "remuxed"]
    transcode = [r for r in results if r["check"].startswith("conform run, ")]
    assert transcode[0]["scenario"] == "memory" and transcode[0]["value"] > 10
    # The table goes to stdout, one line per result plus the header and the rule.
    table = done.stdout.split("\n\n")[0].splitlines()
    assert table[0].startswith("scenario")
    assert len([line for line in table[2:] if not line.startswith(" ")]) == len(results)
    # Nothing generated is left behind.
    assert not list(tmp_path.glob("conform-bench-*"))
