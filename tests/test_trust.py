"""Issue #12 (part A): a hostile client of a multi-tenant publish API.

Tenants must not collide or read each other's library, no job text may crash the parser or a
batch, timeouts that will recur are permanent, a killed conform leaves no ffmpeg and no litter,
and what goes back to the caller (manifests, plan output) carries no server paths or terminal
escapes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image

from pipeline.cli import main
from pipeline.errors import JobInvalid
from pipeline.fleet.batch import JobSource, process_batch
from pipeline.job import parse_job, parse_job_text
from pipeline.runner import process
from pipeline.settings import Settings
from pipeline.storage import open_storage
from tests.support.httpserver import LOOPBACK, LocalHTTPServer, drip
from tests.support.jobkit import (
    conform_cmd,
    fake_ffmpeg,
    image_job,
    library_settings,
    pid_alive,
    subprocess_env,
    video_job,
    wait_for,
    write_jsonl,
)


def _job(workspace: str, job_id: str, photo: str) -> dict[str, Any]:
    return {**image_job(job_id, photo), "workspace_id": workspace}


def _stored_colour(uri: str) -> tuple[int, ...]:
    """The mean colour of a stored image, read back from the file itself."""
    with Image.open(uri.removeprefix("file://")) as im:
        small = im.convert("RGB").resize((1, 1))
        pixel = small.getpixel((0, 0))
    assert isinstance(pixel, tuple)
    return pixel


def _source_colour(path: Path) -> tuple[int, ...]:
    with Image.open(path) as im:
        pixel = im.convert("RGB").resize((1, 1)).getpixel((0, 0))
    assert isinstance(pixel, tuple)
    return pixel


def _close(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return all(abs(x - y) <= 6 for x, y in zip(a, b, strict=True))


def _cli(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


# --------------------------------------------------------------------------- 1: tenants


@pytest.mark.ffmpeg
def test_the_same_job_id_in_two_workspaces_keeps_two_manifests(tmp_path: Path, library: Path,
                                                               presets: Any) -> None:
    settings = library_settings(tmp_path, library)
    a = process(parse_job(_job("ws-a", "post-42", "photo-0.jpg"), presets), settings=settings,
                presets=presets)
    b = process(parse_job(_job("ws-b", "post-42", "photo-1.jpg"), presets), settings=settings,
                presets=presets)
    stored_a = json.loads((tmp_path / "out/manifests/ws-a/post-42.json").read_text())
    stored_b = json.loads((tmp_path / "out/manifests/ws-b/post-42.json").read_text())
    assert (stored_a["workspace_id"], stored_b["workspace_id"]) == ("ws-a", "ws-b")
    assert a.uri != b.uri
    # Each manifest still names its own tenant's picture: B did not overwrite A.
    assert _close(_stored_colour(stored_a["accounts"][0]["media"][0]["uri"]),
                  _source_colour(library / "photo-0.jpg"))
    assert _close(_stored_colour(stored_b["accounts"][0]["media"][0]["uri"]),
                  _source_colour(library / "photo-1.jpg"))


@pytest.mark.ffmpeg
def test_another_workspaces_manifest_does_not_make_a_batch_skip(tmp_path: Path, library: Path,
                                                                presets: Any) -> None:
    settings = library_settings(tmp_path, library)
    # B's post-43 is done first.
    process(parse_job(_job("ws-b", "post-43", "photo-1.jpg"), presets), settings=settings,
            presets=presets)
    outcomes: list[Any] = []
    source = write_jsonl(tmp_path / "a.jsonl", [_job("ws-a", "post-43", "photo-2.jpg"),
                                                _job("ws-c", "post-43", "photo-3.jpg")])
    with JobSource(str(source), presets=presets, settings=settings) as src:
        summary = process_batch(src.entries(), settings=settings, presets=presets, workers=1,
                                on_outcome=outcomes.append)
    # A's and C's post-43 ran (neither "manifest exists" nor "same job as line 1").
    assert (summary.succeeded, summary.skipped) == (2, 0), outcomes
    stored = json.loads((tmp_path / "out/manifests/ws-a/post-43.json").read_text())
    assert stored["workspace_id"] == "ws-a"
    assert _close(_stored_colour(stored["accounts"][0]["media"][0]["uri"]),
                  _source_colour(library / "photo-2.jpg"))
    # Its own manifest does make it skip.
    with JobSource(str(source), presets=presets, settings=settings) as src:
        again = process_batch(src.entries(), settings=settings, presets=presets, workers=1)
    assert again.skipped == 2


def test_manifest_keys_are_scoped_by_workspace() -> None:
    from pipeline.runner import manifest_key

    assert manifest_key("ws-a", "post-42") != manifest_key("ws-b", "post-42")
    assert manifest_key("ws-a", "post-42") == "manifests/ws-a/post-42.json"
    assert manifest_key("", "post-42") == "manifests/post-42.json"  # no workspace: as before


# ----------------------------------------------------------------- 2: the pinned workspace


@pytest.fixture
def tenant_library(tmp_path: Path) -> Path:
    root = tmp_path / "lib"
    for ws, colour in (("ws-a", (200, 40, 40)), ("ws-b", (40, 40, 200))):
        (root / ws).mkdir(parents=True)
        Image.new("RGB", (320, 240), colour).save(root / ws / "secret.jpg")
    return root


@pytest.mark.ffmpeg
def test_a_job_of_another_workspace_is_refused_when_the_workspace_is_pinned(
        tmp_path: Path, tenant_library: Path) -> None:
    job = tmp_path / "job.json"
    job.write_text(json.dumps(_job("ws-b", "steal", "secret.jpg")))
    base = ["--library", f"file://{tenant_library}/{{workspace_id}}/{{id}}",
            "--dest", str(tmp_path / "out"), "--workdir", str(tmp_path / "work")]
    result = _cli("--log-format", "json", "run", str(job), *base, "--workspace", "ws-a",
                  "--no-progress")
    assert result.exit_code == 2, result.stderr
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert line["code"] == "invalid_job"
    assert [p["path"] for p in line["problems"]] == ["workspace_id"]
    assert result.stdout == ""
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.jpg"))

    # The environment pins it too; a batch refuses that line and runs its own tenant's job.
    source = write_jsonl(tmp_path / "jobs.jsonl", [_job("ws-b", "steal", "secret.jpg"),
                                                   _job("ws-a", "mine", "secret.jpg")])
    result = _cli("batch", str(source), *base, "--no-progress",
                  env={"CONFORM_WORKSPACE": "ws-a"})
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    assert result.exit_code == 1
    by_status = {x["status"]: x for x in lines}
    assert by_status["invalid"]["errors"][0]["code"] == "invalid_job"
    mine = by_status["succeeded"]
    assert mine["job_id"] == "mine" and mine["workspace_id"] == "ws-a"
    assert _close(_stored_colour(mine["accounts"][0]["media"][0]["uri"]), (200, 40, 40))
    assert not (tmp_path / "out/manifests/ws-b").exists()


def test_a_library_caller_cannot_run_another_workspaces_job(tmp_path: Path, library: Path,
                                                            presets: Any) -> None:
    settings = library_settings(tmp_path, library, workspace="ws-a")
    with pytest.raises(JobInvalid):
        process(parse_job(_job("ws-b", "x", "photo-0.jpg"), presets), settings=settings,
                presets=presets)
    with pytest.raises(JobInvalid):
        parse_job_text(json.dumps(_job("ws-b", "x", "photo-0.jpg")), presets, workspace="ws-a")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- 3: the parser


DEEP = "[" * 100_000 + "]" * 100_000
HUGE_INT = '{"workspace_id": "ws", "id": "n", "content": [{"media": ["photo-0.jpg"], ' \
           '"cover_image": {"video_cover_timestamp_ms": ' + "9" * 5000 + '}}], ' \
           '"accounts": [{"id": "a1", "platform": "telegram"}]}'
DEEP_IN_A_FIELD = ('{"workspace_id": "ws", "content": [{"media": ["photo-0.jpg"]}], '
                   '"accounts": [{"id": "a1", "platform": "telegram"}], "labels": '
                   + "[" * 100_000 + "]" * 100_000 + "}")


@pytest.mark.parametrize("text", [DEEP, HUGE_INT, DEEP_IN_A_FIELD],
                         ids=["deep", "5000-digits", "deep-field"])
def test_unparseable_jobs_are_invalid_not_internal_errors(tmp_path: Path, presets: Any,
                                                          text: str) -> None:
    with pytest.raises(JobInvalid) as caught:
        parse_job_text(text, presets)
    assert caught.value.code == "invalid_job"
    job = tmp_path / "job.json"
    job.write_text(text)
    result = _cli("--log-format", "json", "run", str(job), "--dest", str(tmp_path / "out"),
                  "--workdir", str(tmp_path / "work"), "--no-progress")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["code"] == "invalid_job"


@pytest.mark.ffmpeg
def test_a_batch_goes_on_past_unparseable_lines(tmp_path: Path, library: Path) -> None:
    source = write_jsonl(tmp_path / "jobs.jsonl", [DEEP, HUGE_INT, image_job("fine"),
                                                   DEEP_IN_A_FIELD])
    result = _cli("batch", str(source), "--library", f"file://{library}/{{id}}", "--dest",
                  str(tmp_path / "out"), "--workdir", str(tmp_path / "work"), "--no-progress")
    assert result.exit_code == 1, result.stderr
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    assert [(x["status"], x.get("source", "").rsplit(":", 1)[-1]) for x in lines
            if x["status"] == "invalid"] == [("invalid", "1"), ("invalid", "2"),
                                             ("invalid", "4")]
    assert all(x["errors"][0]["code"] == "invalid_job" for x in lines
               if x["status"] == "invalid")
    fine = [x for x in lines if x["job_id"] == "fine"]
    assert fine and fine[0]["status"] == "succeeded"
    assert _close(_stored_colour(fine[0]["accounts"][0]["media"][0]["uri"]),
                  _source_colour(library / "photo-0.jpg"))


# --------------------------------------------------------------------------- 7: timeouts


@pytest.mark.ffmpeg
def test_a_deadline_overrun_is_permanent_and_writes_a_manifest(tmp_path: Path, library: Path,
                                                               presets: Any) -> None:
    settings = library_settings(tmp_path, library, job_deadline_s=1e-6)
    manifest = process(parse_job(image_job("late"), presets), settings=settings,
                       presets=presets)
    assert manifest.status == "failed" and not manifest.retryable
    stored = json.loads((tmp_path / "out/manifests/ws/late.json").read_text())
    assert [e["code"] for e in stored["accounts"][0]["errors"]] == ["deadline_exceeded"]

    job = tmp_path / "late.json"
    job.write_text(json.dumps(image_job("late-cli")))
    result = _cli("run", str(job), "--library", f"file://{library}/{{id}}", "--dest",
                  str(tmp_path / "out"), "--workdir", str(tmp_path / "work"), "--no-progress",
                  "--job-deadline", "0.000001")
    assert result.exit_code == 1, result.stderr  # not 75: a retry would run out again
    assert json.loads(result.stdout)["accounts"][0]["errors"][0]["code"] == "deadline_exceeded"


@pytest.mark.slow
@pytest.mark.ffmpeg
def test_an_encode_that_outlasts_the_job_deadline_exits_1_with_a_manifest(
        tmp_path: Path, library: Path) -> None:
    hang = fake_ffmpeg(tmp_path, mode="hang")
    job = tmp_path / "job.json"
    job.write_text(json.dumps(video_job("slow")))
    started = time.monotonic()
    proc = subprocess.run(
        conform_cmd("run", str(job), "--library", f"file://{library}/{{id}}", "--dest",
                    str(tmp_path / "out"), "--workdir", str(tmp_path / "work"),
                    "--no-progress"),
        capture_output=True, text=True, timeout=120,
        env=subprocess_env(FFMPEG_PATH=str(hang), CONFORM_FFMPEG_TIMEOUT_S="3",
                           CONFORM_JOB_DEADLINE_S="3"))
    assert proc.returncode == 1, proc.stderr
    assert time.monotonic() - started < 60
    stored = json.loads((tmp_path / "out/manifests/ws/slow.json").read_text())
    assert stored["status"] == "failed"
    assert stored["accounts"][0]["errors"][0]["code"] in ("processing_timeout",
                                                          "deadline_exceeded")


def test_job_deadline_setting_is_validated() -> None:
    assert Settings.from_env({"CONFORM_JOB_DEADLINE_S": "90"}).job_deadline_s == 90.0
    for bad in ("soon", "0", "-5", "inf"):
        with pytest.raises(Exception, match="CONFORM_JOB_DEADLINE_S"):
            Settings.from_env({"CONFORM_JOB_DEADLINE_S": bad})


# --------------------------------------------------------------------------- 8: orphans


@pytest.mark.ffmpeg
def test_sigkill_of_conform_takes_its_ffmpeg_along_and_the_next_run_cleans_up(
        tmp_path: Path, library: Path) -> None:
    marker = tmp_path / "encode.pid"
    hang = fake_ffmpeg(tmp_path, mode="hang", marker=marker)
    job = tmp_path / "job.json"
    job.write_text(json.dumps(video_job("killed")))
    work = tmp_path / "work"
    proc = subprocess.Popen(
        conform_cmd("run", str(job), "--library", f"file://{library}/{{id}}", "--dest",
                    str(tmp_path / "out"), "--workdir", str(work), "--no-progress"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=subprocess_env(FFMPEG_PATH=str(hang)))
    encode_pid = 0
    try:
        wait_for(lambda: marker.exists() and marker.read_text().strip() != "", 60,
                 "the encode to start")
        encode_pid = int(marker.read_text().split()[0])
        assert pid_alive(encode_pid)
        proc.kill()  # SIGKILL: conform runs no cleanup at all (as after the OOM killer)
        proc.wait()
        wait_for(lambda: not pid_alive(encode_pid), 10, "the orphaned encode to die")
    finally:
        if encode_pid and pid_alive(encode_pid):
            os.kill(encode_pid, signal.SIGKILL)  # don't leave it running when this fails
        if proc.poll() is None:
            proc.kill()
    from pipeline import workdir

    left = [p for p in work.iterdir() if p.name.startswith("conform-")]
    assert len(left) == 1 and any(left[0].rglob("src-*"))  # the dead run's sources

    # A live run's folder (held by this process) must survive the next run's clean-up.
    with workdir.run_folder(work, "live-") as live:
        (live / "partial.bin").write_bytes(b"x" * 1000)
        image = tmp_path / "image.json"
        image.write_text(json.dumps(image_job("next")))
        result = _cli("run", str(image), "--library", f"file://{library}/{{id}}", "--dest",
                      str(tmp_path / "out"), "--workdir", str(work), "--no-progress")
        assert result.exit_code == 0, result.stderr
        assert not left[0].exists()
        assert (live / "partial.bin").exists()
    assert not live.exists()


def test_clean_stale_keeps_folders_it_cannot_judge(tmp_path: Path) -> None:
    from pipeline import workdir

    foreign = tmp_path / "conform-old-version"
    foreign.mkdir()
    (foreign / "file").write_text("x")
    other = tmp_path / "not-ours"
    other.mkdir()
    assert workdir.clean_stale(tmp_path) == []
    assert foreign.exists() and other.exists()


# --------------------------------------------------------------------------- 10: small ones


def test_a_job_id_ending_in_a_newline_is_invalid(presets: Any) -> None:
    for job_id in ("post-1\n", "post-1\r\n", "ws\n"):
        with pytest.raises(JobInvalid) as caught:
            parse_job(image_job(job_id), presets)
        assert [p for p, _ in caught.value.problems] == ["id"]
        with pytest.raises(JobInvalid) as caught:
            parse_job({**image_job("ok"), "workspace_id": job_id}, presets)
        assert [p for p, _ in caught.value.problems] == ["workspace_id"]


@pytest.mark.ffmpeg
def test_plan_output_escapes_terminal_controls_from_the_job(tmp_path: Path,
                                                            library: Path) -> None:
    evil = "a1\x1b]0;pwned\x07\x1b[2J\r"
    job = tmp_path / "job.json"
    job.write_text(json.dumps({**image_job("p"), "accounts": [{"id": evil,
                                                               "platform": "telegram"}]}))
    result = _cli("plan", str(job), "--library", f"file://{library}/{{id}}", "--workdir",
                  str(tmp_path / "work"))
    assert result.exit_code == 0, result.stderr
    assert not any(ch in result.stdout for ch in "\x1b\x07\r")
    assert "a1\\x1b]0;pwned\\x07" in result.stdout
    as_json = _cli("plan", str(job), "--json", "--library", f"file://{library}/{{id}}",
                   "--workdir", str(tmp_path / "work"))
    assert json.loads(as_json.stdout)["accounts"][0]["account_id"] == evil  # data unchanged


@pytest.mark.ffmpeg
def test_manifest_errors_carry_no_server_paths(tmp_path: Path, library: Path,
                                               presets: Any) -> None:
    bad = tmp_path / "lib"
    bad.mkdir()
    (bad / "trunc.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
                                    + os.urandom(3000))
    (bad / "noise.mp4").write_bytes(os.urandom(3000))
    settings = library_settings(tmp_path, bad).replace(library=f"file://{bad}/{{id}}")
    job = {"workspace_id": "ws", "id": "paths",
           "content": [{"media": ["trunc.mp4"]}, {"media": ["noise.mp4"]}],
           "accounts": [{"id": "a1", "platform": "x"}]}
    manifest = process(parse_job(job, presets), settings=settings, presets=presets)
    stored = list((tmp_path / "out/manifests").rglob("paths.json"))
    assert len(stored) == 1
    text = stored[0].read_text()
    messages = [e["message"] for a in manifest.to_dict()["accounts"] for e in a["errors"]]
    assert messages and any("src-" in m for m in messages)  # the error still says what
    for secret in (str(tmp_path), str(settings.workdir), "/tmp/", "file:/"):
        assert secret not in text


def test_a_killed_store_leaves_no_temp_file_after_the_next_run(tmp_path: Path) -> None:
    store = open_storage(str(tmp_path / "out"))
    folder = tmp_path / "out" / "manifests" / "ws"
    folder.mkdir(parents=True)
    stale = folder / ".conform-tmp-k1ll3d"
    stale.write_bytes(b"half a manifest")
    hour_ago = time.time() - 2 * 3600
    os.utime(stale, (hour_ago, hour_ago))
    fresh = folder / ".conform-tmp-inflight"  # a concurrent run writing right now
    fresh.write_bytes(b"being written")
    store.put_bytes(b"{}", "manifests/ws/next.json", content_type="application/json")
    assert not stale.exists()
    assert fresh.exists()
    assert sorted(p.name for p in folder.iterdir()) == [".conform-tmp-inflight", "next.json"]


@pytest.mark.ffmpeg
def test_a_download_is_clipped_to_the_jobs_time_left(tmp_path: Path, library: Path,
                                                     presets: Any,
                                                     http_server: LocalHTTPServer) -> None:
    http_server.route("/slow.jpg", drip(0.1, total_bytes=150))  # 15 s for 150 bytes
    settings = library_settings(tmp_path, library, job_deadline_s=2.0,
                                allow_networks=LOOPBACK, http_retries=0)
    job = {"workspace_id": "ws", "id": "drip", "content": [{"media": [
        http_server.url("/slow.jpg")]}], "accounts": [{"id": "a1", "platform": "telegram"}]}
    started = time.monotonic()
    manifest = process(parse_job(job, presets), settings=settings, presets=presets)
    assert time.monotonic() - started < 8  # not the 15 s the server would take
    assert manifest.status == "failed"
    assert manifest.accounts[0].errors[0].code in ("download_failed",
                                                         "deadline_exceeded")
