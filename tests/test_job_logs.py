"""Every JSON log line of a job names its workspace and its job (issue 25, item 5).

Job ids are the tenant's own and repeat across workspaces, so an operator filters one tenant's
lines by ``workspace_id``. Checked from the lines ``conform`` writes to stderr with
``--log-format json``, for ``run`` and for ``batch`` (threads and job processes), with two
workspaces using the same job id in one batch.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests import test_worker as tw
from tests.support.jobkit import conform_cmd, make_library, subprocess_env, write_jsonl

queues = tw.queues  # the fixture, re-exported for this module

pytestmark = pytest.mark.ffmpeg


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_library(tmp_path_factory.mktemp("library"), images=2)


def job(workspace: str, job_id: str) -> dict[str, Any]:
    """A video for Telegram (an encode: progress lines) and a missing medium (a log record)."""
    return {"workspace_id": workspace, "id": job_id,
            "content": [{"media": ["clip.mp4", "no-such-photo.jpg"]}],
            "accounts": [{"id": "a1", "platform": "telegram"}]}


def json_lines(stderr: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert lines, "no log lines"
    return lines


def test_a_run_s_lines_name_its_workspace_and_job(library: Path, tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job("tenant-a", "launch-1")))
    result = subprocess.run(
        conform_cmd("--log-format", "json", "-v", "run", str(path), "--library",
                    f"file://{library}/{{id}}", "--dest", str(tmp_path / "out"),
                    "--workdir", str(tmp_path / "work")),
        capture_output=True, text=True, env=subprocess_env(), timeout=120)
    lines = json_lines(result.stderr)
    of_job = [line for line in lines if "job_id" in line]
    assert len(of_job) >= 3, lines  # progress, the missing medium, the manifest
    assert any(line["level"] == "info" and line["logger"] != "pipeline.progress"
               for line in of_job)  # a log record, not only progress lines
    for line in of_job:
        assert (line.get("workspace_id"), line["job_id"]) == ("tenant-a", "launch-1"), line


@pytest.mark.parametrize("workers", ["1", "2"], ids=["threads", "processes"])
def test_batch_lines_tell_two_tenants_with_the_same_job_id_apart(
    library: Path, tmp_path: Path, workers: str
) -> None:
    source = write_jsonl(tmp_path / "jobs.jsonl",
                         [job("tenant-a", "same-id"), job("tenant-b", "same-id")])
    result = subprocess.run(
        conform_cmd("--log-format", "json", "-v", "batch", str(source), "--workers", workers,
                    "--library", f"file://{library}/{{id}}", "--dest", str(tmp_path / "out"),
                    "--workdir", str(tmp_path / "work")),
        capture_output=True, text=True, env=subprocess_env(), timeout=180)
    of_job = [line for line in json_lines(result.stderr) if "job_id" in line]
    assert of_job
    missing = [line for line in of_job if line.get("workspace_id") not in ("tenant-a", "tenant-b")]
    assert missing == []
    finished = {line["workspace_id"] for line in of_job if line["message"].startswith("job ")}
    assert finished == {"tenant-a", "tenant-b"}
    # each tenant's own lines: its missing medium, once, under its own workspace
    for workspace in ("tenant-a", "tenant-b"):
        warned = [line for line in of_job if line["workspace_id"] == workspace
                  and "no-such-photo" in line["message"]]
        assert warned, workspace


@pytest.mark.s3
def test_worker_lines_tell_two_tenants_with_the_same_job_id_apart(
    library: Path, tmp_path: Path, s3_bucket: str, queues: tw.Queues
) -> None:
    queues.send(job("tenant-a", "same-id"))
    queues.send(job("tenant-b", "same-id"))
    result = subprocess.run(
        conform_cmd("--log-format", "json", "-v", "worker", "--queue-url", queues.jobs,
                    "--dest", f"s3://{s3_bucket}/out", "--library", f"file://{library}/{{id}}",
                    "--workdir", str(tmp_path / "work"), "--wait-time", "0",
                    "--idle-exit", "1", "--max-messages", "2"),
        capture_output=True, text=True, env=subprocess_env(), timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    of_job = [line for line in json_lines(result.stderr) if "job_id" in line]
    assert [line for line in of_job
            if line.get("workspace_id") not in ("tenant-a", "tenant-b")] == []
    for workspace in ("tenant-a", "tenant-b"):
        assert any(line["workspace_id"] == workspace and "no-such-photo" in line["message"]
                   for line in of_job), workspace


def test_the_heartbeat_warning_names_the_workspace(caplog: pytest.LogCaptureFixture) -> None:
    from pipeline.fleet.messages import Heartbeat

    class RefusingQueue:
        def change_message_visibility(self, **_: object) -> None:
            raise ValueError("the queue said no")

    with caplog.at_level("WARNING", logger="pipeline.fleet.messages"), \
            Heartbeat(RefusingQueue(), "q", "r", 1, lambda: ("post-1", "ws-b"), (ValueError,)):
        deadline = time.monotonic() + 5
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.05)
    record = caplog.records[0]
    assert "cannot extend" in record.getMessage()
    assert (record.job_id, record.workspace_id) == ("post-1", "ws-b")  # type: ignore[attr-defined]
