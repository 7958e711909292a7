"""`conform batch` runs each job in its own process: every core busy, a crash fails one job."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pipeline.fleet import childprocess
from pipeline.fleet.batch import process_batch
from pipeline.job import parse_job
from pipeline.models import JobEvent
from pipeline.presets import load_presets
from pipeline.settings import Settings
from tests.support.jobkit import (
    conform_cmd,
    image_job,
    pid_alive,
    subprocess_env,
    video_job,
    write_jsonl,
)


def _spy_ffmpeg(directory: Path, log: Path, *, crash_first: bool = False) -> Path:
    """An ffmpeg that notes the pid of the process that started its encode (its parent).

    With ``crash_first`` the first encode SIGKILLs that process instead, as the OOM killer or
    a crashing decoder would.
    """
    real = shutil.which("ffmpeg")
    assert real
    crash = (f'if mkdir "{directory}/crashed" 2>/dev/null; then kill -9 $PPID; exit 1; fi; '
             if crash_first else "")
    script = directory / "ffmpeg-spy"
    script.write_text("#!/bin/sh\n"
                      f'case " $* " in *" -progress "*) echo $PPID >> "{log}"; {crash};; esac\n'
                      f'exec "{real}" "$@"\n')
    script.chmod(0o755)
    return script


def _batch(tmp: Path, library: Path, jobs: list[dict[str, Any]], ffmpeg_path: Path
           ) -> subprocess.CompletedProcess[str]:
    source = write_jsonl(tmp / "jobs.jsonl", list(jobs))
    return subprocess.run(
        conform_cmd("batch", str(source), "--dest", str(tmp / "out"), "--workers", "2",
                    "--library", f"file://{library}/{{id}}", "--workdir", str(tmp / "work"),
                    "--no-progress", "--json"),
        capture_output=True, text=True, timeout=120,
        env=subprocess_env(FFMPEG_PATH=str(ffmpeg_path)))


def _probe_codec(path: Path) -> str:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream=codec_name", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.ffmpeg
def test_batch_runs_each_job_in_a_process_of_its_own(tmp_path: Path, library: Path) -> None:
    log = tmp_path / "encoders.pid"
    result = _batch(tmp_path, library, [video_job(f"v-{i}") for i in range(3)],
                    _spy_ffmpeg(tmp_path, log))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(r["job_id"] for r in records) == ["v-0", "v-1", "v-2"]
    outputs = list((tmp_path / "out").rglob("*.mp4"))  # content-addressed: one file
    assert outputs and all(_probe_codec(p) == "h264" for p in outputs)
    parents = [int(p) for p in log.read_text().split()]
    # Two encodes at once (the third job may find its output made); each in its own process.
    assert len(parents) >= 2 and len(set(parents)) == len(parents)
    assert os.getpid() not in parents


@pytest.mark.ffmpeg
def test_a_job_process_that_dies_fails_only_its_job(tmp_path: Path, library: Path) -> None:
    log = tmp_path / "encoders.pid"
    result = _batch(tmp_path, library, [video_job(f"v-{i}") for i in range(3)],
                    _spy_ffmpeg(tmp_path, log, crash_first=True))
    assert result.returncode == 1, result.stderr
    records = {r["job_id"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert sorted(records) == ["v-0", "v-1", "v-2"]
    failed = [r for r in records.values() if r["status"] != "succeeded"]
    assert len(failed) == 1
    assert failed[0]["status"] == "error"
    assert failed[0]["errors"][0]["code"] == "internal"
    assert "SIGKILL" in failed[0]["errors"][0]["message"]
    outputs = list((tmp_path / "out").rglob("*.mp4"))  # the others were made
    assert outputs and all(_probe_codec(p) == "h264" for p in outputs)
    killed = int(log.read_text().split()[0])
    assert not pid_alive(killed)
    work = tmp_path / "work"
    assert not [p for p in work.iterdir() if p.name.startswith("conform-")]  # folder removed


def test_image_jobs_in_processes_report_progress_to_the_caller(tmp_path: Path,
                                                               library: Path) -> None:
    presets = load_presets()
    jobs = [parse_job(image_job(f"i-{i}", photo=f"photo-{i}.jpg"), presets) for i in range(3)]
    events: list[JobEvent] = []
    settings = Settings.from_env().replace(library=f"file://{library}/{{id}}",
                                           dest=str(tmp_path / "out"), workdir=tmp_path / "w")
    summary = process_batch(jobs, settings=settings, presets=presets, workers=2,
                            on_event=events.append, isolation="process")
    assert summary.ok and summary.succeeded == 3
    assert {e.job_id for e in events if e.stage == "manifest" and e.kind == "done"} == {
        "i-0", "i-1", "i-2"}
    pictures = [p for p in (tmp_path / "out").rglob("*") if p.suffix in (".jpg", ".jpeg")]
    assert len(pictures) == 3
    for picture in pictures:
        with Image.open(picture) as im:
            assert im.format == "JPEG" and im.size[0] > 0


def _exit_hard(code: int) -> None:
    os._exit(code)


def _pid() -> int:
    return os.getpid()


def test_run_in_process_reports_a_child_that_exits_without_a_result() -> None:
    died = childprocess.run_in_process(_exit_hard, 3)
    assert died == childprocess.ChildDied(3)
    assert died.reason == "exited with status 3"
    first, second = childprocess.run_in_process(_pid), childprocess.run_in_process(_pid)
    assert isinstance(first, int) and first != second and os.getpid() not in (first, second)
    assert not pid_alive(first)


def test_workers_are_capped_so_decode_budgets_fit_in_memory(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pipeline.fleet.childprocess"):
        assert childprocess.cap_workers(4, 1_000_000_000, available_bytes=2_500_000_000) == 2
    assert "running 2 worker(s), not 4" in caplog.text
    caplog.clear()
    assert childprocess.cap_workers(2, 1_000_000_000, available_bytes=8_000_000_000) == 2
    assert childprocess.cap_workers(3, 1_000_000_000, available_bytes=10) == 1
    assert "not 4" not in caplog.text


def test_a_long_tmpdir_does_not_stop_the_job_processes(tmp_path: Path, library: Path) -> None:
    long_tmp = tmp_path / ("t" * 60) / ("u" * 60)
    long_tmp.mkdir(parents=True)
    source = write_jsonl(tmp_path / "jobs.jsonl", [image_job("long-tmp", "photo-1.jpg")])
    result = subprocess.run(
        conform_cmd("batch", str(source), "--dest", str(tmp_path / "out"), "--library",
                    f"file://{library}/{{id}}", "--workdir", str(tmp_path / "work"),
                    "--no-progress", "--json"),
        capture_output=True, text=True, timeout=120, env=subprocess_env(TMPDIR=str(long_tmp)))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "succeeded"
    (picture,) = [p for p in (tmp_path / "out").rglob("*") if p.suffix in (".jpg", ".jpeg")]
    with Image.open(picture) as im:
        assert im.format == "JPEG"
    assert not list(long_tmp.iterdir())  # nothing left in TMPDIR
