"""`conform batch` and `process_batch`: sources, isolation, concurrency, sharding, resume, signals,
progress on a terminal and off it."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import re
import select
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image

from pipeline.cli import main
from pipeline.errors import ConfigError
from pipeline.fleet import batch as batch_mod
from pipeline.fleet import jobs, sources
from pipeline.fleet.batch import (
    BatchEntry,
    JobSource,
    Shard,
    process_batch,
    shard_from_env,
    shard_of,
)
from pipeline.job import parse_job
from pipeline.models import JobEvent
from pipeline.settings import Settings
from tests.support.jobkit import (
    conform_cmd,
    fake_ffmpeg,
    image_job,
    library_settings,
    pid_alive,
    subprocess_env,
    video_job,
    wait_for,
    workdir_clean,
    write_jsonl,
)


def _cli(tmp: Path, library: Path, *args: str, input: str | None = None) -> Any:
    result = CliRunner().invoke(
        main, ["batch", *args, "--library", f"file://{library}/{{id}}",
               "--workdir", str(tmp / "work")], input=input, catch_exceptions=False)
    return result


def _lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


# --------------------------------------------------------------------------- sharding


def test_every_job_lands_in_exactly_one_shard() -> None:
    ids = [f"post-{i}" for i in range(2000)] + [f"job-{hashlib.sha256(bytes([i])).hexdigest()[:16]}"
                                                for i in range(200)]
    for count in (1, 2, 3, 7, 16):
        shards = [Shard(i, count) for i in range(count)]
        for job_id in ids:
            assert sum(s.owns(job_id) for s in shards) == 1
        sizes = [sum(s.owns(j) for j in ids) for s in shards]
        assert min(sizes) > len(ids) / count * 0.7  # a hash, not a skew onto one shard
    # Stable across processes and Python versions: sha256, not the salted hash().
    expected = int.from_bytes(hashlib.sha256(b"post-42").digest()[:8], "big") % 5
    assert shard_of("post-42", 5) == expected


def test_shard_index_comes_from_the_orchestrator() -> None:
    assert shard_from_env(None, None, {}) == Shard(0, 1)
    assert shard_from_env(None, 4, {"JOB_COMPLETION_INDEX": "3"}) == Shard(3, 4)
    assert shard_from_env(None, 4, {"AWS_BATCH_JOB_ARRAY_INDEX": "2"}) == Shard(2, 4)
    assert shard_from_env(1, 4, {"JOB_COMPLETION_INDEX": "3"}) == Shard(1, 4)  # flag wins
    assert shard_from_env(None, None, {"AWS_BATCH_JOB_ARRAY_INDEX": "1",
                                       "CONFORM_SHARD_COUNT": "3"}) == Shard(1, 3)
    with pytest.raises(ConfigError, match="shard-count"):
        shard_from_env(None, None, {"JOB_COMPLETION_INDEX": "0"})
    with pytest.raises(ConfigError):
        shard_from_env(4, 4, {})
    with pytest.raises(ConfigError):
        shard_from_env(None, 2, {"JOB_COMPLETION_INDEX": "x"})


@pytest.mark.ffmpeg
def test_shards_partition_a_batch(tmp_path: Path, library: Path) -> None:
    jobs: list[dict[str, Any] | str] = [image_job(f"s-{i}", f"photo-{i % 10}.jpg")
                                        for i in range(9)]
    jobs.insert(4, "{broken")
    source = write_jsonl(tmp_path / "jobs.jsonl", jobs)
    seen: list[str] = []
    for index in range(3):
        result = _cli(tmp_path, library, str(source), "--dest", str(tmp_path / "out"),
                      "--shard-count", "3", "--shard-index", str(index), "--workers", "2")
        seen += [line["job_id"] or line["source"] for line in _lines(result.stdout)]
    assert sorted(seen) == sorted([f"s-{i}" for i in range(9)] + [f"{source}:5"])
    # JOB_COMPLETION_INDEX picks the shard when no flag does.
    rerun = CliRunner(env={"JOB_COMPLETION_INDEX": "1"}).invoke(
        main, ["batch", str(source), "--dest", str(tmp_path / "out"), "--shard-count", "3",
               "--library", f"file://{library}/{{id}}", "--force"])
    wanted = {f"s-{i}" for i in range(9) if shard_of(f"s-{i}", 3) == 1}
    assert {line["job_id"] for line in _lines(rerun.stdout) if line["job_id"]} == wanted
    missing_count = CliRunner(env={"JOB_COMPLETION_INDEX": "1"}).invoke(
        main, ["batch", str(source), "--dest", str(tmp_path / "out")])
    assert missing_count.exit_code == 2


# --------------------------------------------------------------------------- sources, isolation


@pytest.mark.ffmpeg
def test_bad_entries_are_isolated_and_reported_with_their_line(tmp_path: Path,
                                                                 library: Path) -> None:
    source = write_jsonl(tmp_path / "jobs.jsonl", [
        image_job("ok-1", "photo-1.jpg"),
        "not json at all",
        "",
        {"workspace_id": "ws", "content": [], "accounts": [{"id": "a", "platform": "myspace"}]},
        image_job("missing", "nope.jpg"),
        image_job("ok-2", "photo-2.jpg", platform="bluesky"),
    ])
    result = _cli(tmp_path, library, str(source), "--dest", str(tmp_path / "out"),
                  "--workers", "3")
    assert result.exit_code == 1, result.stderr
    by_key = {line["job_id"] or line["source"]: line for line in _lines(result.stdout)}
    assert set(by_key) == {"ok-1", "ok-2", "missing", f"{source}:2", f"{source}:4"}
    assert by_key[f"{source}:2"]["status"] == "invalid"
    assert by_key[f"{source}:4"]["errors"][0]["code"] == "invalid_job"
    assert "accounts[0].platform" in by_key[f"{source}:4"]["errors"][0]["message"]
    assert by_key["missing"]["status"] == "failed"
    assert by_key["missing"]["accounts"][0]["errors"][0]["code"] == "media_not_found"
    for job_id in ("ok-1", "ok-2"):
        manifest = by_key[job_id]
        assert manifest["status"] == "succeeded"
        stored = json.loads((tmp_path / "out" / "manifests" / "ws" / f"{job_id}.json").read_text())
        assert stored == manifest
        media = manifest["accounts"][0]["media"][0]
        with Image.open(media["uri"].removeprefix("file://")) as img:
            assert img.size == (media["width"], media["height"])
    assert "2 succeeded" in result.stderr and "2 invalid" in result.stderr
    assert workdir_clean(tmp_path)


@pytest.mark.ffmpeg
def test_folder_and_stdin_sources(tmp_path: Path, library: Path) -> None:
    folder = tmp_path / "jobs"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps(image_job("f-a", "photo-3.jpg"), indent=2))
    (folder / "b.json").write_text("{nope")
    (folder / "notes.txt").write_text("not a job")
    result = _cli(tmp_path, library, str(folder), "--dest", str(tmp_path / "out"))
    assert result.exit_code == 1
    lines = {line["job_id"] or line["source"]: line["status"] for line in _lines(result.stdout)}
    assert lines == {"f-a": "succeeded", f"{folder}/b.json": "invalid"}

    stdin = json.dumps(image_job("in-1", "photo-4.jpg")) + "\n"
    result = _cli(tmp_path, library, "-", "--dest", str(tmp_path / "out"), input=stdin)
    assert result.exit_code == 0, result.stderr
    assert [line["job_id"] for line in _lines(result.stdout)] == ["in-1"]


@pytest.mark.ffmpeg
@pytest.mark.s3
def test_s3_sources(tmp_path: Path, library: Path, s3_server: Any, s3_bucket: str) -> None:
    client = s3_server.client()
    lines = "".join(json.dumps(image_job(f"s3-{i}", f"photo-{i}.jpg")) + "\n" for i in range(2))
    client.put_object(Bucket=s3_bucket, Key="in/jobs.jsonl", Body=lines.encode())
    client.put_object(Bucket=s3_bucket, Key="in/folder/x.json",
                      Body=json.dumps(image_job("s3-x", "photo-5.jpg")).encode())
    client.put_object(Bucket=s3_bucket, Key="in/folder/deeper/y.json", Body=b"{}")
    dest = f"s3://{s3_bucket}/out"
    result = _cli(tmp_path, library, f"s3://{s3_bucket}/in/jobs.jsonl", "--dest", dest)
    assert result.exit_code == 0, result.stderr
    assert sorted(line["job_id"] for line in _lines(result.stdout)) == ["s3-0", "s3-1"]
    result = _cli(tmp_path, library, f"s3://{s3_bucket}/in/folder", "--dest", dest)
    assert result.exit_code == 0, result.stderr
    assert [line["job_id"] for line in _lines(result.stdout)] == ["s3-x"]
    stored = client.get_object(Bucket=s3_bucket, Key="out/manifests/ws/s3-x.json")["Body"].read()
    assert json.loads(stored)["status"] == "succeeded"
    result = _cli(tmp_path, library, f"s3://{s3_bucket}/nothing-here", "--dest", dest)
    assert result.exit_code == 2
    assert workdir_clean(tmp_path)


def test_unusable_sources_exit_2(tmp_path: Path, library: Path) -> None:
    for source in (str(tmp_path / "nope.jsonl"), "https://example.com/jobs.jsonl"):
        result = CliRunner().invoke(main, ["batch", source, "--dest", str(tmp_path / "out")])
        assert result.exit_code == 2, (source, result.output)


def test_an_oversized_line_is_invalid_and_the_rest_goes_on(tmp_path: Path, presets: Any,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    monkeypatch.setattr(sources, "MAX_JOB_BYTES", 200)
    source = write_jsonl(tmp_path / "jobs.jsonl", [
        image_job("small"), {**image_job("big"), "pad": "x" * 1000}, image_job("after")])
    with JobSource(str(source), presets=presets, settings=Settings()) as src:
        entries = list(src.entries())
    assert [(e.index, e.job.id if e.job else None) for e in entries] == [
        (1, "small"), (2, None), (3, "after")]
    assert "limit" in entries[1].error.message  # type: ignore[union-attr]


# --------------------------------------------------------------------------- the library call


@pytest.mark.ffmpeg
def test_process_batch_runs_jobs_concurrently_within_the_bound(tmp_path: Path, library: Path,
                                                               presets: Any,
                                                               use_ffmpeg: Any) -> None:
    use_ffmpeg(fake_ffmpeg(tmp_path, mode="slow", delay_s=0.8))
    jobs = [parse_job(video_job(f"v-{i}"), presets) for i in range(4)]
    lock = threading.Lock()
    running: set[str] = set()
    peak = 0
    events: list[JobEvent] = []

    def on_event(event: JobEvent) -> None:
        nonlocal peak
        with lock:
            events.append(event)
            if event.stage == "ingest" and event.kind == "start":
                running.add(event.job_id)
                peak = max(peak, len(running))
            elif event.stage == "manifest" and event.kind == "done":
                running.discard(event.job_id)

    outcomes: list[Any] = []
    summary = process_batch(jobs, settings=library_settings(tmp_path, library, force=True),
                            presets=presets, workers=2, on_event=on_event,
                            on_outcome=outcomes.append)
    assert peak == 2  # concurrent, and never more than --workers
    assert summary.ok and summary.succeeded == 4 and summary.exit_status == 0
    assert sorted(o.job_id for o in outcomes) == [f"v-{i}" for i in range(4)]
    assert all(o.manifest is not None and o.manifest.ok for o in outcomes)
    encodes = [e for e in events if e.stage == "encode" and e.pct is not None]
    assert {e.job_id for e in encodes} == {f"v-{i}" for i in range(4)}  # progress reaches callers


@pytest.mark.ffmpeg
def test_fail_fast_stops_scheduling(tmp_path: Path, library: Path, presets: Any) -> None:
    entries = [BatchEntry(1, "#1", job=parse_job(image_job("bad", "nope.jpg"), presets))] + [
        BatchEntry(i, f"#{i}", job=parse_job(image_job(f"g-{i}", f"photo-{i}.jpg"), presets))
        for i in range(2, 5)]
    summary = process_batch(entries, settings=library_settings(tmp_path, library),
                            presets=presets, workers=1, fail_fast=True)
    assert (summary.failed, summary.succeeded, summary.not_started) == (1, 0, 3)
    assert summary.exit_status == 1
    assert not (tmp_path / "out" / "manifests" / "ws" / "g-2.json").exists()
    summary = process_batch(entries, settings=library_settings(tmp_path, library),
                            presets=presets, workers=1)
    # Without --fail-fast everything runs; the failed job's manifest exists, so it is skipped.
    assert (summary.skipped, summary.succeeded, summary.not_started) == (1, 3, 0)


@pytest.mark.ffmpeg
def test_skips_existing_manifests_and_duplicate_ids(tmp_path: Path, library: Path,
                                                    presets: Any) -> None:
    settings = library_settings(tmp_path, library)
    failing = parse_job(image_job("flaky", "later.jpg"), presets)
    first = process_batch([failing], settings=settings, presets=presets)
    assert first.failed == 1
    (library / "later.jpg").write_bytes((library / "photo-6.jpg").read_bytes())
    try:
        again = process_batch([failing], settings=settings, presets=presets)
        assert again.skipped == 1  # a manifest exists, even a failed one
        retried = process_batch([failing], settings=settings, presets=presets,
                                retry_failed=True)
        assert retried.succeeded == 1
    finally:
        (library / "later.jpg").unlink()
    outcomes: list[Any] = []
    twice = [parse_job(image_job("twin", "photo-7.jpg"), presets)] * 2
    summary = process_batch(twice, settings=settings, presets=presets, workers=2,
                            on_outcome=outcomes.append)
    assert (summary.succeeded, summary.skipped) == (1, 1)
    assert [o.note for o in outcomes if o.status == "skipped"] == ["same job as #1"]


# --------------------------------------------------------------------------- as a process


@pytest.mark.ffmpeg
def test_resume_after_a_kill_processes_no_job_twice(tmp_path: Path, library: Path) -> None:
    n = 8
    source = write_jsonl(tmp_path / "jobs.jsonl",
                         [image_job(f"r-{i}", f"photo-{i}.jpg") for i in range(n)])
    args = conform_cmd("batch", str(source), "--dest", str(tmp_path / "out"), "--workers", "1",
                       "--library", f"file://{library}/{{id}}", "--workdir",
                       str(tmp_path / "work"), "--no-progress")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=subprocess_env())
    assert proc.stdout is not None
    first = [json.loads(proc.stdout.readline()) for _ in range(2)]
    proc.kill()  # SIGKILL: no cleanup at all, the worst case
    proc.wait()
    manifests = tmp_path / "out" / "manifests" / "ws"
    done_before = {p.stem: p.stat().st_mtime_ns for p in manifests.glob("*.json")}
    assert {m["job_id"] for m in first} <= set(done_before)
    assert len(done_before) < n, "the batch finished before it could be killed"

    rerun = subprocess.run(args, capture_output=True, text=True, env=subprocess_env(),
                           timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    second = [line["job_id"] for line in _lines(rerun.stdout)]
    assert sorted(second) == sorted({f"r-{i}" for i in range(n)} - set(done_before))
    assert len(second) == len(set(second))
    assert {p.stem: p.stat().st_mtime_ns for p in manifests.glob("*.json")
            if p.stem in done_before} == done_before  # untouched: not processed again
    assert len(list(manifests.glob("*.json"))) == n
    assert f"{len(done_before)} skipped" in rerun.stderr


@pytest.mark.ffmpeg
def test_sigterm_kills_ffmpeg_cleans_up_and_exits_130(tmp_path: Path, library: Path) -> None:
    marker = tmp_path / "encodes.pid"
    hang = fake_ffmpeg(tmp_path, mode="hang", marker=marker)
    source = write_jsonl(tmp_path / "jobs.jsonl", [video_job(f"t-{i}") for i in range(4)])
    proc = subprocess.Popen(
        conform_cmd("batch", str(source), "--dest", str(tmp_path / "out"), "--workers", "2",
                    "--library", f"file://{library}/{{id}}", "--workdir", str(tmp_path / "work"),
                    "--no-progress"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env(FFMPEG_PATH=str(hang)))
    wait_for(lambda: marker.exists() and len(marker.read_text().split()) == 2, 30,
             "two encodes to start")
    pids = [int(p) for p in marker.read_text().split()]
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert out == b""  # no job finished
    assert not any(pid_alive(pid) for pid in pids)
    assert workdir_clean(tmp_path)
    assert not list((tmp_path / "out").glob("manifests/**/*.json"))
    assert len(marker.read_text().split()) == 2  # nothing was scheduled after the signal


def _read_pty(fd: int, proc: subprocess.Popen[bytes]) -> bytes:
    chunks = []
    while True:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 4096)
            except OSError:  # EIO: the child closed its side
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    return b"".join(chunks)


@pytest.mark.slow
@pytest.mark.ffmpeg
def test_progress_is_a_live_bar_on_a_terminal_and_lines_otherwise(tmp_path: Path,
                                                                  library: Path) -> None:
    slow = fake_ffmpeg(tmp_path, mode="slow", delay_s=0.3)
    source = write_jsonl(tmp_path / "jobs.jsonl",
                         [image_job("p-1", "photo-8.jpg"), video_job("p-2"), "{bad"])
    base = ["batch", str(source), "--workers", "1", "--library", f"file://{library}/{{id}}",
            "--workdir", str(tmp_path / "work")]
    env = subprocess_env(FFMPEG_PATH=str(slow), COLUMNS="200")

    master, slave = pty.openpty()
    proc = subprocess.Popen(conform_cmd(*base, "--dest", str(tmp_path / "tty")),
                            stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    tty_err = _read_pty(master, proc).decode()
    os.close(master)
    assert proc.stdout is not None
    tty_out = proc.stdout.read().decode()
    proc.wait(timeout=30)
    assert proc.returncode == 1
    assert "\r" in tty_err and "3/3 jobs" in tty_err and "1 failed" in tty_err
    assert "encoding telegram-video.mp4" in tty_err
    assert "INVALID" in tty_err and ":3" in tty_err  # failures still get a line of their own
    assert len(_lines(tty_out)) == 3  # stdout stays clean JSON Lines

    plain = subprocess.run(conform_cmd(*base, "--dest", str(tmp_path / "plain")),
                           capture_output=True, text=True, env=env, timeout=60)
    assert plain.returncode == 1
    assert "\r" not in plain.stderr and "\x1b" not in plain.stderr
    err_lines = plain.stderr.splitlines()
    assert any(line.startswith("[") and "succeeded p-1" in line for line in err_lines)
    assert any("INVALID" in line and f"{source}:3" in line for line in err_lines)
    assert err_lines[-1].startswith("batch done: 3 job(s): 2 succeeded, 1 invalid")

    as_json = subprocess.run(
        conform_cmd("--log-format", "json", *base, "--dest", str(tmp_path / "json"), "--force"),
        capture_output=True, text=True, env=env, timeout=60)
    records = [json.loads(line) for line in as_json.stderr.splitlines()]
    job_records = [r for r in records if r.get("message", "").startswith(("job ", "encode"))]
    assert job_records and all(r.get("job_id") or r.get("source") for r in job_records)
    assert {r["job_id"] for r in records if r.get("stage") == "encode"} == {"p-2"}
    assert records[-1]["message"] == "batch done" and records[-1]["invalid"] == 1


def _on_terminal(args: list[str], env: dict[str, str]) -> tuple[int, list[str]]:
    """Run with stdout and stderr both on one pseudo-terminal, as in a person's shell."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    text = _read_pty(master, proc).decode()
    os.close(master)
    proc.wait(timeout=60)
    # what the terminal shows: the last state of each line after the bar's redraws
    shown = [re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", line).split("\r")[-1]
             for line in text.replace("\r\n", "\n").split("\n")]
    return proc.returncode, [line for line in shown if line.strip()]


def test_batch_on_a_terminal_prints_one_readable_line_per_job(tmp_path: Path,
                                                             library: Path) -> None:
    source = write_jsonl(tmp_path / "jobs.jsonl", [
        image_job("t-1", "photo-1.jpg"),
        {**image_job("t-2", "photo-2.jpg"), "accounts": [{"id": "a1", "platform": "telegram"},
                                                         {"id": "a2", "platform": "youtube"}]},
        "{bad"])
    base = ["batch", str(source), "--workers", "1", "--library", f"file://{library}/{{id}}",
            "--workdir", str(tmp_path / "work")]
    env = subprocess_env(COLUMNS="200")
    code, lines = _on_terminal(conform_cmd(*base, "--dest", str(tmp_path / "tty"), "--report",
                                           str(tmp_path / "pages")), env)
    assert code == 1
    assert not any(line.lstrip().startswith("{") for line in lines)  # no wall of JSON
    manifests = tmp_path / "tty" / "manifests"
    (one,) = [line for line in lines if " t-1" in line]
    assert one.startswith("[") and "succeeded t-1: 1 account(s) ok, 0 failed" in one
    assert f"manifest {(manifests / 'ws' / 't-1.json').as_uri()}" in one
    assert f"report {tmp_path / 'pages' / 'ws' / 't-1' / 'index.html'}" in one
    (two,) = [line for line in lines if " t-2" in line]
    assert "1 account(s) ok, 1 failed" in two and "PARTIAL t-2" in two
    assert (tmp_path / "pages" / "ws" / "t-2" / "index.html").is_file()
    (bad,) = [line for line in lines if "INVALID" in line]
    assert f"{source}:3" in bad
    assert lines[-1].startswith("batch done: 3 job(s)")

    # --json keeps the JSON lines on a terminal, as without a terminal
    code, lines = _on_terminal(conform_cmd(*base, "--dest", str(tmp_path / "json"), "--json",
                                           "--no-progress"), env)
    assert code == 1
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert sorted(r["job_id"] for r in records if r["job_id"]) == ["t-1", "t-2"]


def test_summary_exit_status() -> None:
    assert batch_mod.BatchSummary(total=2, succeeded=1, skipped=1).exit_status == 0
    assert batch_mod.BatchSummary(total=2, succeeded=1, invalid=1).exit_status == 1
    assert batch_mod.BatchSummary(total=2, succeeded=1, interrupted=True).exit_status == 130


def test_run_one_turns_any_error_into_an_outcome(tmp_path: Path, presets: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(jobs, "process", explode)
    summary = process_batch([parse_job(image_job("x"), presets)],
                            settings=Settings().replace(dest=str(tmp_path / "out"),
                                                        workdir=tmp_path), presets=presets)
    assert summary.errors == 1
    assert summary.failures[0].error is not None
    assert summary.failures[0].error.code == "internal"
    assert summary.failures[0].to_dict()["status"] == "error"
